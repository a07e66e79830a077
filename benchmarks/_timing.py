"""What every benchmark shares: running the CLI in subprocesses and timing it against ``import torch``.

The machine is shared and noisy, so the commands of one benchmark run in interleaved rounds (load from
other processes falls on all of them alike) and each figure is the median of its rounds; results are
ratios to ``python -c "import torch"`` measured in the same run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CLI = [PY, "-m", "lstm_inspect"]
IMPORT_TORCH = [PY, "-c", "import torch"]

#: ~1.5B parameters: 8 LSTM layers of width 4096 plus a 50258-token embedding and head.
BIG_1_5B = ["--embed-dim", "4096", "--hidden-dim", "4096", "--num-layers", "8", "--vocab-size", "50258"]


def big_params() -> int:
    """Exact parameter count of BIG_1_5B (PyTorch layout: two bias vectors per layer)."""
    v, e, h, layers = 50258, 4096, 4096, 8
    lstm = sum(4 * h * ((e if layer == 0 else h) + h) + 8 * h for layer in range(layers))
    return v * e + lstm + (h * v + v)


def run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds of one run and its peak RSS in MiB (the command must succeed)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="120", PYTHONWARNINGS="ignore")
    with tempfile.TemporaryFile(mode="w+") as errors:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            errors.seek(0)
            sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{errors.read()}")
    return elapsed, usage.ru_maxrss / 1024


def medians(cmds: list[list[str]], repeat: int) -> list[tuple[float, float]]:
    """(median wall seconds, largest peak RSS MiB) per command, over ``repeat`` interleaved rounds."""
    times: list[list[float]] = [[] for _ in cmds]
    peaks = [0.0 for _ in cmds]
    for _ in range(repeat):
        for i, cmd in enumerate(cmds):
            seconds, peak = run(cmd)
            times[i].append(seconds)
            peaks[i] = max(peaks[i], peak)
    return [(statistics.median(t), p) for t, p in zip(times, peaks)]


def table(cases: list[tuple[str, list[str], float | None]], repeat: int) -> dict[str, float]:
    """Time ``cases`` (label, command, target ratio or None) with ``import torch`` first; print a table."""
    results = medians([IMPORT_TORCH] + [cmd for _, cmd, _ in cases], repeat)
    base = results[0][0]
    print(f"median of {repeat} interleaved rounds; ratios to `python -c \"import torch\"` = {base:.3f} s")
    print(f"{'case':<58} {'median s':>9} {'ratio':>7} {'target':>7} {'peak RSS':>10}")
    out = {}
    for (label, _, target), (seconds, peak) in zip(cases, results[1:]):
        ratio = seconds / base
        verdict = "" if target is None else ("  ok" if ratio <= target else "  MISSED")
        shown = f"{target:.2f}" if target is not None else ""
        print(f"{label:<58} {seconds:9.3f} {ratio:7.2f} {shown:>7} {peak:7.0f} MiB{verdict}")
        out[label] = seconds
    return out
