"""How the ``memory`` command runs a sweep on this machine: Ctrl-C and the host-memory guard.

Both are the command's policy, not the analysis's: the sweep takes a ``should_stop`` callable and an
``admit`` callable (:func:`lstm_inspect.analyses.memory.sweep_memory`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


@contextlib.contextmanager
def interruptible() -> Iterator[threading.Event]:
    """Ctrl-C during a sweep: raise KeyboardInterrupt at once, as Python does, and also remember it.

    A KeyboardInterrupt that lands inside a finalizer (``gc.collect()`` between cells, weakref callbacks
    of the estimate's tracker) is printed and swallowed by Python; the remembered flag stops the sweep
    at the next cell boundary all the same (pass ``event.is_set`` as ``should_stop``).
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


def host_admit(batch: int, seq: int, need: int) -> str | None:
    """A real CPU step too large for the host would not fail cleanly (the allocator hands out overcommitted
    pages, then the kernel swaps or kills the process): such a cell is not run. Every cell is checked,
    small ones too: a long sequence at batch 1 in train mode can need tens of GB."""
    free = available_host_bytes()
    if free is None or need <= free:
        return None
    from lstm_inspect.units import human_bytes

    return (f"out of memory: not run, the estimated {human_bytes(need)} exceeds the {human_bytes(free)} of host "
            "memory available")
