"""MACs and FLOPs of one forward pass, counted through ``thop.profile`` on fake tensors.

Nothing is allocated: the model is a fake copy (FakeTensorMode on a fake cpu device), so a
billion-parameter model at batch 64 × seq 2048 is counted as fast as the default one. ``thop``
must run *outside* the mode (it creates real ``total_ops`` buffers and calls ``.item()``); calling
the fake module outside the mode still dispatches to fake kernels.

Conventions (also in the README):

* MACs: multiply-accumulates of the matrix products only (an embedding lookup is 0).
* FLOPs: 2·MACs + element-wise work per cell step and sequence (bias adds, gate activations,
  cell update; each activation evaluation = 1 FLOP), plus one add per output element of a biased Linear.
* Training step: forward + backward, the backward counted (``flops_training``): run under the operator pass
  where it can run on fake tensors, a closed form for the shape-only modules, the 3× rule as the fallback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from lstm_inspect.errors import InvalidInput
from lstm_inspect.hardware import Accelerator
from lstm_inspect.analyses.flops_checks import closed_form_checks, expected_layers
from lstm_inspect.analyses.flops_time import TRAINING_FACTOR, TimeEstimate, param_numels, time_estimate  # noqa: F401
from lstm_inspect.recurrence import Check
from lstm_inspect.op_pass import OperatorTally
from lstm_inspect.analyses.flops_components import _components, _operator_components, _owner_kind
from lstm_inspect.analyses.flops_thop import _Count, _profile
from lstm_inspect.analyses.flops_report import (  # noqa: F401  (the report types, re-exported)
    FLOPS_CONVENTION, THOP_RAW_INCLUDES, TRAINING_RULE, ComponentRow, FlopsGrid, FlopsReport, GridCell, LayerCheck,
    ModuleRow, PackedComparison,
)

if TYPE_CHECKING:
    from torch import nn

    from lstm_inspect.source import LoadedModel

def nothing_counted(module: "nn.Module", macs: int, uncounted: Sequence[tuple[str, int]] = ()) -> str | None:
    """Why a count of 0 MACs is no answer, or None when 0 can be true.

    A model with a weight matrix outside its embeddings multiplies by it; 0 MACs then means the forward
    multiplied through operations that have no formula here (they are named), not that it costs nothing.
    An embedding-only model (lookups) or one with only norms really has 0 MACs.
    """
    from torch import nn

    if macs:
        return None
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Embedding):
            continue
        for pname, param in sub.named_parameters(recurse=False):
            if param.dim() >= 2:
                where = f"{name}.{pname}" if name else pname
                ran = (": ops that ran without a formula: " + ", ".join(f"{op} ({calls} calls)" for op, calls in uncounted)
                       if uncounted else "")
                return (f"counted 0 MACs, yet the model multiplies by {where} {list(param.shape)}: nothing it runs "
                        f"has a MACs formula here, so there is no MACs figure{ran}")
    return None


def _inputs(loaded: "LoadedModel", mode: Any, device: str, batch: int, seq: int,
            lengths: Sequence[int] | None = None) -> tuple:
    from lstm_inspect.building import is_size_overflow, too_large

    try:
        with mode:
            return loaded.inputs(batch, seq, device, lengths)
    except RuntimeError as exc:
        if is_size_overflow(exc):
            raise too_large(f"batch {batch} × seq {seq}", exc, ("batch", "seq")) from None
        raise


def check_sample(batch: int, seq: int, lengths: Sequence[int] | None = None) -> None:
    """The library's own check of a sample input (field names, not flags: the CLI checks its flags first)."""
    for name, value in (("batch", batch), ("seq", seq)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInput(f"{name} must be a whole number of at least 1, got {value!r}", fields=(name,))
    if lengths is not None:
        if not lengths or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in lengths):
            raise InvalidInput(f"lengths must be whole numbers of at least 1, got {list(lengths)!r}", fields=("lengths",))
        if seq < max(lengths):
            raise InvalidInput(f"seq ({seq}) must be at least max(lengths) ({max(lengths)})",
                               fields=("seq", "lengths"))


