"""Measuring a step's memory increment for real: CUDA allocator statistics, or the CPU profiler.

Both give peak − baseline of the bytes the allocator hands out while the step runs; the weights
and the input batch exist before the baseline is taken and are not part of the increment.

* CUDA (as source document 000): free the cache, reset the peak statistics, read
  ``memory_allocated`` as the baseline, run, synchronise, ``max_memory_allocated − baseline``.
* CPU: torch keeps no peak statistic for the CPU allocator, but its profiler with
  ``profile_memory=True`` records every allocation and free with the allocator's running total
  (``total_allocated``); the peak of that total during the step minus the total before its first
  event is the same quantity.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterator

from lstm_inspect.errors import AnalysisFailed

if TYPE_CHECKING:
    import torch


def measure_increment(step: Callable[[tuple], Any], inputs: Callable[[], tuple], device: "torch.device") -> int:
    """Peak − baseline of allocated bytes on ``device`` while ``step(inputs())`` runs.

    Raises whatever the step raises (an out-of-memory error included); the caller releases memory.
    """
    if device.type == "cuda":
        return _measure_cuda(step, inputs, device)
    if device.type == "cpu":
        return _measure_cpu(step, inputs)
    raise AnalysisFailed(f"measuring memory on {device} is not supported (cpu or cuda)")


def _measure_cuda(step: Callable[[tuple], Any], inputs: Callable[[], tuple], device: "torch.device") -> int:
    import torch

    args = inputs()
    torch.cuda.synchronize(device)
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    result = step(args)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    del result, args
    return int(peak - baseline)


def _measure_cpu(step: Callable[[tuple], Any], inputs: Callable[[], tuple]) -> int:
    from torch.profiler import ProfilerActivity, profile

    args = inputs()
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _native_stderr_silenced():
        prof.__enter__()
    try:
        result = step(args)
        del result
    finally:
        with _native_stderr_silenced():
            prof.__exit__(None, None, None)
    del args
    return peak_increment(prof)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Kineto prints ``USDT: ... profiler_start/stop`` lines from C++ at every start and stop, and no
    setting turns them off; silence file descriptor 2 around just those two calls."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield  # no real descriptor 2 (embedded use): nothing to silence
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_increment(prof: Any) -> int:
    """Peak − baseline of the CPU allocator's total over a finished profile's allocation events."""
    events = cpu_allocation_events(prof)
    if not events:
        return 0
    events.sort(key=lambda e: e[0])
    _, first_size, first_total = events[0]
    baseline = first_total - first_size
    # Each event carries the allocator's total after it, so the peak does not depend on how events
    # recorded at the same nanosecond are ordered, nor on events from threads the profiler missed.
    return int(max(max(total for _, _, total in events) - baseline, 0))


def cpu_allocation_events(prof: Any) -> list[tuple[int, int, int]]:
    """``(time_ns, alloc_size, total_allocated)`` of every CPU allocation/free in a profile."""
    from lstm_inspect.torch_adapters import profiler_allocations

    try:
        events = profiler_allocations(prof)
    except (AttributeError, ImportError) as exc:  # the profiler's event tree is not a public API
        raise AnalysisFailed(f"this torch's profiler does not expose memory events ({exc}); use --method estimate") from None
    return [(time, size, total) for time, size, total, device in events if device == "cpu"]


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation failure: CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    if isinstance(exc, (RuntimeError, MemoryError)):
        text = str(exc).lower()
        return isinstance(exc, MemoryError) or any(
            s in text for s in ("can't allocate memory", "out of memory", "not enough memory", "failed to allocate"))
    return False


def release(device: "torch.device | None") -> None:
    """Give back what a failed cell left behind (its frames are gone once the exception is dropped)."""
    gc.collect()
    if device is not None and device.type == "cuda":
        import torch

        torch.cuda.empty_cache()
