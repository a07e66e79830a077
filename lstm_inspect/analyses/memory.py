"""Memory over a batch × sequence grid: measured (CUDA or CPU) and/or estimated (fake tensors).

The quantity, per cell: the memory increment of one step, excluding what was resident before it
(source document 000: "memory increment of one forward pass, excluding the initial cache"):
peak − baseline of allocated bytes, where the baseline holds the weights and the input batch.

* ``infer``: one forward under ``torch.no_grad()``.
* ``train``: forward, a language-model loss (cross-entropy of the output's last dimension against
  token targets), backward: activations kept for backward and every parameter's gradient. The
  optimizer's state (Adam: two moments per trainable element; SGD without momentum: none) is
  resident in steady training; it is counted from the parameter sizes, not run, and added to
  every cell (``optimizer_state_bytes``). The optimizer step's temporaries are not counted.

Weights are reported once, separately (``weights_bytes``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import signal
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from lstm_inspect.errors import AnalysisFailed, InvalidInput, first_line
from lstm_inspect.reporting import Rendered

if TYPE_CHECKING:
    import torch
    from torch import nn

    from lstm_inspect.source import LoadedModel

MODES = ("infer", "train")
OPTIMIZERS = ("none", "sgd", "adam")
DTYPES = ("float32", "float16", "bfloat16")
METHODS = ("measure", "estimate", "both")

#: Largest batch the budget search tries (token ids are indexed with int64; beyond this is a typo).
MAX_SEARCH_BATCH = 2**40


@dataclass(frozen=True)
class MemoryCell:
    """One (batch, seq) point. Bytes are the step's increment (plus optimizer state in train mode)."""

    batch_size: int
    seq_len: int
    status: str                       # "ok", "oom", "error"
    measured_bytes: int | None = None
    estimated_bytes: int | None = None
    reason: str | None = None         # why the status is not ok

    @property
    def error_ratio(self) -> float | None:
        """|estimate − measured| / measured, when both exist."""
        if self.measured_bytes is None or self.estimated_bytes is None or self.measured_bytes <= 0:
            return None
        return abs(self.estimated_bytes - self.measured_bytes) / self.measured_bytes

    @property
    def signed_error(self) -> float | None:
        """(estimate − measured) / measured, when both exist."""
        if self.error_ratio is None:
            return None
        return (self.estimated_bytes - self.measured_bytes) / self.measured_bytes  # type: ignore[operator]

    @property
    def bytes(self) -> int | None:
        """The figure a budget checks: measured where there is one, else estimated."""
        return self.measured_bytes if self.measured_bytes is not None else self.estimated_bytes


@dataclass(frozen=True)
class BudgetFit:
    """For one sequence length: the largest batch whose weights + increment fit in the budget."""

    seq_len: int
    max_batch_size: int               # 0: not even a batch of one fits
    estimated_bytes: int | None       # its increment (None when max_batch_size is 0)


