"""A transformers checkpoint as it is: the config's model, made to follow the weights' shapes.

Pruning tools keep the original ``config.json`` and write smaller weights: fewer query or key/value
heads, fewer intermediate units in some layers, a layer's attention and MLP removed. Built from the
config alone, such a model would be analysed at its unpruned size. Here the model is built from the
config on ``meta`` and then every parameter whose checkpoint shape differs is replaced by a ``meta``
tensor of the checkpoint's shape, with the owning modules' widths (``nn.Linear.in_features``, the
attention's ``num_key_value_groups``, the MLP's ``intermediate_size``) set to match, so that a fake
forward runs at the real widths. An attention or MLP whose weights are absent altogether becomes a
parameter-free stand-in that returns zeros (source document 003's ``ZeroAttention``/``ZeroMLP``): the
residual stream passes through.

Shapes come from the safetensors headers or ``torch.load(weights_only=True, mmap=True)``
(:func:`lstm_inspect.sources.checkpoint.read_checkpoint`); no weight value is read, and no code of the
directory is run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lstm_inspect.errors import AnalysisFailed, LstmInspectError
from lstm_inspect.sources.stand_ins import ZeroAttention, ZeroMLP, _CannotRun, forward_unavailable  # noqa: F401
from lstm_inspect.sources.weight_files import WEIGHT_FILES, WeightFiles, find_weights, read_shapes, some_names as _some  # noqa: F401

if TYPE_CHECKING:
    from lstm_inspect.source import LoadedModel
    from lstm_inspect.sources.checkpoint import TensorInfo

#: Share of a checkpoint's tensor names that must be the config model's for a lone weights file to
#: be taken as that transformers checkpoint.
_MATCH_SHARE = 0.5


def names_match(module: nn.Module, infos: dict[str, "TensorInfo"]) -> bool:
    """Whether most of a checkpoint's tensor names are ``module``'s (a transformers checkpoint of that config)."""
    own = {name for name, _ in module.named_parameters(remove_duplicate=False)}
    own |= {name for name, _ in module.named_buffers(remove_duplicate=False)}
    return bool(infos) and sum(name in own for name in infos) >= _MATCH_SHARE * len(infos)


# --------------------------------------------------------------------------------------------
# making the model follow the weights
# --------------------------------------------------------------------------------------------


def follow_weights(module: nn.Module, infos: dict[str, "TensorInfo"], *, origin: str) -> tuple[str, ...]:
    """Reshape ``module`` (built from the config, on meta) in place to the checkpoint's shapes.

    Args:
        module: the config's model, on meta.
        infos: the checkpoint's tensor names and shapes.
        origin: what to name in messages (``--model DIR``).

    Returns:
        Notes for the reports: which config fields the weights contradict (empty when they agree).

    Raises:
        AnalysisFailed: the checkpoint holds tensors the model does not have, or lacks some that it has
            (other than a tied head, or a whole attention/MLP removed).
    """
    from lstm_inspect.anatomy import decoder_stack

    params = dict(module.named_parameters(remove_duplicate=False))
    buffers = {name for name, _ in module.named_buffers(remove_duplicate=False)}
    extra = sorted(name for name in infos if name not in params and name not in buffers)
    if extra:
        raise AnalysisFailed(f"{origin}: the checkpoint holds tensors that the config's model "
                             f"({type(module).__name__}) has not: {_some(extra)}")
    present = {id(params[name]) for name in infos if name in params}   # a tied tensor is present under any name
    missing = [name for name, p in params.items() if id(p) not in present]

    stack = decoder_stack(module)
    blocks = dict(enumerate(stack[1])) if stack else {}
    prefix = f"{stack[0]}." if stack else ""
    removed = _replace_removed(module, blocks, prefix, set(missing))
    still = {name for name, _ in module.named_parameters(remove_duplicate=False)}
    left = [name for name in missing if name in still]
    if left:
        raise AnalysisFailed(f"{origin}: the checkpoint lacks tensors that the config's model "
                             f"({type(module).__name__}) has: {_some(left)}")

    others: list[str] = []
    for name, param in list(module.named_parameters(remove_duplicate=False)):
        shape = tuple(infos[name].shape) if name in infos else None
        if shape is None or shape == tuple(param.shape):
            continue
        owner_path, attr = name.rsplit(".", 1) if "." in name else ("", name)
        owner = module.get_submodule(owner_path)
        setattr(owner, attr, nn.Parameter(torch.empty(shape, dtype=param.dtype, device="meta"),
                                          requires_grad=param.requires_grad))
        if not _fix_widths(owner, attr, shape):
            others.append(f"{name} {list(param.shape)} → {list(shape)}")
    # A tied pair keeps one tensor: re-tie if one of its names was replaced above.
    _retie(module, params)
    config = getattr(module, "config", None)
    for index, block in blocks.items():
        _fix_block(index, block, config)
    return _notes(module, blocks, config, removed, others)


def _replace_removed(module: nn.Module, blocks: dict[int, nn.Module], prefix: str, missing: set[str]) -> list[int]:
    """Stand-ins for the attention/MLP of each decoder layer whose weights are all absent, and for the
    layer's norms when nothing of the layer is left. Returns the layers left without attention and MLP."""
    emptied = []
    for index, block in blocks.items():
        base = f"{prefix}{index}."
        holders = {n: c for n, c in block.named_children() if any(True for _ in c.parameters())}
        gone = {n for n, c in holders.items()
                if all(f"{base}{n}.{p}" in missing for p, _ in c.named_parameters(remove_duplicate=False))}
        whole = gone == set(holders) and not any(True for _ in block.named_parameters(recurse=False))
        roles = {n: _role(n, c) for n, c in holders.items()}
        for name in sorted(gone):
            if roles[name] == "attention":
                setattr(block, name, ZeroAttention())
            elif roles[name] == "mlp":
                setattr(block, name, ZeroMLP())
            elif whole:   # the layer removed entirely: its norms pass the stream through too
                setattr(block, name, nn.Identity())
        if any(roles[n] in ("attention", "mlp") for n in gone) and all(
                roles[n] not in ("attention", "mlp") for n in set(holders) - gone):
            emptied.append(index)
    return emptied


