"""Where a model comes from: ``--model SOURCE`` resolved to a :class:`~lstm_inspect.source.LoadedModel`.

SOURCE is one of (tried in this order):

* ``builtin`` (or ``default``): the built-in model with its default spec;
* ``hf:<model_type>``: transformers' default config for that type, built without weights;
* ``key=value,...``: the built-in spec with overrides (``hidden_dim=512,num_layers=3``);
* an existing path: a directory holding ``config.json`` or a ``.json`` with ``model_type``
  (transformers config); another ``.json`` or a ``.toml`` (a built-in spec); ``.pt``/``.pth``/
  ``.bin``/``.ckpt`` (``torch.load(weights_only=True)``) or ``.safetensors`` (a state_dict of the
  built-in family, architecture inferred from the shapes);
* ``package.module:factory``: any ``nn.Module`` a callable returns.

Errors: a path that does not exist or has an unsupported extension is invalid input (exit 2); a file
that exists but cannot be read as a model (corrupt, truncated, a refused pickle, another
architecture) is a failed analysis (exit 3).
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any, Mapping

from lstm_inspect.errors import InvalidInput
from lstm_inspect.paths import existing
from lstm_inspect.source import LoadedModel, describe_spec, load_builtin, token_batch_input
from lstm_inspect.spec import ModelSpec

SPEC_SUFFIXES = (".json", ".toml")
#: Names of the built-in default model (handy as compare's first source).
BUILTIN_NAMES = ("builtin", "default")
#: Model fields that a checkpoint does not record, so flags may still set them.
NOT_IN_WEIGHTS = ("batch_first", "dropout")


def resolve_source(text: str, *, overrides: Mapping[str, Any] | None = None) -> LoadedModel:
    """The model ``text`` names (see the module docstring), on meta where it can be.

    Args:
        text: the ``--model`` value.
        overrides: spec fields set by model flags beside ``--model``. They override a built-in spec
            source (key=value, a spec file); a checkpoint takes only those its weights do not record
            (``batch_first``, ``dropout``); transformers and factory sources take none.

    Returns:
        The loaded model, with ``spec`` set when it is the built-in family with uniform layers.
    """
    from lstm_inspect.sources import checkpoint, factory, overrides as kv

    overrides = dict(overrides or {})
    raw = (text or "").strip()
    if not raw:
        raise InvalidInput("--model needs a value: key=value overrides, a file, hf:<model_type> or package.module:factory")
    if raw.lower() in BUILTIN_NAMES:
        spec = ModelSpec.from_mapping(overrides) if overrides else ModelSpec()
        return load_builtin(spec)
    if raw.startswith("hf:"):
        _refuse_overrides(overrides, raw, "a transformers config")
        return _load_hf_type(raw[3:].strip())
    path = Path(raw).expanduser()
    # One look at the path (a FIFO or a device is refused here, before anything opens it).
    info = _look_up(path, raw, kv.looks_like_overrides(raw) or factory.looks_like_factory(raw))
    if kv.looks_like_overrides(raw) and info is None:
        spec = kv.spec_from_overrides(raw)
        spec = ModelSpec.from_mapping(overrides, base=spec) if overrides else spec
        loaded = load_builtin(spec)
        loaded.description["overrides"] = raw
        return loaded
    if info is not None and stat.S_ISDIR(info.st_mode):
        config = path / "config.json"
        if existing(config, f"--model {raw}: config.json", allow_dir=False) is None:
            raise InvalidInput(f"--model {raw}: a directory must hold a transformers config.json")
        _refuse_overrides(overrides, raw, "a transformers config")
        return _load_hf_file(config)
    if info is not None:
        suffix = path.suffix.lower()
        if suffix in SPEC_SUFFIXES:
            from lstm_inspect.sources.config_file import read_mapping, spec_from_file

            data = read_mapping(path)
            if suffix == ".json" and "model_type" in data:
                _refuse_overrides(overrides, raw, "a transformers config")
                return _load_hf_file(path, data)
            spec = spec_from_file(path, data)
            spec = ModelSpec.from_mapping(overrides, base=spec) if overrides else spec
            loaded = load_builtin(spec)
            loaded.description.update({"source": "config", "name": path.name, "path": str(path)})
            return loaded
        if suffix in checkpoint.TORCH_SUFFIXES + checkpoint.SAFETENSORS_SUFFIXES:
            return _load_checkpoint(path, overrides)
        raise InvalidInput(
            f"--model {raw}: unsupported file type {suffix or '(no extension)'!r}; give .pt/.pth/.bin/.ckpt, "
            ".safetensors, a spec .json/.toml, or a transformers config.json"
        )
    if factory.looks_like_factory(raw):
        _refuse_overrides(overrides, raw, "a factory")
        return _load_factory(raw)
    if any(raw.lower().endswith(s) for s in SPEC_SUFFIXES + checkpoint.TORCH_SUFFIXES + checkpoint.SAFETENSORS_SUFFIXES) \
            or "/" in raw or "\\" in raw:
        raise InvalidInput(f"--model {raw}: no such file or directory")
    raise InvalidInput(
        f"--model {raw!r}: not a file, not key=value overrides, not hf:<model_type>, not package.module:factory"
    )


def _look_up(path: Path, raw: str, may_be_text: bool) -> "os.stat_result | None":
    """The file or directory ``raw`` names (None: nothing there). A regular file or a directory; anything
    else (a FIFO, a device), or a path that cannot be looked up, is an input error. Text that reads as
    overrides or a factory is not a path when it cannot be looked up (``hidden_dim=8,...`` may be longer
    than a file name can be)."""
    try:
        return existing(path, f"--model {raw}")
    except InvalidInput:
        if may_be_text and os.sep not in raw:
            return None
        raise


def _refuse_overrides(overrides: Mapping[str, Any], raw: str, what: str, allowed: tuple[str, ...] = ()) -> None:
    extra = [k for k in overrides if k not in allowed]
    if extra:
        flags = ", ".join("--" + k.replace("_", "-") for k in extra)
        raise InvalidInput(f"{flags} cannot change --model {raw} ({what}); drop the flag(s) or edit the source")


def _load_hf_type(model_type: str) -> LoadedModel:
    from lstm_inspect.sources import hf

    if not model_type:
        raise InvalidInput("--model hf: needs a model type, e.g. hf:llama or hf:gpt2")
    config = hf.config_for_type(model_type)
    return _hf_loaded(config, {"source": "transformers", "name": f"hf:{model_type}"})


def _load_hf_file(path: Path, data: dict[str, Any] | None = None) -> LoadedModel:
    from lstm_inspect.sources import hf
    from lstm_inspect.sources.config_file import read_mapping

    data = read_mapping(path) if data is None else data
    config = hf.config_from_file(path, data)
    name = path.parent.name if path.name == "config.json" and path.parent.name else path.name
    return _hf_loaded(config, {"source": "transformers", "name": name, "path": str(path)})


def _hf_loaded(config: Any, description: dict[str, Any]) -> LoadedModel:
    from lstm_inspect.sources import hf

    module = hf.build_from_config(config)
    description["config"] = hf.describe_config(config)
    description["architecture"] = type(module).__name__
    return LoadedModel(module=module, spec=None, description=description, sample_input=token_batch_input(None))


def _load_factory(raw: str) -> LoadedModel:
    from lstm_inspect.sources.factory import load_factory

    module, sample = load_factory(raw)
    description = {"source": "factory", "name": raw, "architecture": type(module).__name__,
                   "sample_input": "sample_input attribute" if sample else "token ids [batch, seq]"}
    return LoadedModel(module=module, spec=None, description=description,
                       sample_input=sample or token_batch_input(None))


def _load_checkpoint(path: Path, overrides: Mapping[str, Any]) -> LoadedModel:
    import torch

    from lstm_inspect.building import skip_weight_init
    from lstm_inspect.sources.checkpoint import SAFETENSORS_SUFFIXES, read_checkpoint
    from lstm_inspect.sources.infer import infer_stack

    _refuse_overrides(overrides, str(path), "a checkpoint: its shapes fix the architecture", NOT_IN_WEIGHTS)
    base = ModelSpec.from_mapping(overrides) if overrides else ModelSpec()
    infos = read_checkpoint(path)
    stack = infer_stack(infos, origin=f"--model {path}")
    fmt = "safetensors" if path.suffix.lower() in SAFETENSORS_SUFFIXES else "torch"
    spec = stack.uniform_spec(batch_first=base.batch_first, dropout=base.dropout)
    if spec is not None:
        loaded = load_builtin(spec)
        loaded.description.update({"source": "checkpoint", "name": path.name, "path": str(path), "format": fmt,
                                   "inferred": True})
        return loaded
    from lstm_inspect.sources.pruned import PrunedRecurrentLanguageModel

    with skip_weight_init(), torch.device("meta"):
        module = PrunedRecurrentLanguageModel(stack, batch_first=base.batch_first)
    description = {
        "source": "checkpoint", "name": path.name, "path": str(path), "format": fmt, "inferred": True,
        "architecture": "PrunedRecurrentLanguageModel",
        "stack": {k: v for k, v in dataclasses.asdict(stack).items() if k != "layers"}
        | {"layers": [dataclasses.asdict(l) for l in stack.layers], "batch_first": base.batch_first},
        "tensor_names": "checkpoint rnn.<w>_l<k>[_reverse] = module rnn.<k>.<w>_l0[_reverse]",
    }
    return LoadedModel(module=module, spec=None, description=description,
                       sample_input=_padded_tokens(base.batch_first))


def _padded_tokens(batch_first: bool):
    """Token ids laid out as the stack expects; packed input (``--lengths``) is not supported by the stack model."""
    make_tokens = token_batch_input(dataclasses.replace(ModelSpec(), batch_first=batch_first))

    def make(batch: int, seq: int, device: Any = "cpu", lengths: Any = None) -> tuple:
        if lengths is not None:
            raise InvalidInput("--lengths (packed input) applies to the built-in model with uniform layers; "
                               "a checkpoint with per-layer widths is analysed on padded batches only")
        return make_tokens(batch, seq, device)

    return make


__all__ = ["resolve_source", "describe_spec"]
