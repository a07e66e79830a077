"""``generation``: the context × batch table (weights + per-sequence state) and the JSON document."""

from __future__ import annotations

from typing import Any

from lstm_inspect.analyses.generation import GenerationReport
from lstm_inspect.render.common import envelope
from lstm_inspect.units import human_bytes


def generation_json(report: GenerationReport) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dtype": report.dtype,
        "kind": report.kind,
        "weights_bytes": report.weights_bytes,
        "state_fixed_bytes": report.fixed_bytes,
        "state_per_token_bytes": report.per_token_bytes,
        "step_output_bytes": report.step_output_bytes,
        "state_tensors": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "bytes": t.bytes}
                          for t in report.state_tensors],
        "contexts": list(report.contexts),
        "batch_sizes": list(report.batch_sizes),
        "rows": [_row_json(report, r) for r in report.rows],
        "budget_bytes": report.budget_bytes,
        "notes": list(report.notes),
    }
    return envelope("generation", report.model, body)


def _row_json(report: GenerationReport, row) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "context": row.context, "per_sequence_bytes": row.per_sequence_bytes,
        "totals": [{"batch_size": b, "total_bytes": t} for b, t in zip(report.batch_sizes, row.total_bytes)],
    }
    if report.budget_bytes is not None:
        doc["max_batch_size"] = row.max_batch_size
    return doc


def generation_rich(report: GenerationReport, *, chart: bool = True) -> list:
    """Context down; state per sequence, then weights + batch × state per batch size; budget column.

    ``chart``: the curve as bars under the table, at the largest batch size: weights and the batch's
    state (recurrent state or KV cache) stacked, the budget as a line across them.
    """
    from rich.table import Table
    from rich.text import Text

    table = Table(header_style="bold")
    table.add_column("context", justify="right", style="bold")
    table.add_column("state/seq", justify="right")
    for b in report.batch_sizes:
        table.add_column(f"batch {b}", justify="right")
    if report.budget_bytes is not None:
        table.add_column("max batch", justify="right")
    for row in report.rows:
        cells: list[Any] = [f"{row.context:,}", human_bytes(row.per_sequence_bytes)]
        cells += [human_bytes(t) for t in row.total_bytes]
        if report.budget_bytes is not None:
            cells.append("any" if row.max_batch_size is None else
                         Text("none fits", style="red") if row.max_batch_size == 0 else f"{row.max_batch_size:,}")
        table.add_row(*cells)
    law = human_bytes(report.fixed_bytes)
    if report.per_token_bytes:
        law = (f"{human_bytes(report.fixed_bytes)} + " if report.fixed_bytes else "") + \
            f"{human_bytes(report.per_token_bytes)} × context"
    title = "Generation memory by context: state per sequence, totals per batch size"
    if report.budget_bytes is not None:
        title += f", largest batch in {human_bytes(report.budget_bytes)}"
    out: list = [Text(title, style="bold"), table,
                 Text(f"total = weights {human_bytes(report.weights_bytes)} ({report.dtype}) + batch × (state + "
                      f"step output {human_bytes(report.step_output_bytes)}) · {report.kind} per sequence: {law} · "
                      f"{len(report.state_tensors)} state tensors", style="dim")]
    if chart and report.rows:
        out.extend(generation_chart(report))
    for note in report.notes:
        out.append(Text(f"note: {note}", style="dim"))
    return out


def generation_chart(report: GenerationReport) -> list:
    """Memory at the largest batch size by context: weights, then batch × (state + step output), stacked."""
    from rich.text import Text

    from lstm_inspect.render.charts import Bar, BarChart, legend

    batch = max(report.batch_sizes)
    column = report.batch_sizes.index(batch)
    bars = [Bar(f"{row.context:,}", (float(report.weights_bytes), float(row.total_bytes[column] - report.weights_bytes)),
                human_bytes(row.total_bytes[column])) for row in report.rows]
    budget = None if report.budget_bytes is None else f"budget {human_bytes(report.budget_bytes)}"
    return [Text(f"Memory at batch {batch} by context", style="bold"),
            BarChart(bars, mark=None if report.budget_bytes is None else float(report.budget_bytes)),
            legend(["weights", f"{batch} × ({report.kind} + step output)"], mark=budget)]
