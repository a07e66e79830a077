"""``report``: source document 000's all-in-one run (structure, params, FLOPs, memory) for one model.

FLOPs and memory come from their own analyses when this build has them; each is an optional
section (None, with a note, when absent or when it fails on this model), so the report still holds
everything else.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from lstm_inspect.analyses.layers import LayerReport, describe_layers
from lstm_inspect.analyses.params import ParamReport, count_params
from lstm_inspect.analyses.structure import StructureReport, describe_structure
from lstm_inspect.errors import InvalidInput, first_line

if TYPE_CHECKING:
    from lstm_inspect.source import LoadedModel


@dataclass(frozen=True)
class Section:
    """An optional part of the report: its analysis result and how to render it (None when absent)."""

    name: str                         # "flops" | "memory"
    report: Any | None
    to_json: Callable[[Any], dict] | None = None
    to_rich: Callable[[Any], list] | None = None
    note: str | None = None           # why it is absent, or what it did not cover


@dataclass(frozen=True)
class FullReport:
    model: dict[str, Any]
    generated_at: str                 # ISO-8601 UTC, seconds
    batch: int
    seq: int
    structure: StructureReport
    params: ParamReport
    layers: LayerReport
    sections: tuple[Section, ...]


def run_report(loaded: "LoadedModel", *, batch: int = 1, seq: int = 32, batch_sizes: Sequence[int] = (1, 2, 4, 8, 16),
               seq_lens: Sequence[int] = (32, 64, 128, 256), device: str = "auto",
               now: _dt.datetime | None = None) -> FullReport:
    """Everything about ``loaded`` in one go.

    Args:
        loaded: the model.
        batch, seq: the sample input for the structure trace and the FLOPs count.
        batch_sizes, seq_lens: the memory grid (source document 000's defaults).
        device: where memory may be measured (``auto``: CUDA when present; the estimate is always given).
        now: the timestamp to record (default: the current UTC time).
    """
    stamp = (now or _dt.datetime.now(_dt.timezone.utc)).astimezone(_dt.timezone.utc).replace(microsecond=0)
    structure = describe_structure(loaded, batch=batch, seq=seq)
    params = count_params(loaded)
    layers = describe_layers(loaded)
    sections = (_flops_section(loaded, batch, seq), _memory_section(loaded, batch_sizes, seq_lens, device))
    return FullReport(loaded.description, stamp.isoformat().replace("+00:00", "Z"), batch, seq, structure, params,
                      layers, sections)


def _flops_section(loaded: "LoadedModel", batch: int, seq: int) -> Section:
    from lstm_inspect.analyses.flops import count_flops
    from lstm_inspect.render.flops import flops_json, flops_rich

    try:
        result = count_flops(loaded, batch=batch, seq=seq)
    except InvalidInput:
        raise
    except Exception as exc:  # noqa: BLE001 - the rest of the report stands without this section
        return Section("flops", None, note=f"counting FLOPs failed: {first_line(exc)}")
    return Section("flops", result, flops_json, flops_rich)


def _memory_section(loaded: "LoadedModel", batch_sizes: Sequence[int], seq_lens: Sequence[int], device: str) -> Section:
    from lstm_inspect.analyses.memory import sweep_memory
    from lstm_inspect.render.memory import memory_json, memory_rich
    from lstm_inspect.building import resolve_device

    where = resolve_device(device)
    # Measuring needs real weights and a real step per cell: on a GPU that is quick and is the
    # point; on the CPU it is slow for the default grid, so there the report gives the estimate
    # (``lstm-inspect memory --method both --device cpu`` measures on the CPU).
    method = "both" if where.type == "cuda" else "estimate"
    try:
        result = sweep_memory(loaded, batch_sizes=list(batch_sizes), seq_lens=list(seq_lens), method=method,
                              device=where)
    except InvalidInput:
        raise
    except Exception as exc:  # noqa: BLE001 - the rest of the report stands without this section
        return Section("memory", None, note=f"the memory analysis failed: {first_line(exc)}")
    return Section("memory", result, memory_json, memory_rich)
