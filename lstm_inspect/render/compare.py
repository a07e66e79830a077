"""``compare``: source document 003's JSON and console report, from one CompareReport."""

from __future__ import annotations

from typing import Any

from lstm_inspect.analyses.compare import Change, CompareReport, Delta, LayerDelta, PairComparison
from lstm_inspect.render.common import envelope
from lstm_inspect.units import grouped, human_bytes, human_count, percent


def delta_json(d: Delta | None) -> dict[str, Any] | None:
    return None if d is None else _delta(d)


def _delta(d: Delta) -> dict[str, Any]:
    return {"original": d.original, "pruned": d.pruned, "reduced": d.reduced, "reduction_ratio": d.reduction_ratio}


def _change_json(c: Change) -> dict[str, Any]:
    return {"original": c.original, "pruned": c.pruned}


def _layer_json(l: LayerDelta) -> dict[str, Any]:
    out: dict[str, Any] = {"layer_idx": l.layer_idx}
    if l.direction is not None:
        out["direction"] = l.direction
    out["total"] = delta_json(l.total)
    changes = {c.name: _change_json(c) for c in l.changes}
    if l.attention is not None:
        out["attention"] = _delta(l.attention) | {k: changes[k] for k in ("num_heads", "num_kv_heads") if k in changes}
    if l.mlp is not None:
        out["mlp"] = _delta(l.mlp) | {k: changes[k] for k in ("intermediate_size",) if k in changes}
    if l.mixer is not None:
        out["mixer"] = _delta(l.mixer) | {k: changes[k] for k in ("mixer", "state_size") if k in changes}
    if l.norm is not None:
        out["norm"] = delta_json(l.norm)
    if l.direction is not None:
        out.update(changes)
    out["is_zero_layer"] = l.is_zero_layer
    return out


def pair_json(p: PairComparison) -> dict[str, Any]:
    """One comparison with source document 003's keys (original = the first model, pruned = the other)."""
    return {
        "original_name": p.original_name,
        "pruned_name": p.pruned_name,
        "total_params": delta_json(p.total),
        "embedding_params": delta_json(p.embedding),
        "lm_head_params": delta_json(p.lm_head),
        "layer_params": delta_json(p.layer_params),
        "components": [{"name": n} | _delta(d) for n, d in p.components],
        "layer_types": [{"name": n} | _delta(d) for n, d in p.layer_types],
        "changed_hyperparameters": [{"name": c.name} | _change_json(c) for c in p.changed],
        "zero_layers": list(p.zero_layers),
        "layers": [_layer_json(l) for l in p.layers],
        "macs": delta_json(p.macs),
        "flops": delta_json(p.flops),
        "memory_bytes": delta_json(p.memory_bytes),
        "weights_bytes": delta_json(p.weights_bytes),
        "generation_state_crossing": p.state_crossing,
        "generation_total_crossing": p.total_crossing,
        "notes": list(p.notes),
    }


def _generation_json(report: CompareReport) -> list[dict[str, Any]]:
    """Per context, each model's generation state per sequence (None where a model has none)."""
    return [{"context": t, "state_bytes": [None if c is None else c.state_at(t) for c in report.costs]}
            for t in report.contexts]


def compare_json(report: CompareReport) -> dict[str, Any]:
    """``models`` and ``comparisons`` (each vs the first); with two models the one comparison's keys at the top too."""
    body: dict[str, Any] = {
        "models": [{"label": n, "model": m} for n, m in zip(report.names, report.models)],
        "batch_size": report.batch,
        "seq_len": report.seq,
        "costs": [None if c is None else {"macs": c.macs, "flops": c.flops, "memory_bytes": c.memory_bytes,
                                          "weights_bytes": c.weights_bytes, "note": c.note,
                                          "generation_state_fixed_bytes": c.state_fixed_bytes,
                                          "generation_state_per_token_bytes": c.state_per_token_bytes}
                  for c in report.costs],
        "generation": _generation_json(report),
        "comparisons": [pair_json(p) for p in report.comparisons],
    }
    if len(report.comparisons) == 1:
        body.update(pair_json(report.comparisons[0]))
    return envelope("compare", None, body)


def _reduced(d: Delta, fmt=grouped) -> str:
    """The change from the original, as source document 003 prints it: ``-13,421,568 (-20.00%)``."""
    if d.reduced == 0:
        return "0"
    sign = "-" if d.reduced > 0 else "+"
    share = f"{sign}{percent(abs(d.reduction_ratio))}" if d.original else "new"
    return f"{sign}{fmt(abs(d.reduced))} ({share})"


def _value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v).lower() if isinstance(v, bool) else "-"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


