"""Benchmark of ``lstm-inspect memory``: wall times against ``python -c "import torch"``, in one run.

    PYTHONPATH=. python benchmarks/bench_memory.py

1. ``python -c "import torch"`` (the unit every ratio is taken against);
2. estimate mode on the default 20-cell grid, default model (a whole CLI process);
3. estimate mode on the default grid for a ~1.5B-parameter config (embed 4096, hidden 4096, 8 layers);
4. CPU measure mode on the default grid, default model (real forwards on this machine).

Targets: (2) and (3) <= 2.5 x import torch; (4) <= 60 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIG = ["--embed-dim", "4096", "--hidden-dim", "4096", "--num-layers", "8"]


def wall(args: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(args)}\n{done.stderr}")
    return elapsed


def big_params() -> int:
    V, E, H, L = 50258, 4096, 4096, 8
    return 2 * V * E + V + 4 * H * (E + H) + 8 * H + (L - 1) * (4 * H * (2 * H) + 8 * H)


def main() -> None:
    py = sys.executable
    cli = [py, "-m", "lstm_inspect", "memory", "--json", "--device", "cpu"]
    import_torch = min(wall([py, "-c", "import torch"]) for _ in range(3))
    rows = [("python -c 'import torch' (best of 3)", import_torch, None)]
    est = min(wall([*cli, "--method", "estimate"]) for _ in range(2))
    rows.append(("estimate, default model, 20 cells (best of 2)", est, 2.5))
    est_big = min(wall([*cli, "--method", "estimate", *BIG]) for _ in range(2))
    rows.append((f"estimate, {big_params() / 1e9:.3f} B params ({' '.join(BIG)}), 20 cells (best of 2)", est_big, 2.5))
    measured = wall([*cli, "--method", "measure"])
    rows.append(("CPU measure, default model, 20 cells", measured, None))
    for label, seconds, target in rows:
        ratio = seconds / import_torch
        verdict = "" if target is None else ("  ok" if ratio <= target else f"  OVER the {target}x target")
        print(f"{label:<80} {seconds:7.2f} s  {ratio:5.2f}x import torch{verdict}")
    print(f"CPU measure target <= 60 s: {'ok' if measured <= 60 else 'OVER'} ({measured:.1f} s on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
