"""Issue 4's speed targets, as ratios to ``python -c "import torch"`` measured in one run.

Targets: the estimate of the whole default 20-cell grid <= 2.5 × import torch, for the default model
and for a ~1.5B-parameter config; the CPU measurement of the default grid <= 60 s.

Run: ``.venv/bin/python benchmarks/bench_memory.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os

from _timing import BIG_1_5B, CLI, big_params, table

MEMORY = CLI + ["memory", "--json", "--device", "cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    measure = "CPU measure, default model, 20 cells"
    got = table([
        ("estimate, default model, 20 cells", MEMORY + ["--method", "estimate"], 2.5),
        (f"estimate, {big_params():,} params, 20 cells", MEMORY + ["--method", "estimate", *BIG_1_5B], 2.5),
        (measure, MEMORY + ["--method", "measure"], None),
    ], parser.parse_args().repeat)
    seconds = got[measure]
    print(f"CPU measure target <= 60 s: {'ok' if seconds <= 60 else 'MISSED'} ({seconds:.1f} s on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