def _role(name: str, child: nn.Module) -> str | None:
    """``attention``, ``mlp`` or ``norm`` for a decoder layer's child (``post_attention_layernorm`` is a norm)."""
    from lstm_inspect.anatomy import ATTENTION_NAMES, MLP_NAMES

    lowered = name.lower()
    if "norm" in lowered or "norm" in type(child).__name__.lower() or lowered.startswith("ln"):
        return "norm"
    if any(k in lowered for k in ATTENTION_NAMES):
        return "attention"
    if any(k in lowered for k in MLP_NAMES):
        return "mlp"
    return None


def _fix_widths(owner: nn.Module, attr: str, shape: tuple[int, ...]) -> bool:
    """Set the width attributes of a Linear/Embedding from its new weight; False for another owner."""
    if isinstance(owner, nn.Linear):
        if attr == "weight" and len(shape) == 2:
            owner.out_features, owner.in_features = int(shape[0]), int(shape[1])
        return True
    if isinstance(owner, nn.Embedding) and attr == "weight" and len(shape) == 2:
        owner.num_embeddings, owner.embedding_dim = int(shape[0]), int(shape[1])
        return True
    return False


def _retie(module: nn.Module, before: dict[str, nn.Parameter]) -> None:
    groups: dict[int, list[str]] = {}
    for name, param in before.items():
        groups.setdefault(id(param), []).append(name)
    for names in groups.values():
        if len(names) < 2:
            continue
        first = module.get_parameter(names[0])
        for name in names[1:]:
            path, attr = name.rsplit(".", 1) if "." in name else ("", name)
            owner = module.get_submodule(path)
            if getattr(owner, attr) is not first:
                setattr(owner, attr, first)
                _fix_widths(owner, attr, tuple(first.shape))


