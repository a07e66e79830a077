"""Issue 5's speed checks, as ratios to ``python -c "import torch"`` measured in one run.

The main job (``report`` with the defaults) must be fast on a CPU machine; model sources must not
allocate weights: a 7-billion-parameter ``hf:llama`` and a checkpoint are analysed on ``meta``.

Run: ``.venv/bin/python benchmarks/bench_sources.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _timing import CLI, PY, run, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "default.pt"
        # made in a child: a parent holding 347 MB would show in every child's peak RSS (fork)
        run([PY, "-c", "import sys, torch\nfrom lstm_inspect.model import RecurrentLanguageModel\n"
                       "from lstm_inspect.spec import ModelSpec\n"
                       "torch.save(RecurrentLanguageModel(ModelSpec()).state_dict(), sys.argv[1])", str(ckpt)])
        table([
            ("report (defaults)", CLI + ["report"], None),
            ("report --json (defaults)", CLI + ["report", "--json"], None),
            ("params --model default.pt (347 MB)", CLI + ["params", "--model", str(ckpt)], None),
            ("params --model hf:llama (6.7B)", CLI + ["params", "--model", "hf:llama"], None),
            ("compare builtin hidden_dim=614", CLI + ["compare", "builtin", "hidden_dim=614"], None),
        ], repeat)


if __name__ == "__main__":
    main()
