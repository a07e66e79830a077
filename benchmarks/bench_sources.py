"""Issue 5's speed checks, as ratios to ``python -c "import torch"`` measured in one run.

The main job (``report`` with the defaults) must be fast on a CPU machine; model sources must not
allocate weights: a 7-billion-parameter ``hf:llama`` and a checkpoint are analysed on ``meta``.

Issue 9: ``params`` on a safetensors file of about 1 billion parameters reads the header alone
(target ≤ 1.5× ``import torch``, peak RSS < 500 MiB). The file is written sparse (a valid header, then
the data region as a hole), so it costs no disk; under source document 000's names (the built-in family)
and under word_language_model's (a model rebuilt from the shapes).

Run: ``.venv/bin/python benchmarks/bench_sources.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import struct
import tempfile
from pathlib import Path

from _timing import CLI, PY, run, table


#: ~1.08 B parameters: vocabulary 50258, E = H = 4096, 5 LSTM layers (float16: 2.2 GB).
V, E, H, LAYERS = 50258, 4096, 4096, 5


def sparse_safetensors(path: Path, names: tuple[str, str, str]) -> int:
    """A valid float16 safetensors file whose data is a hole; returns its parameter count."""
    embed, rnn, head = names
    shapes = {f"{embed}.weight": [V, E]}
    for k in range(LAYERS):
        shapes |= {f"{rnn}.weight_ih_l{k}": [4 * H, E if k == 0 else H], f"{rnn}.weight_hh_l{k}": [4 * H, H],
                   f"{rnn}.bias_ih_l{k}": [4 * H], f"{rnn}.bias_hh_l{k}": [4 * H]}
    shapes |= {f"{head}.weight": [V, H], f"{head}.bias": [V]}
    header, offset, total = {}, 0, 0
    for name, shape in shapes.items():
        count = 1
        for size in shape:
            count *= size
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + 2 * count]}
        offset += 2 * count
        total += count
    blob = json.dumps(header).encode()
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(blob)) + blob)
        handle.truncate(8 + len(blob) + offset)
    return total


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
        builtin_1b, wlm_1b = Path(tmp) / "simple_1b.safetensors", Path(tmp) / "wlm_1b.safetensors"
        count = sparse_safetensors(builtin_1b, ("embed", "lstm", "proj"))
        sparse_safetensors(wlm_1b, ("encoder", "rnn", "decoder"))
        print(f"1B files: {count:,} parameters each ({builtin_1b.stat().st_size / 2**30:.1f} GiB apparent, sparse)")
        table([
            (f"params --model simple_1b.safetensors ({count / 1e9:.2f} B, embed/lstm/proj)",
             CLI + ["params", "--model", str(builtin_1b)], 1.5),
            (f"params --model wlm_1b.safetensors ({count / 1e9:.2f} B, encoder/rnn/decoder)",
             CLI + ["params", "--model", str(wlm_1b)], 1.5),
            ("report (defaults)", CLI + ["report"], None),
            ("report --json (defaults)", CLI + ["report", "--json"], None),
            ("params --model default.pt (347 MB)", CLI + ["params", "--model", str(ckpt)], None),
            ("params --model hf:llama (6.7B)", CLI + ["params", "--model", "hf:llama"], None),
            ("compare builtin hidden_dim=614", CLI + ["compare", "builtin", "hidden_dim=614"], None),
        ], repeat)


if __name__ == "__main__":
    main()
