"""Reading a checkpoint's tensor names and shapes: ``.pt``/``.pth``/``.bin`` and ``.safetensors``.

Pickles are opened with ``torch.load(weights_only=True)``: a file that needs anything beyond tensors
and plain containers is refused, and none of its code runs. Only shapes are kept (the analyses never
read weight values), so ``.safetensors`` are read from their header alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstm_inspect.errors import AnalysisFailed, first_line

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS_SUFFIXES = (".safetensors",)

#: Keys under which training scripts commonly nest the state_dict.
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")
#: Prefixes added by wrappers: DataParallel/DistributedDataParallel, torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a checkpoint: its shape, dtype, and which storage it shares (tied weights)."""

    shape: tuple[int, ...]
    dtype: str
    storage: int | None = None   # equal for tensors that share memory (torch.save keeps ties)


def read_checkpoint(path: Path) -> dict[str, TensorInfo]:
    """Names -> shapes of the state_dict in ``path`` (exit 3 for a file that cannot be read as one)."""
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        infos = _read_safetensors(path)
    else:
        infos = _state_dict_infos(_torch_load(path), path)
    if not infos:
        raise AnalysisFailed(f"--model {path}: the checkpoint holds no tensors")
    return _strip_wrappers(infos)


def _torch_load(path: Path) -> Any:
    import pickle

    import torch

    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):   # old (non-zip) format: mmap is not possible, load it plainly
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" in text or "weights_only" in text:
            found = re.search(r"(?:unsupported|Unsupported) (?:GLOBAL|global|operand) ([\w.]+)", text)
            what = f"it calls {found.group(1)}" if found else "objects other than tensors"
            raise AnalysisFailed(
                f"--model {path}: refused: the pickle needs more than tensors to load ({what}); it was not executed. "
                "Save model.state_dict() instead, or convert it to .safetensors"
            ) from None
        raise AnalysisFailed(f"--model {path}: not a readable PyTorch checkpoint ({_first_line(exc)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as exc:
        raise AnalysisFailed(
            f"--model {path}: not a readable PyTorch checkpoint, truncated or corrupt ({_first_line(exc)})"
        ) from None


def _state_dict_infos(obj: Any, path: Path) -> dict[str, TensorInfo]:
    import torch

    def tensors_of(mapping: Any) -> dict[str, TensorInfo] | None:
        if not isinstance(mapping, dict) or not mapping:
            return None
        if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in mapping.items()):
            return None
        return {
            k: TensorInfo(tuple(int(s) for s in v.shape), str(v.dtype).replace("torch.", ""),
                          _storage_key(v))
            for k, v in mapping.items()
        }

    found = tensors_of(obj)
    if found is not None:
        return found
    if isinstance(obj, dict):
        for key in _NESTED_KEYS:
            found = tensors_of(obj.get(key))
            if found is not None:
                return found
        keys = ", ".join(repr(k) for k in list(obj)[:8])
        raise AnalysisFailed(
            f"--model {path}: expected a state_dict (a mapping of names to tensors); found a dict with keys {keys}"
        )
    raise AnalysisFailed(f"--model {path}: expected a state_dict (a mapping of names to tensors); found {type(obj).__name__}")


def _storage_key(tensor: Any) -> int | None:
    try:
        return int(tensor.untyped_storage().data_ptr()) ^ (int(tensor.storage_offset()) << 1)
    except Exception:  # noqa: BLE001 - a tensor subclass without storage: ties are then unknown
        return None


def _read_safetensors(path: Path) -> dict[str, TensorInfo]:
    try:
        from safetensors import safe_open

        out: dict[str, TensorInfo] = {}
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                piece = handle.get_slice(name)
                out[name] = TensorInfo(tuple(int(s) for s in piece.get_shape()), str(piece.get_dtype()).lower())
        return out
    except Exception as exc:  # safetensors raises its own SafetensorError, OSError...
        raise AnalysisFailed(f"--model {path}: not a readable .safetensors file, truncated or corrupt ({_first_line(exc)})") from None


def _strip_wrappers(infos: dict[str, TensorInfo]) -> dict[str, TensorInfo]:
    for prefix in _WRAPPER_PREFIXES:
        if all(name.startswith(prefix) for name in infos):
            infos = {name[len(prefix):]: info for name, info in infos.items()}
    return infos


def _first_line(exc: BaseException) -> str:
    return first_line(exc).split(". ")[0][:160]  # torch's unpickling messages run on for sentences
