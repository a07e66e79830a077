"""Issue 5's speed checks, as ratios to ``python -c "import torch"`` measured in one run.

The main job (``report`` with the defaults) must be fast on a CPU machine; model sources must not
allocate weights: a 7-billion-parameter ``hf:llama`` and a checkpoint are analysed on ``meta``.

Run: ``.venv/bin/python benchmarks/bench_sources.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _timing import CLI, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as tmp:
        import torch

        from lstm_inspect.model import RecurrentLanguageModel
        from lstm_inspect.spec import ModelSpec

        ckpt = Path(tmp) / "default.pt"
        torch.save(RecurrentLanguageModel(ModelSpec()).state_dict(), ckpt)
        table([
            ("report (defaults)", CLI + ["report"], None),
            ("report --json (defaults)", CLI + ["report", "--json"], None),
            ("params --model default.pt (347 MB)", CLI + ["params", "--model", str(ckpt)], None),
            ("params --model hf:llama (6.7B)", CLI + ["params", "--model", "hf:llama"], None),
            ("compare builtin hidden_dim=614", CLI + ["compare", "builtin", "hidden_dim=614"], None),
        ], repeat)


if __name__ == "__main__":
    main()
