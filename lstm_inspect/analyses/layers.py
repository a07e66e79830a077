"""Per-layer parameter detail: decoder layers of transformers models, layers × directions of recurrent stacks.

For a decoder layer, source document 003's fields: the attention's q/k/v/o projections (a fused
``c_attn``/``qkv_proj`` is reported as ``qkv_proj``), head counts, the MLP's gate/up/down projections
and intermediate size, the layer's own norms, and whether the layer was pruned away entirely
(``is_zero_layer``: no parameters left but its norms, as source document 003's ZeroAttention/ZeroMLP
layers keep theirs). Head counts are read from the projections' widths
(``q_proj`` rows / ``head_dim``), so a pruned model reports the heads it really has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lstm_inspect.recurrence import cell_kind, parse_tensor_name

if TYPE_CHECKING:
    from torch import nn

    from lstm_inspect.source import LoadedModel

_ATTENTION_NAMES = ("attn", "attention")
_MLP_NAMES = ("mlp", "feed_forward", "ffn", "ffwd")
_Q = ("q_proj", "query", "q", "wq")
_K = ("k_proj", "key", "k", "wk")
_V = ("v_proj", "value", "v", "wv")
_O = ("o_proj", "out_proj", "c_proj", "dense", "wo", "o")
_QKV = ("c_attn", "qkv_proj", "query_key_value", "wqkv", "qkv")
_GATE = ("gate_proj", "w1", "gate")
_UP = ("up_proj", "c_fc", "fc1", "fc_in", "dense_h_to_4h", "w3", "up")
_DOWN = ("down_proj", "c_proj", "fc2", "fc_out", "dense_4h_to_h", "w2", "down")


@dataclass(frozen=True)
class AttentionDetail:
    type: str
    total: int
    q_proj: int | None
    k_proj: int | None
    v_proj: int | None
    o_proj: int | None
    qkv_proj: int | None          # fused q/k/v (GPT-2's c_attn), when the model has one
    num_heads: int | None
    num_kv_heads: int | None


@dataclass(frozen=True)
class MlpDetail:
    type: str
    total: int
    gate_proj: int | None
    up_proj: int | None
    down_proj: int | None
    intermediate_size: int | None


@dataclass(frozen=True)
class DecoderLayer:
    layer_idx: int
    path: str
    total: int
    attention: AttentionDetail | None
    mlp: MlpDetail | None
    norm: int
    is_zero_layer: bool


@dataclass(frozen=True)
class RecurrentLayerDetail:
    layer_idx: int
    direction: str        # "forward" | "reverse"
    cell: str
    input_size: int
    hidden_size: int
    proj_size: int
    params: int

    @property
    def is_zero_layer(self) -> bool:
        return self.params == 0


@dataclass(frozen=True)
class LayerReport:
    """Where a model's parameters sit layer by layer (only one of the two layer lists is filled)."""

    kind: str                                  # "decoder" | "recurrent" | "none"
    embedding_params: int
    lm_head_params: int                        # not counting a head tied to the embedding
    layer_params: int                          # all decoder (or recurrent) layers together
    decoder_layers: tuple[DecoderLayer, ...] = ()
    recurrent_layers: tuple[RecurrentLayerDetail, ...] = ()
    hyperparameters: dict[str, Any] = field(default_factory=dict)


