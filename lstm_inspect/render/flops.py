"""``flops``: Rich tables and the JSON document, from a FlopsReport or a FlopsGrid."""

from __future__ import annotations

from typing import Any

from lstm_inspect.analyses.flops_report import (
    FLOPS_CONVENTION, THOP_RAW_INCLUDES, TRAINING_CONVENTION, TRAINING_RULE, FlopsGrid, FlopsReport,
)
from lstm_inspect.analyses.flops_time import TimeEstimate
from lstm_inspect.render.common import envelope
from lstm_inspect.units import grouped, human_bytes, human_count, percent

ESTIMATE_NOTE = "an estimate: a lower bound from published peaks; real kernels reach a fraction of them"


def _ratio(part: int, total: int) -> float:
    return part / total if total else 0.0


def flops_json(report: FlopsReport) -> dict[str, Any]:
    body: dict[str, Any] = {
        "view": "detail",
        "batch_size": report.batch_size,
        "seq_len": report.seq_len,
        "macs": report.macs,
        "flops": report.flops,
        "elementwise_flops": report.elementwise_flops,
        "training": _training_json(report),
        "convention": FLOPS_CONVENTION,
        "modules": [
            {"name": m.name, "type": m.type, "macs": m.macs, "flops": m.flops, "calls": m.calls,
             "macs_ratio": _ratio(m.macs, report.macs), "flops_ratio": _ratio(m.flops, report.flops),
             "thop_stock": m.stock, "counted_by": m.counted_by}
            for m in report.modules
        ],
        "components": [
            {"component": c.component, "module": c.module, "macs": c.macs, "flops": c.flops,
             "cell_steps": c.cell_steps, "macs_ratio": _ratio(c.macs, report.macs),
             "flops_ratio": _ratio(c.flops, report.flops)}
            for c in report.components
        ],
        "checks": [
            {"component": c.component, "formula": c.symbolic, "substituted": c.substituted,
             "expected": c.expected, "counted": c.counted, "ok": c.ok}
            for c in report.checks
        ],
        "checks_ok": report.checks_ok if report.checks else None,
        "thop_raw": {"ops": report.thop_raw, "includes": THOP_RAW_INCLUDES},
        "packed": None,
        "time_estimate": _time_json(report.time) if report.time else None,
        "uncounted_ops": _uncounted_json(report.uncounted_ops),
        "notes": list(report.notes),
    }
    if report.packed is not None:
        p = report.packed
        body["packed"] = {
            "lengths": list(p.lengths), "padded_batch": p.padded_batch, "padded_seq_len": p.padded_seq_len,
            "packed_cell_steps": p.packed_cell_steps, "padded_cell_steps": p.padded_cell_steps,
            "packed_macs": p.packed_macs, "packed_flops": p.packed_flops,
            "padded_macs": p.padded_macs, "padded_flops": p.padded_flops,
            "waste_macs": p.waste_macs, "waste_ratio": p.waste_ratio,
        }
    return envelope("flops", report.model, body)


def _training_json(report: FlopsReport) -> dict[str, Any]:
    t = report.training
    body: dict[str, Any] = {"macs": report.training_macs, "flops": report.training_flops,
                            "method": report.training_method, "rule": TRAINING_RULE, "convention": TRAINING_CONVENTION}
    if t is not None:
        body.update({
            "backward": {"macs": t.backward_macs, "flops": t.backward_flops},
            "parts": [{"part": p.part, "module": p.module, "method": p.method, "macs": p.macs, "flops": p.flops}
                      for p in t.parts],
            "backward_ops": [{"op": op, "macs": macs} for op, macs in t.backward_ops],
            "uncounted_ops": _uncounted_json(t.uncounted_ops),
            "fallback": t.fallback,
        })
    return body