def count_flops(
    loaded: "LoadedModel",
    *,
    batch: int = 1,
    seq: int = 32,
    lengths: Sequence[int] | None = None,
    accelerator: Accelerator | None = None,
    peak_tflops: float | None = None,
    dtype: str = "float32",
) -> FlopsReport:
    """Count one forward pass at ``batch`` × ``seq`` (or a packed batch of ``lengths``, padded to ``seq``).

    Args:
        loaded: any model; closed-form checks for the built-in family and rebuilt checkpoints.
        accelerator, peak_tflops, dtype: hardware for the time estimate (a peak alone: compute bound only).

    Returns:
        A FlopsReport; ``macs``/``flops`` are the packed figures when ``lengths`` is given.
    """
    from lstm_inspect.tracing import traced

    check_sample(batch, seq, lengths)
    notes: list[str] = list(loaded.notes)
    packed: PackedComparison | None = None

    def work(module: "nn.Module", mode: Any, device: str) -> tuple:
        if lengths is not None:
            count, packed, thop_raw = _count_packed(module, loaded, mode, device, seq, lengths)
        else:
            inputs = _inputs(loaded, mode, device, batch, seq)
            count = _profile(module, inputs, loaded, f"batch {batch} × seq {seq}", training=True)
            packed, thop_raw = None, count.thop_raw
        return module, count, packed, thop_raw, param_numels(module)

    fallbacks: list[str] = []
    module, count, packed, thop_raw, params = traced(loaded, work, fallbacks)
    notes += _fallback_notes(fallbacks)
    if lengths is not None:
        batch = len(lengths)
        notes.append("thop's raw figure is for the padded batch: thop 0.1.1 on a real PackedSequence also "
                     "charges the recurrent stack the padded rectangle")

    recorder = count.recorder
    notes += _coverage_notes(loaded, count, module)
    expected = expected_layers(loaded)
    checks: tuple[Check, ...] = () if expected is None else closed_form_checks(
        expected, recorder, sum(lengths) if lengths is not None else batch * seq, batch)
    if expected is None:
        notes.append("closed-form checks apply to the built-in model family only; this model is counted, not checked")
    time = None
    if accelerator is not None or peak_tflops is not None:
        sequential = max(lengths) if lengths is not None else None
        time = time_estimate(recorder, count.stock, count.flops, params, accelerator, peak_tflops, dtype, sequential,
                             training_flops=count.training.flops if count.training else None)
    return FlopsReport(
        model=loaded.description, batch_size=batch, seq_len=seq, macs=count.macs, flops=count.flops,
        modules=_module_rows(count),
        components=tuple(_components(recorder, count.stock, module) + _operator_components(module, count.operators)), checks=checks,
        thop_raw=thop_raw, packed=packed, time=time, notes=tuple(notes),
        uncounted_ops=tuple(sorted(count.operators.uncounted.items())), training=count.training,
    )


def _fallback_notes(fallbacks: list[str]) -> list[str]:
    if not fallbacks:
        return []
    return [f"optional kernels not installed ({', '.join(fallbacks)}): counted on transformers' reference PyTorch "
            "path, the same arithmetic the fused kernels do"]


def _count_packed(module: "nn.Module", loaded: "LoadedModel", mode: Any, device: str, seq: int,
                  lengths: Sequence[int]) -> tuple[_Count, PackedComparison, int]:
    """The packed batch counted, next to the same sequences padded to ``seq``; thop's raw padded figure."""
    batch = len(lengths)
    count = _profile(module, _inputs(loaded, mode, device, batch, seq, lengths), loaded, "lengths", training=True)
    padded_inputs = _inputs(loaded, mode, device, batch, seq)
    padded = _profile(module, padded_inputs, loaded, f"lengths (padded to {batch} × {seq})")
    packed = PackedComparison(
        lengths=tuple(lengths), padded_batch=batch, padded_seq_len=seq,
        packed_cell_steps=sum(lengths), padded_cell_steps=batch * seq,
        packed_macs=count.macs, packed_flops=count.flops, padded_macs=padded.macs, padded_flops=padded.flops,
    )
    return count, packed, padded.thop_raw


