"""Issue 2's speed targets, measured in one run as ratios to ``python -c "import torch"``.

Targets: ``lstm-inspect --help`` < 0.3 of import torch; ``params`` on the default model and on a
4.5-billion-parameter config (hidden 8192, 8 layers) <= 1.3 of it, and well under 1 GB of memory.

Run: ``.venv/bin/python benchmarks/bench_params.py [--repeat 5]``
"""

from __future__ import annotations

import argparse

from _timing import CLI, table

BIG = ["--hidden-dim", "8192", "--num-layers", "8"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    table([
        ("lstm-inspect --help", CLI + ["--help"], 0.3),
        ("params (default model)", CLI + ["params"], 1.3),
        ("params (4.5B: hidden 8192, 8 layers)", CLI + ["params"] + BIG, 1.3),
        ("params --json (4.5B)", CLI + ["params", "--json"] + BIG, 1.3),
    ], parser.parse_args().repeat)


if __name__ == "__main__":
    main()
