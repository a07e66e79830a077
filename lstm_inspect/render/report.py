"""``report``: one JSON document (``lstm-inspect.report/1``) and the console run, from one FullReport."""

from __future__ import annotations

import re
from typing import Any

from lstm_inspect.analyses.report import FullReport
from lstm_inspect.render.common import envelope
from lstm_inspect.render.flops import flops_json, flops_rich
from lstm_inspect.render.memory import memory_json, memory_rich
from lstm_inspect.render.layers import layers_json
from lstm_inspect.render.params import params_json, params_rich
from lstm_inspect.render.structure import structure_json, structure_rich
from lstm_inspect.units import grouped, human_bytes, human_count, percent

_ENVELOPE_KEYS = ("schema", "tool_version", "model")


def _body(doc: dict[str, Any]) -> dict[str, Any]:
    """A command's document without its envelope (the report carries one envelope for all)."""
    return {k: v for k, v in doc.items() if k not in _ENVELOPE_KEYS}


def report_json(report: FullReport) -> dict[str, Any]:
    body: dict[str, Any] = {
        "generated_at": report.generated_at,
        "batch_size": report.batch,
        "seq_len": report.seq,
        "structure": _body(structure_json(report.structure)),
        "params": _body(params_json(report.params)),
        "layers": layers_json(report.layers),
    }
    body["flops"] = _body(flops_json(report.flops)) if report.flops is not None else None
    body["memory"] = _body(memory_json(report.memory)) if report.memory is not None else None
    body["notes"] = list(report.notes)
    return envelope("report", report.model, body)


def report_rich(report: FullReport, *, depth: int | None = 2, top: int | None = 30) -> list:
    """A summary first (the answer on the first screen), then the sections in source document 000's order,
    each under a rule."""
    from rich.rule import Rule
    from rich.text import Text

    out: list = [Text(f"lstm-inspect report · {report.model.get('name', 'model')} · {report.generated_at}", style="bold")]
    out.append(summary_rich(report))
    out.append(Rule("Task 1 · Structure"))
    out.extend(structure_rich(report.structure, depth=depth))
    out.append(Rule("Task 2 · Parameters"))
    out.extend(params_rich(report.params, top=top))
    out.append(Rule("Task 3 · FLOPs"))
    if report.flops is not None:
        out.extend(flops_rich(report.flops))
    out.extend(Text(f"note: {note.removeprefix('flops: ')}", style="dim") for note in report.notes
               if note.startswith("flops: "))
    out.append(Rule("Task 4 · Memory"))
    if report.memory is not None:
        out.extend(memory_rich(report.memory))
    out.extend(Text(f"note: {note.removeprefix('memory: ')}", style="dim") for note in report.notes
               if note.startswith("memory: "))
    return out


def _largest(shares: dict[str, float], n: int = 3) -> list[str]:
    return [f"{name} {percent(ratio)}" for name, ratio in sorted(shares.items(), key=lambda kv: -kv[1])[:n] if ratio > 0]


def summary_rich(report: FullReport) -> Any:
    """Totals, MACs/FLOPs, the largest parts (by parameters and by FLOPs) and the largest memory cell: one
    figure a line, each line short enough to stay whole at 40 columns."""
    from rich.table import Table

    params = report.params
    # The finer of the two breakdowns: a transformer's components are "embedding"/"other", its layer types
    # attention, feed-forward...; the built-in model's components name embedding, recurrent, projection.
    parts = params.layer_types if len(params.layer_types) > len(params.components) else params.components
    rows: list[tuple[str, str]] = [("parameters", f"{human_count(params.total)} ({grouped(params.total)})"),
                                   ("weights", f"{human_bytes(params.dtype_bytes.get('float32', 4 * params.total))} "
                                               "(float32)")]
    rows += [("largest" if i == 0 else "", line) for i, line in enumerate(_largest({s.name: s.ratio for s in parts}))]
    flops = report.flops
    if flops is not None:
        rows += [("MACs", f"{human_count(flops.macs, 'MACs')} (forward)"),
                 ("FLOPs", f"{human_count(flops.flops, 'FLOPs')} (forward)")]
        kinds: dict[str, float] = {}
        for c in flops.components:
            kind = re.sub(r" layer \d+$", "", c.component.split(" · ")[0])
            kinds[kind] = kinds.get(kind, 0.0) + (c.flops / flops.flops if flops.flops else 0.0)
        rows += [("most FLOPs" if i == 0 else "", line) for i, line in enumerate(_largest(kinds))]
    memory = report.memory
    cells = [c for c in memory.cells if c.bytes] if memory is not None else []
    if memory is not None and cells:
        top = max(cells, key=lambda c: c.bytes or 0)
        rows += [("peak memory", human_bytes(top.bytes or 0)), ("", f"batch {top.batch_size:,} × seq {top.seq_len:,}"),
                 ("", f"({'forward' if memory.mode == 'infer' else 'training step'} increment, "
                      f"{'measured' if top.measured_bytes is not None else 'estimated'})")]
    table = Table(title=f"Summary (batch {report.batch} × seq {report.seq})", title_justify="left", box=None,
                  show_header=False, padding=(0, 1), title_style="bold")
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for label, text in rows:
        table.add_row(label, text)
    return table