def compare_rich(report: CompareReport, *, verbose: bool = False, chart: bool = True) -> list:
    """Totals side by side (one column per model, each against the first), then each comparison's detail.

    ``chart``: parameters, MACs and memory of the models as bars under each other, after the cost table.
    """
    from rich.table import Table
    from rich.text import Text

    out: list = []
    first = report.names[0]
    table = Table(title="Parameters (each model against the first)", title_justify="left", header_style="bold")
    table.add_column("")
    table.add_column(first, justify="right")
    for p in report.comparisons:
        table.add_column(p.pruned_name, justify="right")
        table.add_column("change", justify="right")
    rows: list[tuple[str, str]] = [("total", "total"), ("embedding", "embedding"), ("layers", "layer_params"),
                                   ("lm head / projection", "lm_head")]
    shown: set[tuple[int, ...]] = set()
    for label, attr in rows:
        cells = [label, grouped(getattr(report.comparisons[0], attr).original)]
        for p in report.comparisons:
            d = getattr(p, attr)
            cells += [grouped(d.pruned), _reduced(d)]
        shown.add(tuple([getattr(report.comparisons[0], attr).original] + [getattr(p, attr).pruned for p in report.comparisons]))
        table.add_row(*cells)
    base = dict(report.comparisons[0].components)
    for name, first_delta in report.comparisons[0].components:
        deltas = [dict(p.components).get(name, Delta(first_delta.original, 0)) for p in report.comparisons]
        if tuple([first_delta.original] + [d.pruned for d in deltas]) in shown:
            continue   # the same numbers as a row above (the built-in model's components are those rows)
        cells = [f"  component: {name}", grouped(base[name].original)]
        for d in deltas:
            cells += [grouped(d.pruned), _reduced(d)]
        table.add_row(*cells, style="dim")
    out.append(table)

    if any(c is not None for c in report.costs):
        costs = Table(title=f"Cost at batch {report.batch} × seq {report.seq}", title_justify="left", header_style="bold")
        costs.add_column("")
        costs.add_column(first, justify="right")
        for p in report.comparisons:
            costs.add_column(p.pruned_name, justify="right")
            costs.add_column("change", justify="right")
        for label, attr, fmt in (("MACs", "macs", lambda n: human_count(n, "MACs")),
                                 ("FLOPs", "flops", lambda n: human_count(n, "FLOPs")),
                                 ("memory increment (estimate)", "memory_bytes", human_bytes),
                                 ("weights (float32)", "weights_bytes", human_bytes)):
            base_cost = report.costs[0]
            if base_cost is None or getattr(base_cost, attr) is None:
                continue
            cells = [label, fmt(getattr(base_cost, attr))]
            for p in report.comparisons:
                d = getattr(p, attr)
                cells += ["-", "-"] if d is None else [fmt(d.pruned), _reduced(d, fmt)]
            costs.add_row(*cells)
        out.append(costs)
    if chart:
        out.extend(compare_chart(report))
    if any(c is not None for c in report.costs):
        out.extend(_generation_rich(report))
        for name, c in zip(report.names, report.costs):
            if c is not None and c.note:
                out.append(Text(f"note: {name}: {c.note}", style="dim"))
    else:
        out.append(Text("FLOPs and memory: not available in this build (the flops/memory analyses are absent)",
                        style="dim"))

    for p in report.comparisons:
        out.extend(_pair_rich(p, verbose=verbose))
    return out


def compare_chart(report: CompareReport) -> list:
    """Each quantity's bars, one per model, on the scale of that quantity's largest; the change after each."""
    from rich.text import Text

    from lstm_inspect.render.charts import Bar, BarChart

    quantities: list[tuple[str, str, Any]] = [("params", "total", human_count)]
    if report.costs[0] is not None:
        quantities += [(q, a, f) for q, a, f in (("MACs", "macs", lambda n: human_count(n, "MACs")),
                                                 ("memory", "memory_bytes", human_bytes))
                       if getattr(report.costs[0], a) is not None]
    width = max(len(q) for q, _, _ in quantities)
    bars: list[Bar] = []
    for label, attr, fmt in quantities:
        first = report.comparisons[0].total.original if attr == "total" else getattr(report.costs[0], attr)
        bars.append(Bar(f"{label:<{width}}  {report.names[0]}", (float(first),), fmt(first)))
        for name, p in zip(report.names[1:], report.comparisons):
            d = getattr(p, attr)
            figure = "-" if d is None else fmt(d.pruned) + (
                " (no change)" if not d.reduced else
                f" ({'-' if d.reduced > 0 else '+'}{percent(abs(d.reduction_ratio))})" if d.original else "")
            bars.append(Bar(f"{'':<{width}}  {name}", (0.0 if d is None else float(d.pruned),), figure))
    return [Text("Side by side (each bar on the scale of its quantity's largest)", style="bold"),
            BarChart(groups=[bars[i:i + len(report.names)] for i in range(0, len(bars), len(report.names))])]