@dataclass(frozen=True)
class MemoryReport(Rendered):
    model: dict[str, Any]
    mode: str
    optimizer: str
    dtype: str
    device: str
    method: str
    batch_sizes: tuple[int, ...]
    seq_lens: tuple[int, ...]
    lengths: tuple[int, ...] | None
    weights_bytes: int
    optimizer_state_bytes: int
    cells: tuple[MemoryCell, ...]
    interrupted: bool = False
    budget_bytes: int | None = None
    budget_fits: tuple[BudgetFit, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def total_cells(self) -> int:
        return len(self.batch_sizes) * len(self.seq_lens)

    def cell(self, batch_size: int, seq_len: int) -> MemoryCell | None:
        for c in self.cells:
            if c.batch_size == batch_size and c.seq_len == seq_len:
                return c
        return None

    @property
    def complete(self) -> bool:
        """Every cell of the grid ran and none failed (an ``oom`` cell is an answer, an ``error`` is not)."""
        return (not self.interrupted and len(self.cells) == self.total_cells
                and all(c.status != "error" for c in self.cells))

    @property
    def has_figures(self) -> bool:
        """At least one cell has a figure (measured or estimated)."""
        return any(c.bytes is not None for c in self.cells)

    def failures(self, cells: Sequence[MemoryCell] | None = None) -> str:
        """``'20 of 20 cells failed: <reason>'``, each distinct reason once, with how many cells gave it."""
        cells = [c for c in (self.cells if cells is None else cells) if c.reason]
        reasons = grouped_reasons(cells)
        text = "; ".join(f"{reason} ({len(group)} cells)" if len(group) > 1 and len(reasons) > 1 else reason
                         for reason, group in reasons.items())
        return f"{len(cells)} of {self.total_cells} cells failed: {text}"

    @property
    def max_error_ratio(self) -> float | None:
        ratios = [c.error_ratio for c in self.cells if c.error_ratio is not None]
        return max(ratios) if ratios else None


def grouped_reasons(cells: Sequence[MemoryCell]) -> dict[str, list[MemoryCell]]:
    """Cells by the reason they give, in grid order (a model that fails fails the same way in every cell)."""
    groups: dict[str, list[MemoryCell]] = {}
    for c in cells:
        if c.reason:
            groups.setdefault(c.reason, []).append(c)
    return groups


def check_choice(value: str, choices: Sequence[str], option: str) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise InvalidInput(f"{option} must be one of {', '.join(choices)}, got {value!r}")
    return text


def torch_dtype(name: str) -> "torch.dtype":
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


# --------------------------------------------------------------------------------------------- sizes

def weights_bytes(module: "nn.Module") -> int:
    """Bytes of the unique parameters and buffers (tied tensors once), at their current dtype."""
    seen: set[int] = set()
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) in seen:
            continue
        seen.add(id(t))
        total += t.numel() * t.element_size()
    return total


def optimizer_state_bytes(module: "nn.Module", optimizer: str, mode: str) -> int:
    """Steady-state optimizer memory: Adam keeps exp_avg and exp_avg_sq (each like the parameter) and
    a float32 step counter per parameter tensor; SGD without momentum keeps nothing."""
    if mode != "train" or optimizer in ("none", "sgd"):
        return 0
    seen: set[int] = set()
    total = 0
    for p in module.parameters():
        if id(p) in seen or not p.requires_grad:
            continue
        seen.add(id(p))
        total += 2 * p.numel() * p.element_size() + 4
    return total


# --------------------------------------------------------------------------------------------- steps

def make_step(train: bool) -> Callable[["nn.Module"], Callable[[tuple], Any]]:
    """The work measured per cell, for a module: a no-grad forward, or forward + loss + backward."""

    def bind(module: "nn.Module") -> Callable[[tuple], Any]:
        import torch

        def infer(args: tuple) -> None:
            with torch.no_grad():
                out = module(*args)
            del out

        def train_step(args: tuple) -> None:
            loss = lm_loss(module(*args))
            loss.backward()
            del loss
            # Gradients stay allocated until the next step's zero_grad: they are part of the peak.

        return train_step if train else infer

    return bind


def lm_loss(output: Any) -> "torch.Tensor":
    """A language-model loss on a forward's output: cross-entropy over the last dimension of its first
    floating tensor (targets: token 0), or the sum of that tensor when it has one dimension."""
    import torch
    import torch.nn.functional as F

    tensor = _first_float_tensor(output)
    if tensor is None:
        raise AnalysisFailed("train mode needs a floating-point output to take a loss of; the forward returned none")
    if tensor.dim() < 2:
        return tensor.sum()
    logits = tensor.reshape(-1, tensor.shape[-1])
    targets = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, targets)


def _first_float_tensor(value: Any) -> "torch.Tensor | None":
    import torch
    from torch.nn.utils.rnn import PackedSequence

    if isinstance(value, PackedSequence):
        value = value.data
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else None
    if hasattr(value, "to_tuple"):  # transformers ModelOutput
        value = value.to_tuple()
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_float_tensor(item)
            if found is not None:
                return found
    return None


# ------------------------------------------------------------------------------------------- models

