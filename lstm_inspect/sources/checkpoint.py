"""Reading a checkpoint's tensor names and shapes: ``.pt``/``.pth``/``.bin`` and ``.safetensors``.

Pickles are opened with ``torch.load(weights_only=True, mmap=True)``: a file that needs anything beyond
tensors and plain containers (a whole pickled model) is refused, naming the classes it would import,
and none of its code runs; :func:`load_pickle_trusted` opens it for real when the user says so
(``--trust-pickle``). Only shapes are kept (the analyses never read weight values), so a
``.safetensors`` file is read from its header alone: 8 bytes of length, then that much JSON.
"""

from __future__ import annotations

import json
import re
import struct
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
    storage: object | None = None   # equal for tensors that share memory (torch.save keeps ties)
    itemsize: int = 4               # bytes per element as stored

    @property
    def numel(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count


class PickleRefused(AnalysisFailed):
    """A pickle that needs more than tensors to load (a whole model object); it was not executed."""

    def __init__(self, message: str, classes: tuple[str, ...]) -> None:
        super().__init__(message)
        self.classes = classes


def read_checkpoint(path: Path) -> dict[str, TensorInfo]:
    """Names -> shapes of the state_dict in ``path`` (exit 3 for a file that cannot be read as one)."""
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        infos = read_safetensors_header(path)
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
            classes = _pickled_classes(path, text)
            model_classes = [c for c in classes if not c.startswith(("torch.", "collections.", "builtins."))]
            named = ", ".join((model_classes or classes)[:4]) or "objects other than tensors"
            raise PickleRefused(
                f"--model {path}: refused: the file is a pickle that imports {named} to load (a whole model object, "
                "not a state_dict); it was not executed. If you trust the file, add --trust-pickle (its code then "
                "runs, and the class must be importable); or save model.state_dict() or .safetensors instead",
                tuple(classes),
            ) from None
        raise AnalysisFailed(f"--model {path}: not a readable PyTorch checkpoint ({first_line(exc, 160, sentence=True)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as exc:
        raise AnalysisFailed(
            f"--model {path}: not a readable PyTorch checkpoint, truncated or corrupt ({first_line(exc, 160, sentence=True)})"
        ) from None


def _pickled_classes(path: Path, text: str) -> list[str]:
    """The globals a pickle would import, read without running it (torch's scanner), else from the message."""
    import torch

    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - an old (non-zip) file: the first global torch's refusal names
        found = re.search(r"(?:unsupported|Unsupported) (?:GLOBAL|global|operand) ([\w.]+)", text)
        return [found.group(1)] if found else []


def load_pickle_trusted(path: Path) -> Any:
    """Unpickle ``path`` for real (its code runs): only after the user's ``--trust-pickle``."""
    import torch

    from lstm_inspect.paths import cwd_importable

    try:
        with cwd_importable():   # the model's class is usually defined next to where the user runs the command
            try:
                return torch.load(path, map_location="cpu", weights_only=False, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                return torch.load(path, map_location="cpu", weights_only=False)
    except (ImportError, AttributeError) as exc:
        raise AnalysisFailed(f"--model {path}: the pickle needs a class that cannot be imported here ({first_line(exc, 160, sentence=True)}); "
                             "run from the folder that holds its module, or save a state_dict") from None
    except Exception as exc:  # noqa: BLE001 - unpickling runs the file's code, which may fail in any way
        raise AnalysisFailed(f"--model {path}: unpickling failed: {first_line(exc, 160, sentence=True)}") from None


def state_dict_infos(obj: Any, path: Path) -> dict[str, TensorInfo]:
    """Names -> shapes of a loaded state_dict (or one nested under a common key)."""
    return _strip_wrappers(_state_dict_infos(obj, path))


def _state_dict_infos(obj: Any, path: Path) -> dict[str, TensorInfo]:
    import torch

    def tensors_of(mapping: Any) -> dict[str, TensorInfo] | None:
        if not isinstance(mapping, dict) or not mapping:
            return None
        if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in mapping.items()):
            return None
        return {
            k: TensorInfo(tuple(int(s) for s in v.shape), str(v.dtype).replace("torch.", ""),
                          _storage_key(v), int(v.element_size()))
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


#: Bytes per element of safetensors' dtype names.
_SAFETENSORS_ITEMSIZE = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
                         "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
#: A header larger than this is not a header (safetensors itself caps it at 100 MB).
_MAX_HEADER = 100_000_000


def read_safetensors_header(path: Path) -> dict[str, TensorInfo]:
    """Names -> shapes from a ``.safetensors`` header alone: no weight data is read or mapped.

    A name that a writer dropped because it shares another tensor's memory (``save_model`` records it in
    the metadata as ``dropped: kept``) comes back as an alias of the kept tensor.
    """
    def corrupt(why: str) -> AnalysisFailed:
        return AnalysisFailed(f"--model {path}: not a readable .safetensors file, truncated or corrupt ({why})")

    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise corrupt("shorter than its 8-byte header length")
            length = struct.unpack("<Q", prefix)[0]
            if length > min(_MAX_HEADER, size - 8):
                raise corrupt(f"a header of {length} bytes in a file of {size}")
            header = json.loads(handle.read(length))
    except AnalysisFailed:
        raise
    except (OSError, ValueError) as exc:
        raise corrupt(first_line(exc, 160, sentence=True)) from None
    if not isinstance(header, dict):
        raise corrupt("the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    out: dict[str, TensorInfo] = {}
    end = 0
    for name, entry in header.items():
        try:
            shape = tuple(int(s) for s in entry["shape"])
            dtype = str(entry["dtype"])
            begin, stop = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise corrupt(f"entry {name!r} has no valid dtype/shape/data_offsets") from None
        if dtype not in _SAFETENSORS_ITEMSIZE or min(shape, default=0) < 0 or not 0 <= begin <= stop:
            raise corrupt(f"entry {name!r} has an unknown dtype or a negative size")
        end = max(end, stop)
        out[name] = TensorInfo(shape, dtype.lower(), ("safetensors", name), _SAFETENSORS_ITEMSIZE[dtype])
    if 8 + length + end > size:
        raise corrupt(f"the header describes {8 + length + end} bytes, the file has {size}")
    if isinstance(metadata, dict):
        for dropped, kept in metadata.items():
            if isinstance(kept, str) and kept in out and dropped not in out:
                out[dropped] = out[kept]
    return out


def _strip_wrappers(infos: dict[str, TensorInfo]) -> dict[str, TensorInfo]:
    for prefix in _WRAPPER_PREFIXES:
        if all(name.startswith(prefix) for name in infos):
            infos = {name[len(prefix):]: info for name, info in infos.items()}
    return infos

