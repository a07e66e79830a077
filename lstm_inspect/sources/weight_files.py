"""Where a transformers checkpoint keeps its weights (single or sharded safetensors, ``.bin``), and their
tensor names and shapes, read from headers (no weight data)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstm_inspect.errors import AnalysisFailed, first_line

if TYPE_CHECKING:
    from lstm_inspect.sources.checkpoint import TensorInfo

#: The files transformers' ``save_pretrained`` writes, in the order transformers itself prefers them.
WEIGHT_FILES = (
    ("model.safetensors", "safetensors", False),
    ("model.safetensors.index.json", "safetensors", True),
    ("pytorch_model.bin", "torch", False),
    ("pytorch_model.bin.index.json", "torch", True),
)

@dataclass(frozen=True)
class WeightFiles:
    """The weights of a transformers checkpoint: one file, or the shards an index names."""

    format: str                 # "safetensors" | "torch"
    files: tuple[Path, ...]     # the tensor files (shards in index order)
    index: Path | None = None   # the *.index.json, for a sharded checkpoint

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.format, "files": [p.name for p in self.files]}
        if self.index is not None:
            out["index"] = self.index.name
        return out


# --------------------------------------------------------------------------------------------
# stand-ins for modules whose weights were removed
# --------------------------------------------------------------------------------------------


def find_weights(directory: Path) -> WeightFiles | None:
    """The weights ``save_pretrained`` left in ``directory`` (None: a config alone)."""
    for name, fmt, is_index in WEIGHT_FILES:
        path = directory / name
        if not path.is_file():
            continue
        if not is_index:
            return WeightFiles(fmt, (path,))
        shards = _shards(path)
        return WeightFiles(fmt, tuple(directory / s for s in shards), index=path)
    return None


def _shards(index: Path) -> list[str]:
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        weight_map = data["weight_map"]
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError("weight_map is empty")
        shards = sorted(set(str(v) for v in weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise AnalysisFailed(f"--model {index}: not a readable checkpoint index (needs a weight_map of tensor "
                             f"name -> shard file): {first_line(exc, 120)}") from None
    for shard in shards:
        if Path(shard).name != shard:
            raise AnalysisFailed(f"--model {index}: the index names a shard outside the directory: {shard!r}")
        if not (index.parent / shard).is_file():
            raise AnalysisFailed(f"--model {index}: the shard {shard} it names is missing")
    return shards


def read_shapes(weights: WeightFiles) -> dict[str, "TensorInfo"]:
    """Tensor name -> shape of every file of ``weights`` (a name in two shards is an error)."""
    from lstm_inspect.sources.checkpoint import read_checkpoint

    infos: dict[str, TensorInfo] = {}
    for path in weights.files:
        for name, info in read_checkpoint(path).items():
            if name in infos:
                raise AnalysisFailed(f"--model {path}: tensor {name} is in more than one shard")
            infos[name] = info
    if weights.index is not None:
        mapped = set(json.loads(weights.index.read_text(encoding="utf-8"))["weight_map"])
        absent = sorted(mapped - set(infos))
        if absent:
            raise AnalysisFailed(f"--model {weights.index}: the index names tensors its shards do not hold: "
                                 f"{some_names(absent)}")
    return infos


#: How many names an error message quotes.
_QUOTE = 4


def some_names(names: list[str]) -> str:
    """The first few of ``names`` and how many more, for a one-line message."""
    shown = ", ".join(names[:_QUOTE])
    return shown + (f" and {len(names) - _QUOTE} more" if len(names) > _QUOTE else "")