def describe_layers(loaded: "LoadedModel") -> LayerReport:
    """The per-layer view of ``loaded.module`` (works on meta; nothing is run)."""
    from torch import nn

    module = loaded.module
    embed_ids = {id(p) for m in module.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) for p in m.parameters()}
    embedding_params = _count_ids(module, embed_ids)
    head = output_head(module)
    head_params = sum(p.numel() for p in head.parameters() if id(p) not in embed_ids) if head is not None else 0
    stack = _decoder_stack(module)
    # The config's own numbers, less those measured below from the modules (which a pruned model changes).
    hyper = {k: v for k, v in (loaded.description.get("config") or {}).items()
             if k not in ("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size")}
    if stack is not None:
        path, blocks = stack
        config = getattr(module, "config", None)
        layers = tuple(_decoder_layer(i, f"{path}.{i}", block, config) for i, block in enumerate(blocks))
        hyper.update(_uniform_or_list("num_layers", [len(layers)]))
        hyper.update(_uniform_or_list("num_heads", [l.attention.num_heads for l in layers if l.attention]))
        hyper.update(_uniform_or_list("num_kv_heads", [l.attention.num_kv_heads for l in layers if l.attention]))
        hyper.update(_uniform_or_list("intermediate_size", [l.mlp.intermediate_size for l in layers if l.mlp]))
        return LayerReport("decoder", embedding_params, int(head_params), sum(l.total for l in layers),
                           decoder_layers=layers, hyperparameters=hyper)
    recurrent = _recurrent_layers(module)
    if recurrent:
        hyper.update(_recurrent_hyperparameters(module, recurrent))
        return LayerReport("recurrent", embedding_params, int(head_params), sum(l.params for l in recurrent),
                           recurrent_layers=tuple(recurrent), hyperparameters=hyper)
    return LayerReport("none", embedding_params, int(head_params), 0, hyperparameters=hyper)


def _count_ids(module: "nn.Module", ids: set[int]) -> int:
    return sum(p.numel() for p in module.parameters() if id(p) in ids)


def output_head(module: "nn.Module") -> "nn.Module | None":
    getter = getattr(module, "get_output_embeddings", None)
    if callable(getter):
        try:
            head = getter()
        except Exception:  # noqa: BLE001 - a model may not implement it
            head = None
        if head is not None:
            return head
    from torch import nn

    layout = getattr(module, "layout", None)   # a model rebuilt from a checkpoint knows its head
    head_path = getattr(getattr(layout, "head", None), "path", None)
    if head_path:
        return module.get_submodule(head_path)
    proj = getattr(module, "proj", None)
    return proj if isinstance(proj, nn.Module) else None


def _decoder_stack(module: "nn.Module") -> tuple[str, list["nn.Module"]] | None:
    """The first ModuleList whose items each hold an attention submodule (``model.layers``, ``transformer.h``)."""
    from torch import nn

    for path, sub in module.named_modules():
        if isinstance(sub, nn.ModuleList) and len(sub) and all(_child(block, _ATTENTION_NAMES) is not None for block in sub):
            return path, list(sub)
    return None


def _child(block: "nn.Module", names: tuple[str, ...]) -> "nn.Module | None":
    for name, child in block.named_children():
        lowered = name.lower()
        if any(n in lowered for n in names):
            return child
    return None


def _named(module: "nn.Module", names: tuple[str, ...]) -> "nn.Module | None":
    for name in names:
        for path, sub in module.named_modules():
            if path and path.rsplit(".", 1)[-1].lower() == name:
                return sub
    return None


def _params(module: "nn.Module | None") -> int | None:
    return None if module is None else int(sum(p.numel() for p in module.parameters()))


def _out_features(module: "nn.Module | None") -> int | None:
    if module is None:
        return None
    if hasattr(module, "out_features"):
        return int(module.out_features)
    if hasattr(module, "nf"):        # transformers' Conv1D: weight [in, out]
        return int(module.nf)
    weight = getattr(module, "weight", None)
    return int(weight.shape[0]) if weight is not None and weight.dim() >= 1 else None


def _decoder_layer(index: int, path: str, block: "nn.Module", config: Any) -> DecoderLayer:
    attention_module = _child(block, _ATTENTION_NAMES)
    mlp_module = _child(block, _MLP_NAMES)
    attention = _attention(attention_module, config) if attention_module is not None else None
    mlp = _mlp(mlp_module) if mlp_module is not None else None
    norm = sum(_params(child) or 0 for name, child in block.named_children()
               if "norm" in type(child).__name__.lower() or name.lower().startswith(("ln", "norm")))
    total = _params(block) or 0
    return DecoderLayer(index, path, total, attention, mlp, int(norm), is_zero_layer=total == norm)


