"""Per-layer detail (decoder layers, recurrent layers × directions) as JSON dicts and Rich tables."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from lstm_inspect.analyses.layers import LayerReport
from lstm_inspect.render.groups import index_runs, span_label
from lstm_inspect.units import grouped, human_count


def _by_direction(rows: Sequence[Any]) -> list[list]:
    """Runs of identical consecutive layers within each direction, in the order of their first layer."""
    by: dict[str, list] = {}
    for l in rows:
        by.setdefault(l.direction, []).append(l)
    found = [run for d in by.values() for run in index_runs(
        d, lambda l: l.layer_idx, lambda l: (l.cell, l.input_size, l.hidden_size, l.proj_size, l.params,
                                             l.is_zero_layer))]
    return sorted(found, key=lambda run: (run[0].layer_idx, run[0].direction != "forward"))


def layers_json(report: LayerReport) -> dict[str, Any]:
    """Source document 003's ``embedding_params``, ``lm_head_params``, ``layer_summary`` and ``layers``."""
    body: dict[str, Any] = {
        "kind": report.kind,
        "embedding_params": report.embedding_params,
        "lm_head_params": report.lm_head_params,
        "layer_summary": {"num_layers": len(report.decoder_layers) or len({l.layer_idx for l in report.recurrent_layers}),
                          "total_layer_params": report.layer_params},
        "hyperparameters": dict(report.hyperparameters),
    }
    if report.kind == "decoder":
        body["layers"] = [dataclasses.asdict(l) for l in report.decoder_layers]
    else:
        body["layers"] = [dataclasses.asdict(l) | {"total": l.params, "is_zero_layer": l.is_zero_layer}
                          for l in report.recurrent_layers]
    return body


def _opt(n: int | None) -> str:
    return "-" if n is None else human_count(n)


def layers_rich(report: LayerReport, *, limit: int | None = None) -> list:
    """The per-layer table that fits the model: decoder layers or recurrent layers × directions."""
    if report.kind == "recurrent":
        return recurrent_layers_rich(report, limit=limit)
    return decoder_layers_rich(report, limit=limit)


def recurrent_layers_rich(report: LayerReport, *, limit: int | None = None) -> list:
    """One row per recurrent layer and direction: its widths and parameters."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Per recurrent layer", title_justify="left", header_style="bold")
    for col in ("layer", "direction", "cell", "input", "hidden", "proj", "params"):
        table.add_column(col, justify="left" if col in ("layer", "direction", "cell") else "right")
    rows = report.recurrent_layers
    # Identical consecutive layers of one direction: one row (--all lists each). Directions interleave
    # (0 forward, 0 reverse, 1 forward...), so runs are looked for per direction; ``limit`` counts rows shown.
    runs = [[l] for l in rows] if limit is None else _by_direction(rows)[:limit]
    for run in runs:
        l = run[0]
        label = f"{l.layer_idx}" if len(run) == 1 else span_label("", l.layer_idx, run[-1].layer_idx, len(run))
        params = grouped(l.params) if len(run) == 1 else f"{grouped(l.params)} each"
        table.add_row(label + (" [zero]" if l.is_zero_layer else ""), l.direction, l.cell.upper(),
                      str(l.input_size), str(l.hidden_size), str(l.proj_size or "-"), params)
    out: list = [table]
    hidden = len(report.recurrent_layers) - sum(len(run) for run in runs)
    if hidden > 0:
        out.append(Text(f"... {hidden} more row(s) not shown (--all)", style="dim"))
    out.append(Text(f"embedding {grouped(report.embedding_params)} · lm head {grouped(report.lm_head_params)} "
                    f"(a head tied to the embedding counts 0) · recurrent layers {grouped(report.layer_params)}",
                    style="dim"))
    return out


def decoder_layers_rich(report: LayerReport, *, limit: int | None = None) -> list:
    """One row per decoder layer: totals, attention (q/k/v/o, heads), MLP (gate/up/down, intermediate), norms."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Per decoder layer (q/k/v/o and gate/up/down counts: --json)", title_justify="left",
                  header_style="bold")
    # recurrent/SSM blocks (Mamba, RWKV, xLSTM, RecurrentGemma) get their own columns; attention ones only where
    # some layer has attention
    mixers = any(l.mixer is not None for l in report.decoder_layers)
    attention = not mixers or any(l.attention is not None for l in report.decoder_layers)
    columns = ["layer", "total"] + (["mixer", "kind", "state"] if mixers else []) + (
        ["attention", "heads Q:KV"] if attention else []) + ["mlp", "intermediate", "norm"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("layer", "kind") else "right")
    rows = report.decoder_layers
    signature = lambda l: (l.total, l.attention, l.mlp, l.mixer, l.norm, l.is_zero_layer)   # noqa: E731
    runs = [[l] for l in rows] if limit is None else index_runs(rows, lambda l: l.layer_idx, signature)[:limit]
    for run in runs:
        l = run[0]
        a, m, x = l.attention, l.mlp, l.mixer
        heads = "-" if a is None else f"{a.num_heads if a.num_heads is not None else '-'}Q:" \
            f"{a.num_kv_heads if a.num_kv_heads is not None else '-'}KV"
        inter = "-" if m is None or m.intermediate_size is None else str(m.intermediate_size)
        label = f"{l.layer_idx}" if len(run) == 1 else span_label("", l.layer_idx, run[-1].layer_idx, len(run))
        label += " [zero]" if l.is_zero_layer else ""
        cells = [label, _opt(l.total) + ("" if len(run) == 1 else " each")]
        if mixers:
            cells += [_opt(x.total if x else None), x.kind if x else "-",
                      str(x.state_size) if x and x.state_size is not None else "-"]
        if attention:
            cells += [_opt(a.total if a else None), heads]
        table.add_row(*cells, _opt(m.total if m else None), inter, _opt(l.norm))
    out: list = [table]
    hidden = len(report.decoder_layers) - sum(len(run) for run in runs)
    if hidden > 0:
        out.append(Text(f"... {hidden} more layer(s) not shown (--all)", style="dim"))
    out.append(Text(f"embedding {grouped(report.embedding_params)} · lm head {grouped(report.lm_head_params)} "
                    f"(a head tied to the embedding counts 0) · decoder layers {grouped(report.layer_params)}", style="dim"))
    return out
