"""``report``: source document 000's all-in-one run (structure, params, FLOPs, memory) for one model.

FLOPs and memory are optional sections: None, with a note saying why, when that analysis fails on
this model, so the report still holds everything else. The report holds data only; the renderer
(:mod:`lstm_inspect.render.report`) decides how each section is shown.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from lstm_inspect.analyses.layers import LayerReport, describe_layers
from lstm_inspect.analyses.params import ParamReport, count_params
from lstm_inspect.analyses.structure import StructureReport, describe_structure
from lstm_inspect.errors import AnalysisFailed, first_line
from lstm_inspect.grid import DEFAULT_BATCH_SIZES, DEFAULT_SEQ_LENS
from lstm_inspect.reporting import Rendered

if TYPE_CHECKING:
    from lstm_inspect.analyses.flops import FlopsReport
    from lstm_inspect.analyses.memory import MemoryReport
    from lstm_inspect.source import LoadedModel


@dataclass(frozen=True)
class FullReport(Rendered):
    model: dict[str, Any]
    generated_at: str                 # ISO-8601 UTC, seconds
    batch: int
    seq: int
    structure: StructureReport
    params: ParamReport
    layers: LayerReport
    flops: FlopsReport | None         # None when counting failed on this model (see notes)
    memory: MemoryReport | None       # None when the memory analysis failed on this model (see notes)
    notes: tuple[str, ...] = ()       # "flops: counting FLOPs failed: ..."


def run_report(loaded: "LoadedModel", *, batch: int = 1, seq: int = 32, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
               seq_lens: Sequence[int] = DEFAULT_SEQ_LENS, device: str = "auto",
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
    flops, flops_note = _flops_section(loaded, batch, seq)
    memory, memory_note = _memory_section(loaded, batch_sizes, seq_lens, device)
    notes = tuple(f"{name}: {note}" for name, note in (("flops", flops_note), ("memory", memory_note)) if note)
    return FullReport(loaded.description, stamp.isoformat().replace("+00:00", "Z"), batch, seq, structure, params,
                      layers, flops, memory, notes)


def _flops_section(loaded: "LoadedModel", batch: int, seq: int) -> tuple["FlopsReport | None", str | None]:
    from lstm_inspect.analyses.flops import count_flops

    try:
        return count_flops(loaded, batch=batch, seq=seq), None
    except AnalysisFailed as exc:   # the rest of the report stands without this section
        return None, f"counting FLOPs failed: {first_line(exc)}"


def _memory_section(loaded: "LoadedModel", batch_sizes: Sequence[int], seq_lens: Sequence[int],
                    device: str) -> tuple["MemoryReport | None", str | None]:
    from lstm_inspect.analyses.memory import sweep_memory
    from lstm_inspect.building import resolve_device

    where = resolve_device(device)
    # Measuring needs real weights and a real step per cell: on a GPU that is quick and is the
    # point; on the CPU it is slow for the default grid, so there the report gives the estimate
    # (``lstm-inspect memory --method both --device cpu`` measures on the CPU).
    method = "both" if where.type == "cuda" else "estimate"
    try:
        return sweep_memory(loaded, batch_sizes=list(batch_sizes), seq_lens=list(seq_lens), method=method,
                            device=where), None
    except AnalysisFailed as exc:   # the rest of the report stands without this section
        return None, f"the memory analysis failed: {first_line(exc)}"
