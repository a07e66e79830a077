"""``params``: Rich tables and the JSON document, from one ParamReport."""

from __future__ import annotations

from typing import Any

from lstm_inspect.analyses.params import ParamReport
from lstm_inspect.render.common import envelope
from lstm_inspect.units import grouped, human_bytes, human_count, mib, percent, scientific

DEFAULT_TOP = 30


def params_json(report: ParamReport) -> dict[str, Any]:
    return envelope("params", report.model, {
        "total_params": report.total,
        "trainable_params": report.trainable,
        "frozen_params": report.frozen,
        "size_bytes": dict(report.dtype_bytes),
        "components": [_share(s) for s in report.components],
        "layer_types": [_share(s) for s in report.layer_types],
        "checks": [
            {"component": c.component, "formula": c.symbolic, "substituted": c.substituted,
             "expected": c.expected, "counted": c.counted, "ok": c.ok, "textbook": c.textbook}
            for c in report.checks
        ],
        "checks_ok": report.checks_ok,
        "tensors": [
            {"name": t.name, "shape": list(t.shape), "count": t.count, "ratio": t.count / report.total if report.total else 0.0,
             "trainable": t.trainable, "component": t.component, "layer_type": t.layer_type, "tied_to": list(t.tied_to)}
            for t in report.tensors
        ],
        "notes": list(report.notes),
        "embedding_params": report.layers.embedding_params if report.layers else None,
        "lm_head_params": report.layers.lm_head_params if report.layers else None,
        "layers": _layers_json(report),
    })


def _layers_json(report: ParamReport) -> dict[str, Any] | None:
    if report.layers is None:
        return None
    from lstm_inspect.render.layers import layers_json

    return layers_json(report.layers)


def _share(s) -> dict[str, Any]:
    return {"name": s.name, "params": s.count, "ratio": s.ratio, "modules": s.modules}


def params_rich(report: ParamReport, *, top: int | None = DEFAULT_TOP) -> list:
    """Summary, sizes, shares, per-tensor rows (first ``top``; None for all), closed-form checks."""
    from rich.table import Table
    from rich.text import Text

    out: list = []
    summary = Table(title="Parameters", title_justify="left", show_header=True, header_style="bold")
    summary.add_column("")
    summary.add_column("count", justify="right")
    summary.add_column("exact", justify="right")
    summary.add_column("scientific", justify="right")
    for label, n in (("total", report.total), ("trainable", report.trainable), ("frozen", report.frozen)):
        summary.add_row(label, human_count(n), grouped(n), scientific(n))
    out.append(summary)

    sizes = Table(title="Weights in memory", title_justify="left", header_style="bold")
    sizes.add_column("dtype")
    sizes.add_column("bytes", justify="right")
    sizes.add_column("size", justify="right")
    for dtype, size in report.dtype_bytes.items():
        sizes.add_row(dtype, grouped(size), human_bytes(size))
    out.append(sizes)

    # Shares before the per-tensor rows: the largest parts are the answer, the tensors the detail.
    for title, rows, label in (("Per component", report.components, "component"), ("Per layer type", report.layer_types, "layer type")):
        table = Table(title=title, title_justify="left", header_style="bold")
        table.add_column(label)
        table.add_column("params", justify="right")
        table.add_column("share", justify="right")
        table.add_column("modules", justify="right")
        table.add_column("MiB (fp32)", justify="right")
        for s in rows:
            table.add_row(s.name, grouped(s.count), percent(s.ratio), str(s.modules), mib(s.float32_bytes))
        out.append(table)

    shown = report.tensors if top is None else report.tensors[:top]
    tensors = Table(title="Per tensor", title_justify="left", header_style="bold")
    for col, justify in (("name", "left"), ("shape", "left"), ("params", "right"), ("%", "right"), ("trainable", "center")):
        tensors.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for t in shown:
        name = t.name + (f" (= {', '.join(t.tied_to)})" if t.tied_to else "")
        tensors.add_row(name, "[" + ", ".join(str(s) for s in t.shape) + "]", grouped(t.count),
                        percent(t.count / report.total) if report.total else "-", "yes" if t.trainable else "no")
    out.append(tensors)
    hidden = len(report.tensors) - len(shown)
    if hidden > 0:
        out.append(Text(f"... {hidden} more tensor(s) not shown (--top N, or --all)", style="dim"))

    if report.checks:
        checks = Table(title="Closed-form check (PyTorch's layout)", title_justify="left", header_style="bold")
        for col, justify in (("component", "left"), ("formula", "left"), ("expected", "right"), ("counted", "right"), ("", "center")):
            checks.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
        for c in report.checks:
            formula = f"{c.symbolic}\n= {c.substituted}"
            if c.textbook is not None:
                formula += f"\ntextbook (one bias): {grouped(c.textbook)}"
            checks.add_row(c.component, formula, grouped(c.expected), grouped(c.counted),
                           Text("ok", style="green") if c.ok else Text("MISMATCH", style="bold red"))
        out.append(checks)
    if report.layers is not None:
        from lstm_inspect.render.layers import layers_rich

        out.extend(layers_rich(report.layers, limit=top))
    for note in report.notes:
        out.append(Text(f"note: {note}", style="dim"))
    return out
