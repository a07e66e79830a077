"""Issues 4 and 11's speed targets, as ratios to ``python -c "import torch"`` measured in one run.

Targets: the estimate of the whole default 20-cell grid <= 2.5 × import torch, for the default model
and for a ~1.5B-parameter config; the CPU measurement of the default grid <= 60 s. Issue 11: the default
grid on hf:mamba, hf:rwkv, hf:xlstm <= 5 × import torch (``--hf`` adds them, one
round each); ``generation`` on the built-in and on hf:mamba.

Run: ``.venv/bin/python benchmarks/bench_memory.py [--repeat 3] [--hf] [--no-measure]``
"""

from __future__ import annotations

import argparse
import os

from _timing import BIG_1_5B, CLI, big_params, table

MEMORY = CLI + ["memory", "--json", "--device", "cpu"]
GENERATION = CLI + ["generation", "--json"]
HF_MODELS = ("hf:mamba", "hf:rwkv", "hf:xlstm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hf", action="store_true", help="also the default grid on hf:mamba, hf:rwkv, hf:xlstm")
    parser.add_argument("--no-measure", action="store_true", help="skip the CPU measurement of the default grid")
    args = parser.parse_args()
    measure = "CPU measure, default model, 20 cells"
    rows = [
        ("estimate, default model, 20 cells", MEMORY + ["--method", "estimate"], 2.5),
        ("estimate, default model, 20 cells, train + adam",
         MEMORY + ["--method", "estimate", "--mode", "train", "--optimizer", "adam"], 2.5),
        (f"estimate, {big_params():,} params, 20 cells", MEMORY + ["--method", "estimate", *BIG_1_5B], 2.5),
        ("generation, default model", GENERATION, 2.5),
        ("generation, hf:mamba", GENERATION + ["--model", "hf:mamba"], 5.0),
    ]
    if args.hf:
        rows += [(f"estimate, {m}, 20 cells", MEMORY + ["--method", "estimate", "--model", m], 5.0) for m in HF_MODELS]
    if not args.no_measure:
        rows.append((measure, MEMORY + ["--method", "measure"], None))
    got = table(rows, 1 if args.hf else args.repeat)
    if measure in got:
        seconds = got[measure]
        print(f"CPU measure target <= 60 s: {'ok' if seconds <= 60 else 'MISSED'} ({seconds:.1f} s on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
