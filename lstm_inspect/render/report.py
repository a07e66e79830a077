"""``report``: one JSON document (``lstm-inspect.report/1``) and the console run, from one FullReport."""

from __future__ import annotations

from typing import Any

from lstm_inspect.analyses.report import FullReport
from lstm_inspect.render.common import envelope
from lstm_inspect.render.flops import flops_json, flops_rich
from lstm_inspect.render.memory import memory_json, memory_rich
from lstm_inspect.render.layers import layers_json
from lstm_inspect.render.params import params_json, params_rich
from lstm_inspect.render.structure import structure_json, structure_rich

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
    """The sections in source document 000's order, each under a rule."""
    from rich.rule import Rule
    from rich.text import Text

    out: list = [Text(f"lstm-inspect report · {report.model.get('name', 'model')} · {report.generated_at}", style="bold")]
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