#: The training figure's method, in words.
TRAINING_METHODS = {
    "counted": "the backward counted (run under the operator pass)",
    "closed form": "the backward by closed forms (every module's dX and dW; no backward run)",
    "counted+closed form": "the backward counted, shape-only modules by their closed form",
    "rule": "3 × forward (the backward could not be counted)",
}


def _training_text(report: FlopsReport) -> str:
    t = report.training
    text = f"training step = forward + {TRAINING_METHODS[report.training_method]}"
    if t is not None and t.method != "rule":
        closed = [p.module or p.part for p in t.parts if p.method == "closed form"]
        if closed and t.method != "closed form":
            text += f" ({', '.join(closed)})"
        text += "; the loss itself is not counted"
    elif t is not None and t.fallback:
        text += f": {t.fallback}"
    return text


def _time_json(t: TimeEstimate) -> dict[str, Any]:
    return {
        "hardware": t.hardware, "hardware_name": t.hardware_name, "dtype": t.dtype,
        "peak_tflops": t.peak_tflops, "bandwidth_gbs": t.bandwidth_gbs, "source": t.source,
        "flops": t.flops, "weight_bytes": t.weight_bytes, "activation_bytes": t.activation_bytes,
        "bytes_moved": t.bytes_moved, "compute_seconds": t.compute_s, "memory_seconds": t.memory_s,
        "lower_bound_seconds": t.lower_bound_s, "bound": t.bound,
        "training_compute_seconds": t.training_compute_s, "estimate": ESTIMATE_NOTE,
    }


def grid_json(grid: FlopsGrid) -> dict[str, Any]:
    return envelope("flops", grid.model, {
        "view": "grid",
        "batch_sizes": list(grid.batch_sizes),
        "seq_lens": list(grid.seq_lens),
        "cells": [{"batch_size": c.batch_size, "seq_len": c.seq_len, "macs": c.macs, "flops": c.flops}
                  for c in grid.cells],
        "convention": FLOPS_CONVENTION,
        "training_rule": TRAINING_RULE,
        "uncounted_ops": _uncounted_json(grid.uncounted_ops),
        "notes": list(grid.notes),
    })


def _uncounted_json(ops: tuple[tuple[str, int], ...]) -> list[dict[str, Any]]:
    return [{"op": op, "calls": calls} for op, calls in ops]


def _seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"