def converted_meta(module: "nn.Module", dtype: "torch.dtype") -> "nn.Module":
    """A copy of ``module`` on meta with its floating tensors at ``dtype``.

    Real weights (a checkpoint) are never copied: the deep copy maps each tensor straight to a meta
    tensor of its shape (tied tensors stay tied through the memo).
    """
    import torch
    from torch import nn

    memo: dict[int, Any] = {}
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) not in memo:
            meta = torch.empty_like(t, device="meta")
            memo[id(t)] = nn.Parameter(meta, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else meta
    clone = copy.deepcopy(module, memo)
    return clone.to(dtype=dtype)


def forward_args(loaded: "LoadedModel", batch: int, seq: int, device: Any, lengths: Sequence[int] | None) -> tuple:
    """The forward's arguments for one cell (``lengths`` passed only when packing is asked for)."""
    if lengths is None:
        return loaded.sample_input(batch, seq, device)
    return loaded.sample_input(batch, seq, device, list(lengths))


def materialize(loaded: "LoadedModel", device: "torch.device", dtype: "torch.dtype") -> "nn.Module":
    """Real weights on ``device`` at ``dtype``: meta tensors get storage and small random values
    (uninitialised memory could hold denormals, which slow CPU kernels down many times)."""
    import torch

    try:
        if any(t.is_meta for t in list(loaded.module.parameters()) + list(loaded.module.buffers())):
            module = converted_meta(loaded.module, dtype).to_empty(device=device)
            with torch.no_grad():
                for t in list(module.parameters()) + list(module.buffers()):
                    if t.is_floating_point():
                        t.uniform_(-0.05, 0.05)
                    else:
                        t.zero_()
            return module
        return copy.deepcopy(loaded.module).to(device=device, dtype=dtype)
    except torch.OutOfMemoryError as exc:
        raise AnalysisFailed(f"the model's weights do not fit on {device}: {first_line(exc)}") from None
    except RuntimeError as exc:
        raise AnalysisFailed(f"could not put the model's weights on {device}: {first_line(exc)}") from None


# -------------------------------------------------------------------------------------------- sweep

@dataclass
class _Estimator:
    """A fake copy of the model at the asked dtype, ready to estimate any cell."""

    loaded: "LoadedModel"
    module: Any
    mode: Any
    train: bool
    lengths: Sequence[int] | None
    extra: int = 0                     # optimizer state added to every cell
    _step: Any = field(default=None, repr=False)

    def __call__(self, batch: int, seq: int) -> int:
        from lstm_inspect.analyses.memory_estimate import estimate_increment

        if self._step is None:
            self._step = make_step(self.train)(self.module)
        try:
            return estimate_increment(
                self._step, lambda: forward_args(self.loaded, batch, seq, "cpu", self.lengths), self.mode) + self.extra
        finally:
            if self.train:
                self.module.zero_grad(set_to_none=True)


def _estimator(loaded: "LoadedModel", dtype: "torch.dtype", train: bool, lengths, extra: int):
    from lstm_inspect.tracing import fake_copy

    converted = dataclasses.replace(loaded, module=converted_meta(loaded.module, dtype))
    ctx = fake_copy(converted)
    module, mode = ctx.__enter__()
    module.train(train)
    return _Estimator(converted, module, mode, train, lengths, extra)


def sweep_memory(
    loaded: "LoadedModel",
    *,
    batch_sizes: Sequence[int],
    seq_lens: Sequence[int],
    method: str = "both",
    mode: str = "infer",
    optimizer: str = "none",
    dtype: str = "float32",
    device: "torch.device | None" = None,
    lengths: Sequence[int] | None = None,
    budget_bytes: int | None = None,
    on_cell: Callable[[MemoryCell, int, int], None] | None = None,
) -> MemoryReport:
    """Measure and/or estimate every (batch, seq) cell; never loses a finished cell.

    Args:
        loaded: any model; its forward's arguments come from ``loaded.sample_input``.
        batch_sizes, seq_lens: the grid (rows, columns). With ``lengths`` the grid is the one packed
            batch ``len(lengths) × max(lengths)``.
        method: ``measure``, ``estimate`` or ``both``.
        mode: ``infer`` or ``train``; optimizer: ``none``, ``sgd`` or ``adam`` (train only).
        dtype: ``float32``, ``float16`` or ``bfloat16``: the weights' and activations' type.
        device: where to measure (estimates always run on fake tensors).
        lengths: sequence lengths of a packed batch (built-in model family).
        budget_bytes: with it, also find per seq length the largest batch whose estimated
            weights + increment fit (``budget_fits``).
        on_cell: called after each finished cell with ``(cell, done, total)`` (progress bars).

    Returns:
        A MemoryReport. A cell that runs out of memory is ``oom`` (its memory released), any other
        failure ``error`` with a reason; Ctrl-C stops the sweep and returns what was finished with
        ``interrupted=True``.
    """
    import torch

    method = check_choice(method, METHODS, "--method")
    mode = check_choice(mode, MODES, "--mode")
    optimizer = check_choice(optimizer, OPTIMIZERS, "--optimizer")
    dtype = check_choice(dtype, DTYPES, "--dtype")
    if lengths is not None:
        lengths = list(lengths)
        batch_sizes, seq_lens = [len(lengths)], [max(lengths)]
    if not batch_sizes or not seq_lens:
        raise InvalidInput("--batch-sizes and --seq-lens need at least one value each")
    device = device if device is not None else torch.device("cpu")
    tdtype = torch_dtype(dtype)
    train = mode == "train"

    meta_at_dtype = converted_meta(loaded.module, tdtype)
    weights = weights_bytes(meta_at_dtype)
    opt_state = optimizer_state_bytes(meta_at_dtype, optimizer, mode)
    notes = (*loaded.notes, *_notes(method, mode, optimizer, device, lengths))

    estimator = _estimator(loaded, tdtype, train, lengths, opt_state) if method in ("estimate", "both") else None
    real = None
    step = None
    if method in ("measure", "both"):
        real = materialize(loaded, device, tdtype)
        real.train(train)
        step = make_step(train)(real)
        _warm_up(step, real, loaded, device, lengths, train)

    # A real CPU forward too large for the host would not fail cleanly: the allocator hands out
    # overcommitted pages and the kernel swaps or kills the process. Such cells are not run.
    guard = None
    if real is not None and device.type == "cpu" and available_host_bytes() is not None:
        guard = estimator or _estimator(loaded, tdtype, train, lengths, opt_state)
    cells: list[MemoryCell] = []
    total = len(batch_sizes) * len(seq_lens)
    interrupted = False
    try:
        with _interruptible() as stop:
            for batch in batch_sizes:
                for seq in seq_lens:
                    if stop.is_set():
                        raise KeyboardInterrupt
                    need = _host_estimate(batch, seq, guard)
                    cell = (_too_big_for_host(batch, seq, need, estimator)
                            or _run_cell(batch, seq, estimator, real, step, device, loaded, lengths, opt_state, train,
                                         estimated=need if estimator is not None else None))
                    cells.append(cell)
                    if on_cell is not None:
                        on_cell(cell, len(cells), total)
                    if stop.is_set():
                        raise KeyboardInterrupt
    except KeyboardInterrupt:
        interrupted = True
        from lstm_inspect.analyses.memory_measure import release

        release(device)

    fits: tuple[BudgetFit, ...] = ()
    if budget_bytes is not None and not interrupted:
        try:
            search = estimator or _estimator(loaded, tdtype, train, lengths, opt_state)
            fits = tuple(largest_batch(search, seq, budget_bytes - weights) for seq in seq_lens) if lengths is None else ()
        except KeyboardInterrupt:
            interrupted = True
        except Exception as exc:  # the cells are kept; the budget table says why it is missing
            notes = (*notes, f"--budget search failed: {first_line(exc)}")
    return MemoryReport(
        model=loaded.description, mode=mode, optimizer=optimizer, dtype=dtype, device=str(device), method=method,
        batch_sizes=tuple(batch_sizes), seq_lens=tuple(seq_lens), lengths=tuple(lengths) if lengths else None,
        weights_bytes=weights, optimizer_state_bytes=opt_state, cells=tuple(cells), interrupted=interrupted,
        budget_bytes=budget_bytes, budget_fits=fits, notes=notes,
    )


@contextlib.contextmanager
def _interruptible() -> Iterator[threading.Event]:
    """Ctrl-C during a sweep: raise KeyboardInterrupt at once, as Python does, and also remember it.

    A KeyboardInterrupt that lands inside a finalizer (``gc.collect()`` between cells, weakref
    callbacks of the estimate's tracker) is printed and swallowed by Python; the remembered flag
    stops the sweep at the next cell boundary all the same.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_sigint(signum, frame):
        stop.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _warm_up(step, real, loaded, device, lengths, train) -> None:
    """One small unmeasured step: the first forward in a process allocates one-time state (kernel
    libraries' caches, thread pools), which is no part of any cell's increment."""
    try:
        step(forward_args(loaded, 1, 1, device, [1] if lengths is not None else None))
    except Exception:
        pass  # the cells will report the failure themselves
    finally:
        if train:
            real.zero_grad(set_to_none=True)


def available_host_bytes() -> int | None:
    """The host memory the kernel says can still be allocated without swapping (Linux), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _host_estimate(batch, seq, guard) -> int | None:
    """The estimated increment of a cell about to be measured on the CPU (None: no guard, or no estimate).

    Every cell is checked, small ones too: a long sequence at batch 1 in train mode can need tens of GB.
    """
    if guard is None:
        return None
    try:
        return guard(batch, seq)
    except KeyboardInterrupt:
        raise
    except Exception:  # no estimate: measure, as without the guard
        return None


def _too_big_for_host(batch, seq, need, estimator) -> MemoryCell | None:
    """An ``oom`` cell, not run, when the estimated increment exceeds the host's available memory."""
    if need is None:
        return None
    free = available_host_bytes()
    if free is None or need <= free:
        return None
    from lstm_inspect.units import human_bytes

    return MemoryCell(batch, seq, "oom", None, need if estimator is not None else None,
                      f"out of memory: not run, the estimated {human_bytes(need)} exceeds the "
                      f"{human_bytes(free)} of host memory available")


def _run_cell(batch, seq, estimator, real, step, device, loaded, lengths, opt_state, train,
              estimated: int | None = None) -> MemoryCell:
    """Estimate and/or measure one cell (``estimated``: already known from the host guard)."""
    from lstm_inspect.analyses.memory_measure import is_out_of_memory, measure_increment, release

    measured = None
    status, reason = "ok", None
    if estimator is not None and estimated is None:
        try:
            estimated = estimator(batch, seq)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a user's model may fail in any way: this cell says so, the sweep goes on
            status, reason = "error", f"estimate failed: {first_line(exc)}"
    if real is not None:
        try:
            measured = measure_increment(step, lambda: forward_args(loaded, batch, seq, device, lengths), device) + opt_state
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            oom = is_out_of_memory(exc)
            message = first_line(exc)
            del exc  # its traceback holds the cell's tensors
            status, reason = ("oom", f"out of memory: {message}") if oom else ("error", f"measure failed: {message}")
        finally:
            if train:
                real.zero_grad(set_to_none=True)
            release(device)
    return MemoryCell(batch, seq, status, measured, estimated, reason)


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


def _notes(method: str, mode: str, optimizer: str, device, lengths) -> tuple[str, ...]:
    notes = []
    if method in ("estimate", "both"):
        notes.append("estimate: storage bytes of a fake-tensor run of the CPU kernels (nothing allocated)")
        if device is not None and device.type == "cuda":
            notes.append("estimate follows the CPU kernels: cuDNN's own workspace and kernel choices on CUDA differ")
    if mode == "train":
        notes.append("train: forward + cross-entropy loss + backward (activations kept, gradients)"
                     + ("; optimizer state counted from the parameters, step temporaries not counted" if optimizer == "adam"
                        else "; SGD without momentum keeps no state" if optimizer == "sgd" else ""))
    if lengths is not None and method in ("estimate", "both"):
        notes.append("packed input: the estimate runs equal-length groups unpacked (fake tensors cannot run the packed "
                     "kernel); the measurement runs the packed kernel")
    return tuple(notes)