def _attention(attn: "nn.Module", config: Any) -> AttentionDetail:
    q, k, v = _named(attn, _Q), _named(attn, _K), _named(attn, _V)
    o, qkv = _named(attn, _O), _named(attn, _QKV)
    total = _params(attn) or 0
    head_dim = getattr(attn, "head_dim", None) or _config_head_dim(config)
    if total == 0:
        heads = kv_heads = 0
    else:
        heads = _out_features(q) // head_dim if q is not None and head_dim else _first_attr(
            (attn, config), ("num_heads", "n_head", "num_attention_heads"))
        kv_heads = _out_features(k) // head_dim if k is not None and head_dim else _first_attr(
            (attn, config), ("num_key_value_heads", "num_kv_heads"))
        kv_heads = kv_heads if kv_heads is not None else heads
    return AttentionDetail(type(attn).__name__, total, _params(q), _params(k), _params(v), _params(o), _params(qkv),
                           heads, kv_heads)


def _mlp(mlp: "nn.Module") -> MlpDetail:
    gate, up, down = _named(mlp, _GATE), _named(mlp, _UP), _named(mlp, _DOWN)
    total = _params(mlp) or 0
    inter = 0 if total == 0 else (_out_features(up) if up is not None else _out_features(gate))
    return MlpDetail(type(mlp).__name__, total, _params(gate), _params(up), _params(down), inter)


def _config_head_dim(config: Any) -> int | None:
    if config is None:
        return None
    head_dim = getattr(config, "head_dim", None)
    if head_dim:
        return int(head_dim)
    hidden, heads = getattr(config, "hidden_size", None), getattr(config, "num_attention_heads", None)
    return hidden // heads if hidden and heads else None


def _first_attr(objects: tuple[Any, ...], names: tuple[str, ...]) -> int | None:
    for obj in objects:
        for name in names:
            value = getattr(obj, name, None) if obj is not None else None
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


def _recurrent_layers(module: "nn.Module") -> list[RecurrentLayerDetail]:
    from torch import nn

    out: list[RecurrentLayerDetail] = []
    offset = 0
    for _path, sub in module.named_modules():
        if not isinstance(sub, nn.RNNBase):
            continue
        cell = cell_kind(sub)
        directions = 2 if sub.bidirectional else 1
        state = sub.proj_size or sub.hidden_size
        per_layer: dict[tuple[int, bool], int] = {}
        for name, p in sub.named_parameters(recurse=False):
            parsed = parse_tensor_name(name)
            if parsed is not None:
                key = (parsed.layer, parsed.reverse)
                per_layer[key] = per_layer.get(key, 0) + p.numel()
        for layer in range(sub.num_layers):
            for direction in range(directions):
                count = per_layer.get((layer, bool(direction)), 0)
                out.append(RecurrentLayerDetail(offset + layer, "reverse" if direction else "forward", cell,
                                                sub.input_size if layer == 0 else state * directions,
                                                sub.hidden_size, sub.proj_size, int(count)))
        offset += sub.num_layers
    return out


def _recurrent_hyperparameters(module: "nn.Module", layers: list[RecurrentLayerDetail]) -> dict[str, Any]:
    from torch import nn

    forward = [l for l in layers if l.direction == "forward"]
    out: dict[str, Any] = {"cell": forward[0].cell}
    embed = next((m for m in module.modules() if isinstance(m, nn.Embedding)), None)
    if embed is not None:
        out["vocab_size"] = int(embed.num_embeddings)
        out["embed_dim"] = int(embed.embedding_dim)
    out.update(_uniform_or_list("hidden_dim", [l.hidden_size for l in forward]))
    out["num_layers"] = len(forward)
    out["bidirectional"] = len(layers) > len(forward)
    out.update(_uniform_or_list("proj_size", [l.proj_size for l in forward]))
    return out


def _uniform_or_list(name: str, values: list[Any]) -> dict[str, Any]:
    """One value when every layer agrees, else the list per layer (a pruned model)."""
    if not values or any(v is None for v in values):
        return {}
    return {name: values[0] if len(set(values)) == 1 else list(values)}
