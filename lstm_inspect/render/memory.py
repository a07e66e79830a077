"""``memory``: the batch × seq table (colour-scaled MiB) and the JSON document, from one MemoryReport."""

from __future__ import annotations

import math
from typing import Any

from lstm_inspect.analyses.memory import MemoryCell, MemoryReport, grouped_reasons
from lstm_inspect.render.charts import LEVELS, level
from lstm_inspect.render.common import envelope
from lstm_inspect.units import human_bytes, mib

#: Low to high: the growth of the grid at a glance.
SCALE = ("green", "chartreuse3", "yellow", "orange1", "red")


def memory_json(report: MemoryReport) -> dict[str, Any]:
    body: dict[str, Any] = {
        "method": report.method,
        "mode": report.mode,
        "optimizer": report.optimizer,
        "train_loop": report.train_loop,
        "dtype": report.dtype,
        "device": report.device,
        "batch_sizes": list(report.batch_sizes),
        "seq_lens": list(report.seq_lens),
        "lengths": list(report.lengths) if report.lengths else None,
        "weights_bytes": report.weights_bytes,
        "optimizer_state_bytes": report.optimizer_state_bytes,
        "cells": [_cell_json(c) for c in report.cells],
        "complete": report.complete,
        "interrupted": report.interrupted,
        "max_error_ratio": report.max_error_ratio,
    }
    if report.budget_bytes is not None:
        body["budget"] = {
            "limit_bytes": report.budget_bytes,
            "fits": [{"seq_len": f.seq_len, "max_batch_size": f.max_batch_size, "estimated_bytes": f.estimated_bytes,
                      "total_bytes": f.total_bytes}
                     for f in report.budget_fits],
        }
    body["notes"] = list(report.notes)
    return envelope("memory", report.model, body)


def _cell_json(c: MemoryCell) -> dict[str, Any]:
    doc: dict[str, Any] = {"batch_size": c.batch_size, "seq_len": c.seq_len, "status": c.status}
    if c.measured_bytes is not None:
        doc["measured_bytes"] = c.measured_bytes
    if c.estimated_bytes is not None:
        doc["estimated_bytes"] = c.estimated_bytes
    if c.error_ratio is not None:
        doc["error_ratio"] = c.error_ratio
    if c.reason:
        doc["reason"] = c.reason
    doc["extrapolated"] = c.extrapolated
    return doc


