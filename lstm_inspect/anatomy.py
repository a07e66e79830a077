"""Where things sit in a transformers decoder model: the stack of blocks, their attention and MLP, and the
projections inside them, found by the names model authors use. Shared by the sources (a checkpoint's
weights reshape a model) and the analyses (per-layer reports); imports torch only when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

ATTENTION_NAMES = ("attn", "attention")
MLP_NAMES = ("mlp", "feed_forward", "ffn", "ffwd")
Q_NAMES = ("q_proj", "query", "q", "wq")
K_NAMES = ("k_proj", "key", "k", "wk")
V_NAMES = ("v_proj", "value", "v", "wv")
O_NAMES = ("o_proj", "out_proj", "c_proj", "dense", "wo", "o")
QKV_NAMES = ("c_attn", "qkv_proj", "query_key_value", "wqkv", "qkv")
GATE_NAMES = ("gate_proj", "w1", "gate")
UP_NAMES = ("up_proj", "c_fc", "fc1", "fc_in", "dense_h_to_4h", "w3", "up")
DOWN_NAMES = ("down_proj", "c_proj", "fc2", "fc_out", "dense_4h_to_h", "w2", "down")


def decoder_stack(module: "nn.Module") -> tuple[str, list["nn.Module"]] | None:
    """The first ModuleList whose items each hold an attention submodule (``model.layers``, ``transformer.h``)."""
    from torch import nn

    for path, sub in module.named_modules():
        if isinstance(sub, nn.ModuleList) and len(sub) and all(child(block, ATTENTION_NAMES) is not None for block in sub):
            return path, list(sub)
    # Recurrent and state-space LMs (Mamba, xLSTM, RecurrentGemma) stack blocks with no attention child: the
    # ModuleList of blocks of one class, each with parameters, that holds the most of them.
    best: tuple[int, str, list] | None = None
    for path, sub in module.named_modules():
        if (isinstance(sub, nn.ModuleList) and len(sub) and len({type(b) for b in sub}) == 1
                and all(list(b.children()) for b in sub)):
            size = sum(p.numel() for p in sub.parameters())
            if size and (best is None or size > best[0]):
                best = (size, path, list(sub))
    return (best[1], best[2]) if best is not None else None


def child(block: "nn.Module", names: tuple[str, ...]) -> "nn.Module | None":
    """The first child of ``block`` whose name contains one of ``names`` (``self_attn``, ``mlp``)."""
    for name, sub in block.named_children():
        lowered = name.lower()
        if any(n in lowered for n in names):
            return sub
    return None


def named(module: "nn.Module", names: tuple[str, ...]) -> "nn.Module | None":
    """The first submodule whose own name is one of ``names``, in the order of ``names``."""
    for name in names:
        for path, sub in module.named_modules():
            if path and path.rsplit(".", 1)[-1].lower() == name:
                return sub
    return None


def out_features(module: "nn.Module | None") -> int | None:
    if module is None:
        return None
    features = getattr(module, "out_features", None)
    if isinstance(features, int):
        return features
    nf = getattr(module, "nf", None)    # transformers' Conv1D: weight [in, out]
    if isinstance(nf, int):
        return nf
    weight = getattr(module, "weight", None)
    return int(weight.shape[0]) if weight is not None and weight.dim() >= 1 else None


def config_head_dim(config: Any) -> int | None:
    if config is None:
        return None
    head_dim = getattr(config, "head_dim", None)
    if head_dim:
        return int(head_dim)
    hidden, heads = getattr(config, "hidden_size", None), getattr(config, "num_attention_heads", None)
    return hidden // heads if hidden and heads else None


def first_attr(objects: tuple[Any, ...], names: tuple[str, ...]) -> int | None:
    for obj in objects:
        for name in names:
            value = getattr(obj, name, None) if obj is not None else None
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


def head_counts(attn: "nn.Module", config: Any) -> tuple[int | None, int | None]:
    """(query heads, KV heads) of an attention module, read from its projections' widths (a pruned model
    reports the heads it really has); 0, 0 when it has no parameters left."""
    if not any(True for _ in attn.parameters()):
        return 0, 0
    q, k = named(attn, Q_NAMES), named(attn, K_NAMES)
    head_dim = getattr(attn, "head_dim", None) or config_head_dim(config)
    q_rows, k_rows = out_features(q), out_features(k)
    heads = q_rows // head_dim if q_rows and head_dim else first_attr(
        (attn, config), ("num_heads", "n_head", "num_attention_heads"))
    kv_heads = k_rows // head_dim if k_rows and head_dim else first_attr(
        (attn, config), ("num_key_value_heads", "num_kv_heads"))
    return heads, kv_heads if kv_heads is not None else heads


def intermediate_size(mlp: "nn.Module") -> int | None:
    """The MLP's inner width (its up, else its gate projection's outputs); 0 when nothing is left."""
    if not any(True for _ in mlp.parameters()):
        return 0
    up = named(mlp, UP_NAMES)
    return out_features(up) if up is not None else out_features(named(mlp, GATE_NAMES))
