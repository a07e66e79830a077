"""Memory over a batch × sequence grid: measured (CUDA or CPU) and/or estimated (fake tensors).

The quantity, per cell: the memory increment of one step, excluding what was resident before it
(source document 000: "memory increment of one forward pass, excluding the initial cache"):
peak − baseline of allocated bytes, where the baseline holds the weights and the input batch.

* ``infer``: one forward under ``torch.no_grad()``.
* ``train``: the usual training loop (``loop="usual"``): forward, cross-entropy of the output's last
  dimension against token targets with the logits still referenced, backward, and with an optimizer
  its real ``step()``: activations kept for backward, every parameter's gradient, the optimizer step's
  temporaries. The optimizer's state (Adam: two moments per trainable element and a step counter per
  tensor; SGD without momentum: none) is created by an unmeasured first step, resident in steady
  training, and added to every cell (``optimizer_state_bytes``). ``loop="lean"``: the logits are
  freed before backward (:mod:`lstm_inspect.analyses.memory_step`).

Weights are reported once, separately (``weights_bytes``).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Callable, Sequence

from lstm_inspect.analyses.memory_probes import Estimator, Meter
from lstm_inspect.analyses.memory_report import (  # noqa: F401  (re-exported: the report types)
    DTYPES, MAX_SEARCH_BATCH, METHODS, MODES, OPTIMIZERS, BudgetFit, MemoryCell, MemoryReport, check_choice,
    grouped_reasons,
)
from lstm_inspect.analyses.memory_step import (  # noqa: F401  (re-exported)
    TRAIN_LOOPS, lm_loss, make_step, optimizer_state_bytes, torch_dtype, weights_bytes,
)
from lstm_inspect.errors import InvalidInput, first_line

if TYPE_CHECKING:
    import torch

    from lstm_inspect.source import LoadedModel

#: ``admit(batch, seq, estimated_bytes)``: None to run a cell, else why it is not run (an ``oom`` cell).
Admit = Callable[[int, int, int], "str | None"]


def sweep_memory(
    loaded: "LoadedModel",
    *,
    batch_sizes: Sequence[int],
    seq_lens: Sequence[int],
    method: str = "both",
    mode: str = "infer",
    optimizer: str = "none",
    train_loop: str = "usual",
    dtype: str = "float32",
    device: "torch.device | None" = None,
    lengths: Sequence[int] | None = None,
    budget_bytes: int | None = None,
    on_cell: Callable[[MemoryCell, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    admit: Admit | None = None,
    trace_every_cell: bool = False,
) -> MemoryReport:
    """Measure and/or estimate every (batch, seq) cell into a MemoryReport; never loses a finished cell
    (``oom``/``error`` cells carry a reason; after Ctrl-C the finished cells and ``interrupted``).

    Args:
        loaded: any model; its forward's arguments come from ``loaded.inputs``.
        batch_sizes, seq_lens: the grid. With ``lengths`` it is the one packed batch ``len × max(lengths)``.
        method: measure/estimate/both; mode: infer/train; optimizer: none/sgd/adam; dtype: float32/16, bfloat16.
        train_loop: usual (logits referenced through backward) or lean (logits freed before backward).
        device: where to measure (estimates run on fake tensors).
        budget_bytes: also find per seq length the largest batch whose weights + estimate fit.
        on_cell: called after each finished cell with ``(cell, done, total)`` (progress bars).
        should_stop: asked between cells; True stops the sweep as Ctrl-C does (``interrupted``).
        admit: asked before a cell is measured, with its estimate: a reason not to run it makes it ``oom``.
        trace_every_cell: never estimate a cell from the law fitted to a few traces (:mod:`.memory_fit`).
    """
    import torch

    method, mode, optimizer, dtype, train_loop = (
        check_choice(method, METHODS, "method"), check_choice(mode, MODES, "mode"),
        check_choice(optimizer, OPTIMIZERS, "optimizer"), check_choice(dtype, DTYPES, "dtype"),
        check_choice(train_loop, TRAIN_LOOPS, "train_loop"))
    batch_sizes, seq_lens, lengths = _grid_axes(batch_sizes, seq_lens, lengths)
    device = device if device is not None else torch.device("cpu")
    tdtype, train = torch_dtype(dtype), mode == "train"
    weights, opt_state = _resident(loaded, tdtype, optimizer, mode)
    notes = (*loaded.notes, *_notes(method, mode, optimizer, device, lengths, train_loop))
    probe: dict[str, Any] = dict(train=train, lengths=lengths, extra=opt_state, loop=train_loop, optimizer=optimizer)
    with contextlib.ExitStack() as stack:
        estimating = method != "measure" or admit is not None or budget_bytes is not None
        kernels = "cuda" if device.type == "cuda" else "cpu"
        estimator = stack.enter_context(Estimator(loaded, tdtype, kernels=kernels, **probe)) if estimating else None
        if estimator is not None and not trace_every_cell:
            estimator.plan(batch_sizes, seq_lens)
            notes = (*notes, *_law_notes(estimator, batch_sizes, seq_lens))
        meter = stack.enter_context(Meter(loaded, device, tdtype, **probe)) if method != "estimate" else None
        cells, interrupted = _grid(batch_sizes, seq_lens, estimator, meter, report_estimate=method != "measure",
                                   on_cell=on_cell, should_stop=should_stop, admit=admit)
        fits: tuple[BudgetFit, ...] = ()
        if budget_bytes is not None and not interrupted and estimator is not None and lengths is None:
            fits, interrupted, failed = _budget_fits(estimator, seq_lens, budget_bytes, weights)
            notes = (*notes, *failed)
    return MemoryReport(
        model=loaded.description, mode=mode, optimizer=optimizer, train_loop=train_loop if train else None,
        dtype=dtype, device=str(device), method=method,
        batch_sizes=tuple(batch_sizes), seq_lens=tuple(seq_lens), lengths=tuple(lengths) if lengths else None,
        weights_bytes=weights, optimizer_state_bytes=opt_state, cells=tuple(cells), interrupted=interrupted,
        budget_bytes=budget_bytes, budget_fits=fits, notes=(*notes, *(estimator.notes if estimator else ())),
    )


def _resident(loaded: "LoadedModel", dtype: "torch.dtype", optimizer: str, mode: str) -> tuple[int, int]:
    """(weights, optimizer state) in bytes at ``dtype``: resident before the step, not in its increment."""
    return weights_bytes(loaded.module, dtype), optimizer_state_bytes(loaded.module, optimizer, mode, dtype)


def _grid_axes(batch_sizes: Sequence[int], seq_lens: Sequence[int],
               lengths: Sequence[int] | None) -> tuple[list[int], list[int], list[int] | None]:
    """The grid to sweep: the one packed batch ``len × max(lengths)`` when ``lengths`` is given."""
    if lengths is not None:
        return [len(lengths)], [max(lengths)], list(lengths)
    if not batch_sizes or not seq_lens:
        raise InvalidInput("batch_sizes and seq_lens need at least one value each", fields=("batch_sizes", "seq_lens"))
    return list(batch_sizes), list(seq_lens), None


def _budget_fits(estimator: Estimator, seq_lens: Sequence[int], budget: int,
                 weights: int) -> tuple[tuple[BudgetFit, ...], bool, tuple[str, ...]]:
    """(fits per sequence length, interrupted, notes): the cells are kept whatever happens here."""
    import dataclasses

    try:
        fits = (largest_batch(estimator, seq, budget - weights) for seq in seq_lens)
        return tuple(dataclasses.replace(f, total_bytes=None if f.estimated_bytes is None else f.estimated_bytes + weights)
                     for f in fits), False, ()
    except KeyboardInterrupt:
        return (), True, ()
    except Exception as exc:  # noqa: BLE001 - the budget table says why it is missing
        return (), False, (f"budget search failed: {first_line(exc)}",)


def _grid(batch_sizes: Sequence[int], seq_lens: Sequence[int], estimator: Estimator | None, meter: Meter | None, *,
          report_estimate: bool, on_cell: Callable[[MemoryCell, int, int], None] | None,
          should_stop: Callable[[], bool] | None, admit: Admit | None) -> tuple[list[MemoryCell], bool]:
    """Every cell in grid order until the grid ends or a stop is asked: (cells, interrupted)."""
    cells: list[MemoryCell] = []
    total = len(batch_sizes) * len(seq_lens)
    stop = should_stop or (lambda: False)
    try:
        for batch in batch_sizes:
            for seq in seq_lens:
                if stop():
                    raise KeyboardInterrupt
                cells.append(_cell(batch, seq, estimator, meter, report_estimate, admit))
                if on_cell is not None:
                    on_cell(cells[-1], len(cells), total)
        if stop():
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        if meter is not None:
            from lstm_inspect.analyses.memory_measure import release

            release(meter.device)
        return cells, True
    return cells, False


def _cell(batch: int, seq: int, estimator: Estimator | None, meter: Meter | None, report_estimate: bool,
          admit: Admit | None) -> MemoryCell:
    """Estimate and/or measure one cell; a failure makes this cell say so, and the sweep goes on."""
    from lstm_inspect.analyses.memory_measure import is_out_of_memory

    estimated, measured, status, reason = None, None, "ok", None
    if estimator is not None and (report_estimate or admit is not None):
        try:
            estimated = estimator(batch, seq)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a user's model may fail in any way
            status, reason = "error", f"estimate failed: {first_line(exc)}"
    if meter is not None and admit is not None and estimated is not None:
        refused = admit(batch, seq, estimated)
        if refused is not None:
            return MemoryCell(batch, seq, "oom", None, estimated if report_estimate else None, refused,
                              extrapolated=report_estimate and estimator is not None and estimator.extrapolated(batch, seq))
    if not report_estimate:
        estimated, status, reason = None, "ok", None
    if meter is not None:
        try:
            measured = meter(batch, seq)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001
            oom, message = is_out_of_memory(exc), first_line(exc)
            del exc  # its traceback holds the cell's tensors
            status, reason = ("oom", f"out of memory: {message}") if oom else ("error", f"measure failed: {message}")
    extrapolated = estimated is not None and estimator is not None and estimator.extrapolated(batch, seq)
    return MemoryCell(batch, seq, status, measured, estimated, reason, extrapolated)


def largest_batch(estimate: Callable[[int, int], int], seq: int, room: int) -> BudgetFit:
    """The largest batch whose estimated increment is at most ``room`` bytes, by doubling then
    bisection (an increment never shrinks as the batch grows)."""
    if room <= 0 or estimate(1, seq) > room:
        return BudgetFit(seq, 0, None)
    low = 1                                  # fits
    high = 2
    while high <= MAX_SEARCH_BATCH and estimate(high, seq) <= room:
        low, high = high, high * 2
    if high > MAX_SEARCH_BATCH:
        return BudgetFit(seq, low, estimate(low, seq))
    while high - low > 1:                   # low fits, high does not
        mid = (low + high) // 2
        if estimate(mid, seq) <= room:
            low = mid
        else:
            high = mid
    return BudgetFit(seq, low, estimate(low, seq))


def _law_notes(estimator: Estimator, batch_sizes: Sequence[int], seq_lens: Sequence[int]) -> tuple[str, ...]:
    if not any(estimator.extrapolated(b, s) for b in batch_sizes for s in seq_lens):
        return tuple(f"every cell traced (slower): the law fitted to a few traces does not hold here: {reason}"
                     for reason in estimator.law_refused[:1])
    return (f"cells marked ~ are extrapolated (the model runs one op per time step): {estimator.law.describe()}",)


def _notes(method: str, mode: str, optimizer: str, device, lengths, loop: str = "usual") -> tuple[str, ...]:
    from lstm_inspect import torch_adapters

    notes = []
    if method in ("estimate", "both"):
        if device is not None and device.type == "cuda":
            notes.append("estimate: storage bytes of a traced run (nothing allocated) with CUDA's kernels: "
                         "recurrent layers as one cuDNN call, its reserve exact, its workspace fitted on an H200 "
                         "(cuDNN 9.19; other GPUs may choose other algorithms)")
        else:
            notes.append("estimate: storage bytes of a traced run of the CPU kernels on fake tensors, or on the meta "
                         "device where a later note says so (nothing allocated)")
            if not torch_adapters.validated():
                notes.append(f"the estimate's oneDNN terms were validated on torch {', '.join(torch_adapters.VALIDATED_TORCH)}; "
                             f"this is torch {torch_adapters.torch_minor()}: compare with --method both")
    if mode == "train":
        loop_text = ("usual loop: logits = model(x); loss = cross_entropy(logits, y); loss.backward()"
                     if loop == "usual" else
                     "lean loop: loss = loss_of(model(x)); loss.backward() (logits freed before backward)")
        notes.append(f"train, {loop_text}" + (f"; optimizer.step() ({optimizer}) runs" if optimizer != "none" else "")
                     + ("; Adam's state, created by a first unmeasured step, is resident and added to every cell"
                        if optimizer == "adam" else "; SGD without momentum keeps no state" if optimizer == "sgd" else ""))
    if lengths is not None and method in ("estimate", "both"):
        notes.append("packed input: the estimate runs equal-length groups unpacked (fake tensors cannot run the packed "
                     "kernel); the measurement runs the packed kernel")
    return tuple(notes)
