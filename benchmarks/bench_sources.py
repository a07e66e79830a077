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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_params import CLI, wall  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as tmp:
        import torch

        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from lstm_inspect.model import RecurrentLanguageModel
        from lstm_inspect.spec import ModelSpec

        ckpt = Path(tmp) / "default.pt"
        torch.save(RecurrentLanguageModel(ModelSpec()).state_dict(), ckpt)
        cases = [
            ("import torch", [sys.executable, "-c", "import torch"]),
            ("report (defaults)", CLI + ["report"]),
            ("report --json (defaults)", CLI + ["report", "--json"]),
            ("params --model default.pt (347 MB)", CLI + ["params", "--model", str(ckpt)]),
            ("params --model hf:llama (6.7B)", CLI + ["params", "--model", "hf:llama"]),
            ("compare builtin hidden_dim=614", CLI + ["compare", "builtin", "hidden_dim=614"]),
        ]
        base = None
        print(f"{'case':<40} {'median s':>9} {'ratio':>7} {'peak RSS':>10}")
        for name, cmd in cases:
            seconds, peak = wall(cmd, repeat)
            base = base or seconds
            print(f"{name:<40} {seconds:9.3f} {seconds / base:7.2f} {peak:8.0f} MiB")


if __name__ == "__main__":
    main()