def flops_rich(report: FlopsReport, *, expand: bool = False) -> list:
    """Totals, per component, per module (identical consecutive blocks as one row unless ``expand``),
    closed-form checks, packed vs padded, time estimate, notes."""
    from rich.table import Table
    from rich.text import Text

    from lstm_inspect.render.groups import group_blocks

    out: list = []
    title = f"FLOPs of one forward pass  (batch {report.batch_size} × seq {report.seq_len}"
    title += ", packed)" if report.packed else ")"
    summary = Table(title=title, title_justify="left", header_style="bold")
    summary.add_column("")
    summary.add_column("count", justify="right")
    summary.add_column("exact", justify="right", overflow="fold")
    summary.add_row("MACs (forward)", human_count(report.macs, "MACs"), grouped(report.macs))
    summary.add_row("FLOPs (forward)", human_count(report.flops, "FLOPs"), grouped(report.flops))
    summary.add_row("  of which element-wise", human_count(report.elementwise_flops, "FLOPs"),
                    grouped(report.elementwise_flops))
    summary.add_row(f"FLOPs (training step, {report.training_method})", human_count(report.training_flops, "FLOPs"),
                    grouped(report.training_flops))
    summary.add_row("thop raw (stock hooks)", human_count(report.thop_raw, "ops") if report.thop_raw >= 0 else "failed",
                    grouped(report.thop_raw) if report.thop_raw >= 0 else "")
    out.append(summary)

    def share(flops: int) -> str:
        return percent(_ratio(flops, report.flops))

    # Per component first: the largest parts are the answer; per module is the detail.
    components = Table(title="Per component", title_justify="left", header_style="bold")
    for col, justify in (("component", "left"), ("cell steps", "right"), ("MACs", "right"),
                         ("FLOPs", "right"), ("% FLOPs", "right")):
        components.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for group in group_blocks(report.components, lambda c: c.module,
                              lambda c: (c.component, c.macs, c.flops, c.cell_steps), expand=expand):
        if not group.collapsed:
            for c in group.rows:
                components.add_row(_component_label(c), grouped(c.cell_steps) if c.cell_steps is not None else "",
                                   grouped(c.macs), grouped(c.flops), share(c.flops))
            continue
        for part, rows in group.parts(lambda c: c.component):
            one = [c for c in group.block if c.component == part]
            steps = [c.cell_steps for c in rows if c.cell_steps is not None]
            components.add_row(f"{part} · {group.label}",
                               _per_block_total(sum(c.cell_steps for c in one if c.cell_steps is not None),
                                                sum(steps)) if steps else "",
                               _per_block_total(sum(c.macs for c in one), sum(c.macs for c in rows)),
                               _per_block_total(sum(c.flops for c in one), sum(c.flops for c in rows)),
                               "\n" + share(sum(c.flops for c in rows)))
    out.append(components)

    modules = Table(title="Per module", title_justify="left", header_style="bold")
    for col, justify in (("module", "left"), ("type", "left"), ("MACs", "right"), ("FLOPs", "right"), ("% FLOPs", "right")):
        modules.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for mgroup in group_blocks(report.modules, lambda m: m.name, lambda m: (m.type, m.macs, m.flops, m.calls),
                               expand=expand):
        if not mgroup.collapsed:
            for m in mgroup.rows:
                calls = f" ×{m.calls}" if m.calls > 1 else ""
                modules.add_row(m.name or "(root)", m.type + calls, grouped(m.macs), grouped(m.flops), share(m.flops))
            continue
        flops = mgroup.total(lambda m: m.flops)
        modules.add_row(mgroup.label, f"per block ({len(mgroup.block)} modules)\nall {mgroup.count}",
                        _per_block_total(mgroup.per_block(lambda m: m.macs), mgroup.total(lambda m: m.macs)),
                        _per_block_total(mgroup.per_block(lambda m: m.flops), flops), "\n" + share(flops))
    out.append(modules)
    if not expand and any(g.collapsed for g in group_blocks(report.modules, lambda m: m.name,
                                                            lambda m: (m.type, m.macs, m.flops, m.calls))):
        out.append(Text("identical consecutive blocks are one row (per block, then all of them); every module: --all",
                        style="dim"))

    if report.checks:
        checks = Table(title="Closed-form check (MACs; N = cell steps)", title_justify="left", header_style="bold")
        for col, justify in (("component", "left"), ("formula", "left"), ("closed form", "right"),
                             ("counted", "right"), ("", "center")):
            checks.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
        for check in report.checks:
            checks.add_row(check.component, f"{check.symbolic}\n= {check.substituted}", grouped(check.expected),
                           grouped(check.counted),
                           Text("ok", style="green") if check.ok else Text("MISMATCH", style="bold red"))
        out.append(checks)

    if report.packed is not None:
        p = report.packed
        packed = Table(title=f"Packed vs padded  ({len(p.lengths)} sequences, padded to {p.padded_seq_len})",
                       title_justify="left", header_style="bold")
        for col in ("", "cell steps", "MACs", "FLOPs"):
            packed.add_column(col, justify="left" if not col else "right", overflow="fold")
        packed.add_row("packed (sum of lengths)", grouped(p.packed_cell_steps), grouped(p.packed_macs),
                       grouped(p.packed_flops))
        packed.add_row("padded (batch × seq)", grouped(p.padded_cell_steps), grouped(p.padded_macs),
                       grouped(p.padded_flops))
        packed.add_row("padding waste", grouped(p.waste_cell_steps), grouped(p.waste_macs),
                       grouped(p.padded_flops - p.packed_flops))
        out.append(packed)
        out.append(Text(f"padding wastes {percent(p.waste_ratio)} of the padded batch's MACs; the totals above are "
                        "the packed batch's", style="dim"))

    if report.time is not None:
        out.append(_time_table(report.time))
    if report.uncounted_ops:
        out.append(_uncounted_table(report.uncounted_ops))

    out.append(Text(f"convention: {FLOPS_CONVENTION}", style="dim"))
    out.append(Text(f"training: {_training_text(report)}", style="dim"))
    out.append(Text(f"thop raw: {THOP_RAW_INCLUDES}", style="dim"))
    for note in report.notes:
        out.append(Text(f"note: {note}", style="dim"))
    return out