def memory_rich(report: MemoryReport, *, chart: bool = True) -> list:
    """The grid (batch down, seq across), then budget fits, a footer and notes.

    ``chart``: a heat-map glyph beside each cell's value (``▁`` smallest … ``█`` largest, log scale), so
    that the grid reads as a picture without colour too.
    """
    from rich.table import Table
    from rich.text import Text

    both = report.method == "both"
    shown = [c.bytes for c in report.cells if c.bytes]
    low, high = (min(shown), max(shown)) if shown else (0, 0)
    what = {"measure": "measured", "estimate": "estimated", "both": "measured, estimate and its error below"}[report.method]
    step = "forward (no_grad)" if report.mode == "infer" else f"training step ({report.train_loop} loop)"
    title = f"Memory increment of one {step}, MiB ({what})"
    table = Table(header_style="bold")
    table.add_column("batch \\ seq", justify="right", style="bold")
    for seq in report.seq_lens:
        table.add_column(str(seq), justify="right")
    for batch in report.batch_sizes:
        row: list[Any] = [str(batch)]
        for seq in report.seq_lens:
            cell = report.cell(batch, seq)
            row.append(_heat(_cell_text(cell, low, high, both), cell, low, high) if chart else
                       _cell_text(cell, low, high, both))
        table.add_row(*row)
    out: list = [Text(title, style="bold"), table]   # a title line, not Table(title=): that wraps to the table's width
    if chart and shown:
        top = max((c for c in report.cells if c.bytes), key=lambda c: c.bytes or 0)
        out.append(Text(f"{LEVELS[0]} {mib(low)} … {LEVELS[-1]} {mib(high)} MiB (log scale); largest: batch "
                        f"{top.batch_size} × seq {top.seq_len}", style="dim"))

    if report.budget_fits:
        out.append(Text(f"Largest batch within {human_bytes(report.budget_bytes or 0)} (weights + estimated increment)",
                        style="bold"))
        fits = Table(header_style="bold")
        fits.add_column("seq", justify="right")
        fits.add_column("max batch", justify="right")
        fits.add_column("total", justify="right")
        for f in report.budget_fits:
            fits.add_row(str(f.seq_len), f"{f.max_batch_size:,}" if f.max_batch_size else Text("none fits", style="red"),
                         human_bytes(f.total_bytes) if f.total_bytes is not None else "-")
        out.append(fits)

    footer = f"weights {human_bytes(report.weights_bytes)} ({report.dtype}) · mode {report.mode}"
    if report.mode == "train":
        footer += f" · {report.train_loop} loop · optimizer {report.optimizer}"
        if report.optimizer_state_bytes:
            footer += f" (state {human_bytes(report.optimizer_state_bytes)}, in every cell)"
    footer += f" · dtype {report.dtype} · device {report.device}"
    if report.lengths:
        footer += f" · packed batch of {len(report.lengths)} sequences, {sum(report.lengths):,} tokens"
    out.append(Text(footer, style="dim"))
    if both and report.max_error_ratio is not None:
        out.append(Text(f"largest estimate error: {100 * report.max_error_ratio:.1f}%", style="dim"))
    for reason, cells in grouped_reasons(report.cells).items():   # each reason once, not once per cell
        where = ", ".join(f"{c.batch_size} × {c.seq_len}" for c in cells[:4])
        if len(cells) > 4:
            where += f" and {len(cells) - 4} more"
        out.append(Text(f"{where}: {reason}", style="yellow"))
    if report.interrupted:
        out.append(Text(f"interrupted: {len(report.cells)} of {report.total_cells} cells finished", style="bold yellow"))
    for note in report.notes:
        out.append(Text(f"note: {note}", style="dim"))
    return out


def _heat(text, cell: MemoryCell | None, low: int, high: int):
    """``text`` with the cell's heat-map glyph after its first line (the figure)."""
    from rich.text import Text

    if cell is None or cell.bytes is None:
        return text
    lines = text.split("\n")
    lines[0].append(" " + level(cell.bytes, low, high), style=_colour(cell.bytes, low, high))
    return Text("\n").join(lines)


def _cell_text(cell: MemoryCell | None, low: int, high: int, both: bool):
    from rich.text import Text

    if cell is None:
        return Text("·", style="dim")
    if cell.status == "oom":
        text = Text("OOM", style="bold red")
    elif cell.status == "error" and cell.bytes is None:
        return Text("error", style="bold magenta")
    else:
        value = cell.bytes
        marker = "~" if cell.extrapolated and cell.measured_bytes is None else ""   # from the fitted law
        text = Text(marker + mib(value) if value is not None else "-", style=_colour(value, low, high))
        if cell.status == "error":
            text.append(" !", style="bold magenta")
    if both and cell.estimated_bytes is not None:
        line = f"\nest {'~' if cell.extrapolated else ''}{mib(cell.estimated_bytes)}"
        if cell.signed_error is not None:
            line += f" {100 * cell.signed_error:+.1f}%"
        text.append(line, style="dim")
    return text


def _colour(value: int | None, low: int, high: int) -> str:
    """Position of ``value`` between the grid's smallest and largest cell, on a log scale (the grid
    grows geometrically), picked from green to red."""
    if value is None or value <= 0 or high <= low or low <= 0:
        return SCALE[0]
    position = (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return SCALE[min(len(SCALE) - 1, max(0, int(position * len(SCALE))))]
