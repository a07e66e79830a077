"""Benchmark ``lstm-inspect flops``: wall time as a ratio to ``python -c "import torch"``, in one run.

Run from the repository root::

    python benchmarks/bench_flops.py [--repeat 5]

Each figure is the median of ``--repeat`` fresh subprocesses, the commands taking turns. Targets (issue 3): the default model and
the ~1.5B-parameter config at batch 64 × seq 2048 each <= 2.2× ``import torch``, and the big config
within 1.2× of the default. ``thop.profile`` on real tensors for the default model is timed in the
same run, for the README's honest comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: ~1.5B parameters: 8 LSTM layers of width 4096 plus a 50258-token embedding and head.
BIG = ["--embed-dim", "4096", "--hidden-dim", "4096", "--num-layers", "8", "--vocab-size", "50258"]

REAL_THOP = """
import torch, thop
from lstm_inspect.spec import ModelSpec
from lstm_inspect.building import build_real
model = build_real(ModelSpec(), torch.device("cpu"))
thop.profile(model, (torch.zeros(1, 32, dtype=torch.long),), verbose=False)
"""


def big_params() -> int:
    """Exact parameter count of BIG (PyTorch layout: two bias vectors per layer)."""
    v, e, h, layers = 50258, 4096, 4096, 8
    lstm = sum(4 * h * ((e if layer == 0 else h) + h) + 8 * h for layer in range(layers))
    return v * e + lstm + (h * v + v)


def median_seconds(cmds: list[list[str]], repeat: int) -> list[float]:
    """Median wall time of each command; rounds interleave the commands so that load from other
    processes on the machine falls on all of them alike."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="120")
    times: list[list[float]] = [[] for _ in cmds]
    for _ in range(repeat):
        for i, cmd in enumerate(cmds):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    cases = [
        ('python -c "import torch"', [py, "-c", "import torch"]),
        ("flops (default, 1 x 32)", [py, "-m", "lstm_inspect", "flops"]),
        (f"flops ({big_params() / 1e9:.2f}B params, 64 x 2048)",
         [py, "-m", "lstm_inspect", "flops", *BIG, "--batch", "64", "--seq", "2048"]),
        ("thop.profile, real tensors (default, 1 x 32)", [py, "-c", REAL_THOP]),
    ]
    results = list(zip([label for label, _ in cases], median_seconds([cmd for _, cmd in cases], args.repeat)))
    base = results[0][1]
    print(f"median of {args.repeat} runs each; big config = {big_params():,} parameters")
    for label, seconds in results:
        print(f"{label:48s} {seconds:7.3f} s   {seconds / base:5.2f}x import torch")
    default, big = results[1][1], results[2][1]
    print(f"{'big / default':48s} {big / default:13.2f}x   (target <= 1.2)")
    print(f"{'flops default / real thop.profile':48s} {default / results[3][1]:13.2f}x")


if __name__ == "__main__":
    main()