def _fix_block(index: int, block: nn.Module, config: Any) -> None:
    """The attention's head counts and the MLP's intermediate size, read from the projections' widths."""
    from lstm_inspect.anatomy import ATTENTION_NAMES, GATE_NAMES, K_NAMES, MLP_NAMES, Q_NAMES, UP_NAMES, child, named

    attn = child(block, ATTENTION_NAMES)
    if attn is not None and not isinstance(attn, ZeroAttention):
        q, k = named(attn, Q_NAMES), named(attn, K_NAMES)
        head_dim = getattr(attn, "head_dim", None)
        if isinstance(q, nn.Linear) and isinstance(k, nn.Linear) and isinstance(head_dim, int) and head_dim:
            reason = None
            if q.out_features % head_dim or k.out_features % head_dim:
                reason = (f"layer {index}: q_proj/k_proj widths {q.out_features}/{k.out_features} are not whole "
                          f"heads of {head_dim}")
            else:
                heads, kv_heads = q.out_features // head_dim, k.out_features // head_dim
                if kv_heads == 0 or heads % kv_heads:
                    reason = (f"layer {index} has {heads} query heads for {kv_heads} key/value heads, not a whole "
                              "multiple")
                else:
                    setattr(attn, "num_key_value_groups", heads // kv_heads)
                    for attr, value in (("num_heads", heads), ("num_attention_heads", heads),
                                        ("num_key_value_heads", kv_heads), ("num_kv_heads", kv_heads)):
                        if isinstance(getattr(attn, attr, None), int):
                            setattr(attn, attr, value)
            if reason is not None:
                # 200 characters reach the user after "counting a forward pass of NAME failed: "
                attn.forward = _CannotRun(f"{reason}: transformers' attention cannot run it, so there are no "
                                          "FLOPs, memory or output shapes")
    mlp = child(block, MLP_NAMES)
    if mlp is not None and not isinstance(mlp, ZeroMLP) and isinstance(getattr(mlp, "intermediate_size", None), int):
        up = named(mlp, UP_NAMES) or named(mlp, GATE_NAMES)
        if isinstance(up, nn.Linear):
            setattr(mlp, "intermediate_size", up.out_features)


# --------------------------------------------------------------------------------------------
# the note
# --------------------------------------------------------------------------------------------


def _notes(module: nn.Module, blocks: dict[int, nn.Module], config: Any, removed: list[int],
           others: list[str]) -> tuple[str, ...]:
    from lstm_inspect.anatomy import ATTENTION_NAMES, MLP_NAMES, child, head_counts, intermediate_size

    parts: list[str] = []
    if blocks and config is not None:
        kept = {i: b for i, b in blocks.items() if i not in removed}
        attentions = {i: child(b, ATTENTION_NAMES) for i, b in kept.items()}
        mlps = {i: child(b, MLP_NAMES) for i, b in kept.items()}
        heads = {i: head_counts(a, config) for i, a in attentions.items() if a is not None}
        configured = {
            "num_attention_heads": getattr(config, "num_attention_heads", None),
            "num_key_value_heads": getattr(config, "num_key_value_heads", None) or getattr(config, "num_attention_heads", None),
            "intermediate_size": getattr(config, "intermediate_size", None),
        }
        measured = {
            "num_attention_heads": {i: h[0] for i, h in heads.items()},
            "num_key_value_heads": {i: h[1] for i, h in heads.items()},
            "intermediate_size": {i: intermediate_size(m) for i, m in mlps.items() if m is not None},
        }
        for field, want in configured.items():
            if not isinstance(want, int):
                continue
            differ: dict[Any, list[int]] = {}
            for idx, got in measured[field].items():
                if got is not None and got != want:
                    differ.setdefault(got, []).append(idx)
            if differ:
                parts.append(f"{field} {want} → " + ", ".join(
                    f"{value} ({_layers_text(idxs)})" for value, idxs in sorted(differ.items(), key=lambda kv: kv[1][0])))
        if removed:
            parts.append(f"attention and MLP weights absent in {_layers_text(removed)} (parameter-free stand-ins, "
                         "the residual passes through)")
    if others:
        parts.append("other shapes: " + _some(others))
    if not parts:
        return ()
    return ("weights differ from config.json: " + "; ".join(parts) + "; the analysis follows the weights",)


def _layers_text(indices: list[int]) -> str:
    """``layer 3`` / ``layers 0–2, 5``."""
    runs: list[str] = []
    ordered = sorted(indices)
    start = prev = ordered[0]
    for idx in ordered[1:] + [None]:
        if idx is not None and idx == prev + 1:
            prev = idx
            continue
        runs.append(str(start) if start == prev else f"{start}–{prev}")
        if idx is not None:
            start = prev = idx
    return ("layer " if len(ordered) == 1 else "layers ") + ", ".join(runs)


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------

#: A decoder layer's index in a tensor name, as transformers models write it (``model.layers.3.``,
#: ``transformer.h.3.``): what tells a transformers checkpoint from a recurrent one beside a config.json.
_LAYER_NAME = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block|decoder_layers)\.\d+\.")


def load_directory(directory: Path, weights: WeightFiles) -> "LoadedModel":
    """The model of ``directory``'s config.json, following the shapes of its weights."""
    from lstm_inspect.sources import _load_hf_file

    loaded = _load_hf_file(directory / "config.json")
    return with_weights(loaded, weights, read_shapes(weights), origin=f"--model {directory}")


def load_beside_config(path: Path) -> "LoadedModel | None":
    """``path`` (a weights file) as the transformers checkpoint of the config.json beside it; None when
    there is no such config or the tensor names are not that model's (another kind of checkpoint)."""
    from lstm_inspect.sources import _load_hf_file
    from lstm_inspect.sources.checkpoint import SAFETENSORS_SUFFIXES, read_checkpoint

    config = path.parent / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
        return None
    try:
        infos = read_checkpoint(path)
    except LstmInspectError:   # unreadable, or a refused pickle: the checkpoint path says so (or trusts it)
        return None
    if not any(_LAYER_NAME.search(name) for name in infos):
        return None
    loaded = _load_hf_file(config, data)
    if not names_match(loaded.module, infos):
        return None
    fmt = "safetensors" if path.suffix.lower() in SAFETENSORS_SUFFIXES else "torch"
    return with_weights(loaded, WeightFiles(fmt, (path,)), infos, origin=f"--model {path}")


def with_weights(loaded: "LoadedModel", weights: WeightFiles, infos: dict[str, "TensorInfo"], *,
                 origin: str) -> "LoadedModel":
    """``loaded`` (built from a config) reshaped to ``infos``, its description and notes saying so."""
    import dataclasses

    notes = follow_weights(loaded.module, infos, origin=origin)
    loaded.description["weights"] = weights.describe()
    return dataclasses.replace(loaded, notes=(*loaded.notes, *notes))
