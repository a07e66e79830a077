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

from lstm_inspect.anatomy import (
    ATTENTION_NAMES, DOWN_NAMES, GATE_NAMES, K_NAMES, MLP_NAMES, O_NAMES, Q_NAMES, QKV_NAMES, UP_NAMES, V_NAMES, child,
    decoder_stack, head_counts, intermediate_size, named,
)
from lstm_inspect.recurrence import cell_kind, parse_tensor_name

if TYPE_CHECKING:
    from torch import nn

    from lstm_inspect.source import LoadedModel

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
class MixerDetail:
    """A recurrent or state-space block inside a decoder layer (Mamba/Mamba2 mixer, RWKV time mixing, xLSTM's
    mLSTM layer, RecurrentGemma's RG-LRU block): what mixes along the sequence instead of softmax attention."""

    type: str                     # the module's class name
    kind: str                     # selective_scan | ssd | wkv | mlstm | slstm | rg_lru | recurrent
    total: int
    state_size: int | None        # the SSM state per channel (Mamba/Mamba2 ``state_size``), where the model has one
    num_heads: int | None         # Mamba2 / mLSTM heads
    conv_kernel: int | None       # the short causal convolution's width
    inner_size: int | None        # the width the scan runs at (Mamba's ``expand·hidden``, RG-LRU's ``lru_width``)


@dataclass(frozen=True)
class DecoderLayer:
    layer_idx: int
    path: str
    total: int
    attention: AttentionDetail | None
    mlp: MlpDetail | None
    norm: int
    is_zero_layer: bool
    mixer: MixerDetail | None = None   # a recurrent/SSM block (then ``attention`` is None unless it has both)


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
    stack = decoder_stack(module)
    # The config's own numbers, less those measured below from the modules (which a pruned model changes).
    hyper = {k: v for k, v in (loaded.description.get("config") or {}).items()
             if k not in ("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size")}
    if stack is not None:
        path, blocks = stack
        config = getattr(module, "config", None)
        layers = tuple(decoder_layer(i, f"{path}.{i}", block, config) for i, block in enumerate(blocks))
        hyper.update(_uniform_or_list("num_layers", [len(layers)]))
        hyper.update(_uniform_or_list("num_heads", [l.attention.num_heads for l in layers if l.attention]))
        hyper.update(_uniform_or_list("num_kv_heads", [l.attention.num_kv_heads for l in layers if l.attention]))
        hyper.update(_uniform_or_list("intermediate_size", [l.mlp.intermediate_size for l in layers if l.mlp]))
        mixers = [l.mixer for l in layers if l.mixer]
        if mixers:
            hyper.update(_uniform_or_list("mixer", [m.kind for m in mixers]))
            hyper.update(_uniform_or_list("state_size", [m.state_size for m in mixers]))
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


def _params(module: "nn.Module | None") -> int | None:
    return None if module is None else int(sum(p.numel() for p in module.parameters()))


def decoder_layer(index: int, path: str, block: "nn.Module", config: Any) -> DecoderLayer:
    from lstm_inspect.analyses.classify import RECURRENT_BLOCK

    def is_norm(name: str, sub: "nn.Module") -> bool:
        return "norm" in type(sub).__name__.lower() or name.lower().startswith(("ln", "norm"))

    mixer_module = next((sub for name, sub in block.named_children()
                         if not is_norm(name, sub) and RECURRENT_BLOCK.search(type(sub).__name__)), None)
    attention_module = child(block, ATTENTION_NAMES)
    if attention_module is None:   # RecurrentGemma's ``temporal_block`` is attention in some layers
        attention_module = next((sub for _n, sub in block.named_children()
                                 if "attention" in type(sub).__name__.lower()), None)
    if attention_module is not None and attention_module is mixer_module:   # RWKV's "attention" is its WKV recurrence
        attention_module = None
    # not a norm named after the MLP it precedes (xLSTM's ``norm_ffn``)
    mlp_module = next((sub for name, sub in block.named_children()
                       if not is_norm(name, sub) and any(n in name.lower() for n in MLP_NAMES)), None)
    attention = _attention(attention_module, config) if attention_module is not None else None
    mlp = _mlp(mlp_module) if mlp_module is not None else None
    mixer = _mixer(mixer_module, config) if mixer_module is not None else None
    norm = sum(_params(sub) or 0 for name, sub in block.named_children() if is_norm(name, sub))
    total = _params(block) or 0
    return DecoderLayer(index, path, total, attention, mlp, int(norm), is_zero_layer=total == norm, mixer=mixer)


#: (class-name pattern, kind) of the recurrent/SSM blocks, most specific first.
_MIXER_KINDS = (("mamba2", "ssd"), ("mamba", "selective_scan"), ("rwkv", "wkv"), ("mlstm|xlstmlayer", "mlstm"),
                ("slstm", "slstm"), ("rglru|recurrentgemmarecurrent", "rg_lru"))


def _mixer(mixer: "nn.Module", config: Any) -> MixerDetail:
    import re

    name = type(mixer).__name__
    kind = next((k for pattern, k in _MIXER_KINDS if re.search(pattern, name, re.I)), "recurrent")

    def first_int(names: tuple[str, ...], objects: tuple[Any, ...]) -> int | None:
        for obj in objects:
            for attr in names:
                value = getattr(obj, attr, None) if obj is not None else None
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
        return None

    # the module's own attributes first (they are what runs), then the config's
    objects = (mixer, config)
    state = first_int(("ssm_state_size", "state_size"), objects)
    heads = first_int(("num_heads",), objects) if kind in ("ssd", "mlstm", "slstm") else None
    conv = first_int(("conv_kernel_size", "conv_kernel", "conv1d_width"), objects) if kind in (
        "selective_scan", "ssd", "rg_lru") else None
    inner = first_int(("intermediate_size", "lru_width"), objects) if kind in (
        "selective_scan", "ssd", "rg_lru") else None
    return MixerDetail(name, kind, _params(mixer) or 0, state, heads, conv, inner)


def _attention(attn: "nn.Module", config: Any) -> AttentionDetail:
    q, k, v = named(attn, Q_NAMES), named(attn, K_NAMES), named(attn, V_NAMES)
    o, qkv = named(attn, O_NAMES), named(attn, QKV_NAMES)
    heads, kv_heads = head_counts(attn, config)
    return AttentionDetail(type(attn).__name__, _params(attn) or 0, _params(q), _params(k), _params(v), _params(o),
                           _params(qkv), heads, kv_heads)


def _mlp(mlp: "nn.Module") -> MlpDetail:
    gate, up, down = named(mlp, GATE_NAMES), named(mlp, UP_NAMES), named(mlp, DOWN_NAMES)
    return MlpDetail(type(mlp).__name__, _params(mlp) or 0, _params(gate), _params(up), _params(down),
                     intermediate_size(mlp))


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
