"""Issue 2's speed targets, measured in one run as ratios to ``python -c "import torch"``.

Targets: ``lstm-inspect --help`` < 0.3 of import torch; ``params`` on the default model and on a
4-billion-parameter config (hidden 8192, 8 layers) <= 1.3 of it, and under 1 GB of memory.

Run: ``.venv/bin/python benchmarks/bench_params.py [--repeat 5]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CLI = [sys.executable, "-m", "lstm_inspect"]
BIG = ["--hidden-dim", "8192", "--num-layers", "8"]


def wall(cmd: list[str], repeat: int) -> tuple[float, float]:
    """Median wall seconds over ``repeat`` runs, and the largest child peak RSS in MiB."""
    import resource

    times = []
    peak = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
        times.append(time.perf_counter() - start)
        peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, before / 1024)
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat

    cases = [
        ("import torch", [sys.executable, "-c", "import torch"], None),
        ("lstm-inspect --help", CLI + ["--help"], 0.3),
        ("params (default model)", CLI + ["params"], 1.3),
        ("params (4.5B: hidden 8192, 8 layers)", CLI + ["params"] + BIG, 1.3),
        ("params --json (4.5B)", CLI + ["params", "--json"] + BIG, 1.3),
    ]
    base = None
    print(f"{'case':<40} {'median s':>9} {'ratio':>7} {'target':>7} {'peak RSS':>10}")
    for name, cmd, target in cases:
        seconds, peak = wall(cmd, repeat)
        base = base or seconds
        ratio = seconds / base
        verdict = "" if target is None else ("ok" if ratio <= target else "MISSED")
        print(f"{name:<40} {seconds:9.3f} {ratio:7.2f} {target if target else '':>7} {peak:8.0f} MiB {verdict}")


if __name__ == "__main__":
    main()