def _layer_parts(l: LayerDelta) -> tuple[str, ...]:
    """What changed in one layer, in words: attention, mlp, heads, other hyperparameters."""
    parts = []
    if l.attention is not None and l.attention.reduced:
        parts.append(f"attention {_reduced(l.attention)}")
    if l.mlp is not None and l.mlp.reduced:
        parts.append(f"mlp {_reduced(l.mlp)}")
    if l.mixer is not None and l.mixer.reduced:
        parts.append(f"mixer {_reduced(l.mixer)}")
    ch = {c.name: c for c in l.changes}
    if "num_heads" in ch and (ch["num_heads"].original != ch["num_heads"].pruned
                              or ch["num_kv_heads"].original != ch["num_kv_heads"].pruned):
        parts.append(f"heads {ch['num_heads'].original}Q:{ch['num_kv_heads'].original}KV → "
                     f"{ch['num_heads'].pruned}Q:{ch['num_kv_heads'].pruned}KV")
    for c in l.changes:
        if c.name not in ("num_heads", "num_kv_heads") and c.original != c.pruned and not (
                c.name in ("mixer", "state_size") and None in (c.original, c.pruned)):
            parts.append(f"{c.name} {c.original} → {c.pruned}")
    return tuple(parts)


def _generation_rich(report: CompareReport) -> list:
    """Generation state per sequence by context, side by side, and where the curves cross."""
    from rich.table import Table
    from rich.text import Text

    if not report.contexts or report.costs[0] is None or report.costs[0].state_at(0) is None:
        return []
    table = Table(header_style="bold")
    table.add_column("context", justify="right")
    for name in report.names:
        table.add_column(name, justify="right")
    for t in report.contexts:
        states = [None if c is None else c.state_at(t) for c in report.costs]
        table.add_row(f"{t:,}", *["-" if b is None else human_bytes(b) for b in states])
    out: list = [Text("Generation state per sequence (recurrent state or KV cache)", style="bold"), table]
    for p in report.comparisons:
        for what, at in (("state per sequence", p.state_crossing), ("weights + one sequence's state", p.total_crossing)):
            if report.costs[report.names.index(p.pruned_name)] is None:
                continue
            text = (f"never reaches {p.original_name}'s" if at is None else
                    f"reaches {p.original_name}'s from the first token" if at == 1 else
                    f"reaches {p.original_name}'s at context {at:,}")
            out.append(Text(f"{p.pruned_name}: {what} {text}", style="dim"))
    return out


def _pair_rich(p: PairComparison, *, verbose: bool) -> list:
    from rich.table import Table
    from rich.text import Text

    out: list = [Text(f"\n{p.original_name} → {p.pruned_name}", style="bold")]
    out.append(Text(f"total: {grouped(p.total.original)} → {grouped(p.total.pruned)} ({_reduced(p.total)})"))
    if p.changed:
        out.append(Text("changed hyperparameters: " + "; ".join(
            f"{c.name} {_value(c.original)} → {_value(c.pruned)}" for c in p.changed)))
    else:
        out.append(Text("changed hyperparameters: none"))
    if p.layers:
        shown = [l for l in p.layers if verbose or l.total.reduced != 0]
        if shown:
            table = Table(title="Per layer" + ("" if verbose else " (changed layers; --verbose for all)"),
                          title_justify="left", header_style="bold")
            for col in ("layer", p.original_name, p.pruned_name, "change", "what changed"):
                table.add_column(col, justify="left" if col in ("layer", "what changed") else "right", overflow="fold")
            from lstm_inspect.render.groups import index_runs, span_label

            described = [(l, _layer_parts(l)) for l in shown]
            # Identical consecutive layers (same direction, figures and changes): one row, per layer then all.
            groups = [[d] for d in described] if verbose else index_runs(
                described, lambda d: d[0].layer_idx,
                lambda d: (d[0].direction, d[0].total, d[0].is_zero_layer, d[1]))
            for run in groups:
                l, parts = run[0]
                suffix = (f" · {l.direction}" if l.direction else "") + (" [zero]" if l.is_zero_layer else "")
                if len(run) == 1:
                    table.add_row(Text(f"{l.layer_idx}{suffix}"), grouped(l.total.original), grouped(l.total.pruned),
                                  _reduced(l.total), "; ".join(parts))
                    continue
                n = len(run)
                total = Delta(l.total.original * n, l.total.pruned * n)
                table.add_row(Text(span_label("", l.layer_idx, run[-1][0].layer_idx, n) + suffix + "\nper layer / all"),
                              f"{grouped(l.total.original)}\n{grouped(total.original)}",
                              f"{grouped(l.total.pruned)}\n{grouped(total.pruned)}",
                              f"{_reduced(l.total)}\n{_reduced(total)}", "; ".join(parts))
            out.append(table)
        else:
            out.append(Text("every layer has the same parameter count in both models"))
    if p.zero_layers:
        out.append(Text(f"layers removed entirely ({len(p.zero_layers)}): {', '.join(map(str, p.zero_layers))}",
                        style="bold"))
    for note in p.notes:
        out.append(Text(f"note: {note}", style="dim"))
    return out
