"""Where a model comes from: ``--model SOURCE`` resolved to a :class:`~lstm_inspect.source.LoadedModel`.

SOURCE is one of (tried in this order):

* ``builtin`` (or ``default``): the built-in model with its default spec;
* ``hf:<model_type>``: transformers' default config for that type, built without weights;
* ``key=value,...``: the built-in spec with overrides (``hidden_dim=512,num_layers=3``);
* an existing path: a directory holding ``config.json`` or a ``.json`` with ``model_type``
  (transformers config; a directory's weights, when it has any, fix the shapes: see
  :mod:`lstm_inspect.sources.hf_weights`); another ``.json`` or a ``.toml`` (a built-in spec); ``.pt``/``.pth``/
  ``.bin``/``.ckpt`` (``torch.load(weights_only=True)``) or ``.safetensors`` (a state_dict of the
  built-in family, architecture inferred from the shapes; or, beside a transformers ``config.json``
  whose model the tensor names are, that transformers checkpoint);
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


def resolve_source(text: str, *, overrides: Mapping[str, Any] | None = None, trust_pickle: bool = False,
                   origin: str = "model") -> LoadedModel:
    """The model ``text`` names (see the module docstring), on meta where it can be.

    Args:
        text: the ``--model`` value.
        overrides: spec fields set by model flags beside ``--model``. They override a built-in spec
            source (key=value, a spec file); a checkpoint takes only those its weights do not record
            (``batch_first``, ``dropout``); transformers and factory sources take none.
        trust_pickle: load a whole pickled model with full unpickling (its code runs); otherwise such a
            file is refused without running anything.
        origin: how messages name the source (the CLI passes ``--model``, or names compare's argument).

    Returns:
        The loaded model, with ``spec`` set when it is the built-in family with uniform layers.
    """
    from lstm_inspect.errors import LstmInspectError

    try:
        return _resolve(text, dict(overrides or {}), trust_pickle)
    except LstmInspectError as exc:
        message = str(exc)
        if origin == "--model" or not message.startswith("--model"):
            raise
        # compare's positional arguments are not --model: name the argument the user typed
        renamed = type(exc).__new__(type(exc))
        rest = message[len("--model"):]
        if (text or "").strip():
            rest = rest.removeprefix(" " + text.strip())
        renamed.args = (origin + (rest if rest.startswith((":", " ")) else " " + rest),)
        raise renamed from None


def _resolve(text: str, overrides: dict[str, Any], trust_pickle: bool) -> LoadedModel:
    from lstm_inspect.sources import checkpoint, factory, overrides as kv

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
        from lstm_inspect.sources.hf_weights import find_weights, load_directory

        weights = find_weights(path)
        return _load_hf_file(config) if weights is None else load_directory(path, weights)
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
            return _load_checkpoint(path, overrides, trust_pickle)
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


def _load_checkpoint(path: Path, overrides: Mapping[str, Any], trust_pickle: bool = False) -> LoadedModel:
    from lstm_inspect.sources.checkpoint import SAFETENSORS_SUFFIXES, PickleRefused, read_checkpoint
    from lstm_inspect.sources.hf_weights import load_beside_config

    _refuse_overrides(overrides, str(path), "a checkpoint: its shapes fix the architecture", NOT_IN_WEIGHTS)
    transformers_checkpoint = load_beside_config(path)
    if transformers_checkpoint is not None:
        _refuse_overrides(overrides, str(path), "a transformers checkpoint")
        return transformers_checkpoint
    base = ModelSpec.from_mapping(overrides) if overrides else ModelSpec()
    fmt = "safetensors" if path.suffix.lower() in SAFETENSORS_SUFFIXES else "torch"
    try:
        infos = read_checkpoint(path)
    except PickleRefused:
        if not trust_pickle:
            raise
        return _load_trusted_pickle(path, base)
    return checkpoint_model(infos, path, fmt, base)


def checkpoint_model(infos: Mapping[str, Any], path: Path, fmt: str, base: ModelSpec) -> LoadedModel:
    """The model a state_dict's names and shapes describe (see :mod:`lstm_inspect.sources.layout`)."""
    import torch

    from lstm_inspect.building import skip_weight_init
    from lstm_inspect.sources.layout import builtin_spec, read_layout
    from lstm_inspect.sources.rebuilt import RebuiltRecurrentModel

    layout = read_layout(infos)
    description: dict[str, Any] = {"source": "checkpoint", "name": path.name, "path": str(path), "format": fmt,
                                   "inferred": True, "stored": _stored(infos)}
    spec = builtin_spec(layout, batch_first=base.batch_first, dropout=base.dropout)
    if spec is not None:
        loaded = load_builtin(spec)
        loaded.description.update(description)
        return loaded
    unrunnable = None if layout.runnable else _cannot_run(path, layout)
    with skip_weight_init(), torch.device("meta"):
        if layout.runnable and len(layout.blocks) == 1 and not layout.blocks[0].path and layout.head is None \
                and layout.embedding is None and layout.blocks[0].uniform and not layout.blocks[0].raw:
            module = _bare_recurrent(layout.blocks[0], base.batch_first)   # a saved nn.LSTM itself
        else:
            module = RebuiltRecurrentModel(layout, infos, batch_first=base.batch_first, unrunnable=unrunnable)
    description.update({
        "architecture": type(module).__name__,
        "recognised": layout.recognised(),
        "layout": _layout_dict(layout, base.batch_first),
    })
    if layout.problems:
        description["not_recognised"] = list(layout.problems)
    return LoadedModel(module=module, spec=None, description=description,
                       sample_input=_rebuilt_input(layout, base.batch_first))


def _bare_recurrent(block: Any, batch_first: bool) -> Any:
    from lstm_inspect.recurrence import cell_class
    from lstm_inspect.sources.rebuilt import _rnn_kwargs

    return cell_class(block.cell)(**_rnn_kwargs(block, block.layers[0], num_layers=len(block.layers),
                                                batch_first=batch_first))


def _cannot_run(path: Path, layout: Any) -> str:
    return (f"--model {path}: the checkpoint's architecture is not fully recognised, so its forward pass cannot be "
            f"rebuilt. Recognised: {layout.recognised()}. Not recognised: {'; '.join(layout.problems)}. Its parameters "
            "are still counted from the shapes (lstm-inspect params); for structure, FLOPs and memory give the model's "
            "code: --model package.module:factory (a function that builds the model)")


def _stored(infos: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per stored dtype: tensors, parameters and bytes (each shared tensor once)."""
    seen: set[object] = set()
    out: dict[str, dict[str, int]] = {}
    for name, info in infos.items():
        key = (info.storage, info.shape) if info.storage is not None else name
        if key in seen:
            continue
        seen.add(key)
        row = out.setdefault(info.dtype, {"tensors": 0, "params": 0, "bytes": 0})
        row["tensors"] += 1
        row["params"] += info.numel
        row["bytes"] += info.numel * info.itemsize
    return out


def _layout_dict(layout: Any, batch_first: bool) -> dict[str, Any]:
    return {
        "embedding": dataclasses.asdict(layout.embedding) if layout.embedding else None,
        "recurrent": [dataclasses.asdict(b) | {"layers": [dataclasses.asdict(l) for l in b.layers]} for b in layout.blocks],
        "head": dataclasses.asdict(layout.head) if layout.head else None,
        "tied": layout.tied,
        "head_on": layout.head_on,
        "batch_first": batch_first,
    }


def _rebuilt_input(layout: Any, batch_first: bool):
    """Token ids when the model has an embedding, else float features ``[B, T, input_size]``; packed
    input (``--lengths``) is a padded batch plus the lengths, as for the built-in model."""
    width = layout.blocks[0].input_size if layout.blocks else 1

    def make(batch: int, seq: int, device: Any = "cpu", lengths: Any = None) -> tuple:
        import torch

        if lengths is not None:
            batch, seq = len(lengths), max(lengths)
        shape = (batch, seq) if batch_first else (seq, batch)
        if layout.embedding is not None:
            inputs = torch.zeros(shape, dtype=torch.long, device=device)
        else:
            inputs = torch.zeros((*shape, width), device=device)
        return (inputs,) if lengths is None else (inputs, list(lengths))

    return make


def _load_trusted_pickle(path: Path, base: ModelSpec) -> LoadedModel:
    """A whole pickled model (or ``{"model": model, ...}``), unpickled for real after a warning."""
    import warnings

    from torch import nn

    from lstm_inspect.errors import LstmInspectWarning
    from lstm_inspect.sources.checkpoint import load_pickle_trusted, state_dict_infos
    from lstm_inspect.sources.factory import sample_input_of

    warnings.warn(f"--trust-pickle: unpickling {path} runs the code it names", LstmInspectWarning, stacklevel=2)
    obj = load_pickle_trusted(path)
    module = obj if isinstance(obj, nn.Module) else None
    if module is None and isinstance(obj, dict):
        module = next((v for v in obj.values() if isinstance(v, nn.Module)), None)
    if module is None:
        return checkpoint_model(state_dict_infos(obj, path), path, "torch", base)
    cls = type(module)
    description = {"source": "checkpoint", "name": path.name, "path": str(path), "format": "pickled model",
                   "architecture": f"{cls.__module__}.{cls.__qualname__}", "trusted_pickle": True}
    return LoadedModel(module=module, spec=None, description=description, sample_input=sample_input_of(module, None) or token_batch_input(None))


__all__ = ["resolve_source", "describe_spec"]