def _module_rows(count: _Count) -> tuple[ModuleRow, ...]:
    rows = [ModuleRow(m.name, m.type, m.macs, 2 * m.macs + m.elementwise, m.calls) for m in count.recorder.modules.values()]
    rows += [ModuleRow(name, kind, macs, flops, 1, stock=True, counted_by="thop_stock")
             for name, (kind, macs, flops) in count.stock.items()]
    ops = count.operators
    rows += [ModuleRow(o.name, o.type, o.macs, 2 * o.macs + o.elementwise, ops.calls.get(o.name, 1), counted_by="operators")
             for o in ops.owners.values() if o.macs or o.elementwise]
    return tuple(rows)


#: What the operator pass counted, in words, by the layer type of the module that ran it.
_OPERATOR_KINDS = {"Attention": "attention products", "Recurrent": "the recurrent/state-space scan",
                   "Feed-forward": "feed-forward functional calls", "Normalization": "norms"}


def _operator_kinds(module: "nn.Module", ops: OperatorTally) -> str:
    """The kinds of work the operator pass counted on this model (no "attention" where none ran)."""
    kinds: list[str] = []
    for o in ops.owners.values():
        if o.macs or o.elementwise:
            # the owner's own class counts too: GPT-2's attention products run in GPT2Attention itself
            kind = _OPERATOR_KINDS.get(_owner_kind(module, o.name), "functional calls")
            if kind not in kinds:
                kinds.append(kind)
    order = list(_OPERATOR_KINDS.values()) + ["functional calls"]
    return ", ".join(sorted(kinds, key=order.index))


def _coverage_notes(loaded: "LoadedModel", count: _Count, module: "nn.Module") -> list[str]:
    """What the count covers and what it does not."""
    notes = []
    if count.stock:
        notes.append("modules outside LSTM/GRU/RNN/Linear/Embedding are counted by thop's stock hooks: a "
                     "convolution's figure as MACs, any other module's (norms, pooling, activations) as element-wise FLOPs")
    ops = count.operators
    if ops.macs or ops.elementwise:
        notes.append(f"operations outside the hooked modules ({_operator_kinds(module, ops)}) are counted by the "
                     "operator pass: matrix products as MACs, element-wise ops as FLOPs")
    if ops.uncounted:
        listed = ", ".join(f"{op} ({calls})" for op, calls in sorted(ops.uncounted.items()))
        notes.append(f"ops that ran without a formula (not in these counts; calls in brackets): {listed}")
    return notes


def count_grid(loaded: "LoadedModel", batch_sizes: Sequence[int], seq_lens: Sequence[int]) -> FlopsGrid:
    """MACs and FLOPs of one forward for every (batch, seq) pair; one fake copy for all cells."""
    from lstm_inspect.tracing import traced

    for b in batch_sizes:
        for t in seq_lens:
            check_sample(b, t)
    cells: list[GridCell] = []
    uncounted: dict[str, int] = {}

    def work(module: "nn.Module", mode: Any, device: str) -> None:
        cells.clear()
        uncounted.clear()
        for b in batch_sizes:
            for s in seq_lens:
                count = _profile(module, _inputs(loaded, mode, device, b, s), loaded,
                                 f"batch_sizes × seq_lens cell {b} × {s}")
                cells.append(GridCell(b, s, count.macs, count.flops))
                uncounted.update(count.operators.uncounted)

    traced(loaded, work)
    return FlopsGrid(loaded.description, tuple(batch_sizes), tuple(seq_lens), tuple(cells), notes=tuple(loaded.notes),
                     uncounted_ops=tuple(sorted(uncounted.items())))