def _per_block_total(per_block: int, total: int) -> str:
    """Two lines of one cell: a block's figure, then all the blocks' (a collapsed run)."""
    return f"{grouped(per_block)}\n{grouped(total)}"


def _uncounted_table(ops: tuple[tuple[str, int], ...]):
    from rich.table import Table

    table = Table(title="Ran without a formula (not in the counts)", title_justify="left", header_style="bold")
    table.add_column("aten op", overflow="fold")
    table.add_column("calls", justify="right")
    for op, calls in ops:
        table.add_row(op, grouped(calls))
    return table


def _component_label(c) -> str:
    """Short enough for 80 columns: ``rnn L0 fwd``; other components name their module."""
    if c.component.startswith("recurrent layer "):
        layer, _, direction = c.component[len("recurrent layer "):].partition(" · ")
        return f"{c.module} L{layer} {'rev' if direction == 'reverse' else 'fwd'}"
    return f"{c.component} ({c.module})" if c.module and c.module != c.component else c.component


def _time_table(t: TimeEstimate):
    from rich.table import Table
    from rich.text import Text

    where = t.hardware_name or "given peak"
    table = Table(title=f"Time per forward on {where}, {t.dtype}  (estimate: lower bound)", title_justify="left",
                  header_style="bold")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_column("from", overflow="fold")
    table.add_row("compute", _seconds(t.compute_s), f"{human_count(t.flops, 'FLOPs')} / {t.peak_tflops:g} TFLOPS")
    if t.memory_s is not None:
        table.add_row("memory", _seconds(t.memory_s),
                      f"{human_bytes(t.bytes_moved)} (weights {human_bytes(t.weight_bytes)}, activations "
                      f"{human_bytes(t.activation_bytes)}) / {t.bandwidth_gbs:g} GB/s")
    else:
        table.add_row("memory", "n/a", "no bandwidth known: give --hardware for the memory bound")
    table.add_row(Text("lower bound", style="bold"), Text(_seconds(t.lower_bound_s), style="bold"),
                  f"{t.bound}-bound")
    table.add_row("training step", _seconds(t.training_compute_s),
                  "compute only, 3 × forward" if t.training_flops is None else "compute only, counted step")
    rows: list[Any] = [table, Text(f"{ESTIMATE_NOTE}; recurrent W_hh re-read every time step", style="dim")]
    if t.source:
        rows.append(Text(f"source: {t.source}", style="dim"))
    from rich.console import Group

    return Group(*rows)


def grid_rich(grid: FlopsGrid) -> list:
    """A batch × seq table of forward MACs (FLOPs in the JSON)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="MACs of one forward pass  (rows: batch size, columns: sequence length)",
                  title_justify="left", header_style="bold")
    table.add_column("batch \\ seq", justify="right")
    for s in grid.seq_lens:
        table.add_column(str(s), justify="right")
    for b in grid.batch_sizes:
        table.add_row(str(b), *(human_count(grid.cell(b, s).macs, "MACs") for s in grid.seq_lens))
    out = [table, Text(f"convention: {FLOPS_CONVENTION}", style="dim"),
           Text("FLOPs per cell and exact integers: --json", style="dim")]
    if grid.uncounted_ops:
        out.append(_uncounted_table(grid.uncounted_ops))
    return out
