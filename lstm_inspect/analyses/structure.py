"""The module tree with hyperparameters, parameter counts and traced output shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lstm_inspect.analyses.layers import output_head
from lstm_inspect.analyses.params import tensor_rows
from lstm_inspect.recurrence import GATE_ORDER, GATES, cell_kind, parse_tensor_name
from lstm_inspect.reporting import Rendered

if TYPE_CHECKING:
    from lstm_inspect.source import LoadedModel

_SYMBOLIC = {
    "weight_ih": "G·H, I",
    "weight_hh": "G·H, H_r",
    "bias_ih": "G·H",
    "bias_hh": "G·H",
    "weight_hr": "H_r, H",
}


@dataclass(frozen=True)
class RecurrentTensor:
    name: str
    shape: tuple[int, ...]
    symbolic: str


@dataclass(frozen=True)
class RecurrentLayer:
    layer: int
    direction: str   # "forward" | "reverse"
    input_size: int
    tensors: tuple[RecurrentTensor, ...]


@dataclass(frozen=True)
class RecurrentDetail:
    cell: str
    gate_order: str
    gates: int
    layers: tuple[RecurrentLayer, ...]
    state_shapes: dict[str, list[int]]   # h_n (and c_n for LSTM), as traced


@dataclass(frozen=True)
class StructureNode:
    name: str
    path: str
    kind: str
    extra: str                 # the module's own extra_repr(): its key hyperparameters
    params: int                # unique parameters in this subtree
    output_shape: Any
    children: tuple["StructureNode", ...]
    recurrent: RecurrentDetail | None = None


@dataclass(frozen=True)
class StructureReport(Rendered):
    model: dict[str, Any]
    batch: int
    seq: int
    input_shape: list[int]
    root: StructureNode
    explanations: tuple[tuple[str, str], ...]   # (component, what it does)
    notes: tuple[str, ...] = ()


def describe_structure(loaded: "LoadedModel", batch: int = 1, seq: int = 32) -> StructureReport:
    """Walk the module tree; output shapes come from a fake forward on ``batch × seq`` token ids."""
    from lstm_inspect.building import is_size_overflow, too_large
    from lstm_inspect.errors import AnalysisFailed
    from lstm_inspect.sources.stand_ins import forward_unavailable
    from lstm_inspect.tracing import output_shapes

    notes = list(loaded.notes)
    blocked = forward_unavailable(loaded.module)
    if blocked is not None:   # the tree and counts come from the shapes alone
        shapes: dict[str, Any] = {}
        notes.append(f"no output shapes: {blocked}")
    else:
        try:
            shapes = output_shapes(loaded, batch, seq)
        except AnalysisFailed as exc:
            if is_size_overflow(exc):
                raise too_large(f"batch {batch} × seq {seq}", exc, ("batch", "seq")) from None
            raise
    owner_of = {row.name: row.count for row in tensor_rows(loaded.module)}
    root = _node(loaded.module, "", "", shapes, owner_of)
    input_shape = [batch, seq] if (loaded.spec is None or loaded.spec.batch_first) else [seq, batch]
    return StructureReport(
        model=loaded.description,
        batch=batch,
        seq=seq,
        input_shape=input_shape,
        root=root,
        explanations=tuple(_explanations(loaded, batch, seq)),
        notes=tuple(notes),
    )


def _node(module, name: str, path: str, shapes: dict[str, Any], counts: dict[str, int]) -> StructureNode:
    prefix = f"{path}." if path else ""
    params = sum(c for n, c in counts.items() if n.startswith(prefix) or not path)
    children = tuple(
        _node(child, child_name, f"{prefix}{child_name}", shapes, counts)
        for child_name, child in module.named_children()
    )
    return StructureNode(
        name=name,
        path=path,
        kind=type(module).__name__,
        extra=module.extra_repr(),
        params=params,
        output_shape=shapes.get(path),
        children=children,
        recurrent=_recurrent_detail(module, shapes.get(path)),
    )


def _recurrent_detail(module, traced: Any) -> RecurrentDetail | None:
    from torch import nn

    if not isinstance(module, nn.RNNBase):
        return None
    cell = cell_kind(module)
    layers: dict[tuple[int, str], list[RecurrentTensor]] = {}
    for pname, param in module.named_parameters(recurse=False):
        parsed = parse_tensor_name(pname)
        if parsed is None:
            continue
        key = (parsed.layer, "reverse" if parsed.reverse else "forward")
        layers.setdefault(key, []).append(RecurrentTensor(pname, tuple(param.shape), _SYMBOLIC[parsed.kind]))
    state_dim = module.proj_size or module.hidden_size
    directions = 2 if module.bidirectional else 1
    state_shapes: dict[str, list[int]] = {}
    if isinstance(traced, list) and len(traced) == 2:
        state = traced[1]
        if cell == "lstm" and isinstance(state, list) and len(state) == 2:
            state_shapes = {"h_n": state[0], "c_n": state[1]}
        elif isinstance(state, list) and state and isinstance(state[0], int):
            state_shapes = {"h_n": state}
    return RecurrentDetail(
        cell=cell,
        gate_order=GATE_ORDER[cell],
        gates=GATES[cell],
        layers=tuple(
            RecurrentLayer(layer, direction, module.input_size if layer == 0 else state_dim * directions, tuple(tensors))
            for (layer, direction), tensors in sorted(layers.items())
        ),
        state_shapes=state_shapes,
    )


def _explanations(loaded: "LoadedModel", batch: int, seq: int) -> list[tuple[str, str]]:
    """What source document 000 prints under "main components", for the modules this model has."""
    from torch import nn

    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for _name, module in loaded.module.named_modules():
        kind = type(module).__name__
        if kind in seen:
            continue
        if isinstance(module, nn.Embedding):
            out.append((f"nn.{kind}", f"maps each token id to a learned vector of {module.embedding_dim} numbers "
                        f"(a table of {module.num_embeddings:,} rows): ids [B, T] -> [B, T, {module.embedding_dim}]."))
        elif isinstance(module, nn.RNNBase):
            width = (module.proj_size or module.hidden_size) * (2 if module.bidirectional else 1)
            layout = "[B, T, features] (batch_first=True)" if module.batch_first else "[T, B, features] (batch_first=False)"
            text = (f"a stack of {module.num_layers} {module.mode} layer(s) read the sequence step by step, carrying a "
                    f"hidden state of {module.hidden_size} numbers; input and output are laid out {layout}. "
                    f"Its output is {width} wide per time step")
            text += (" because bidirectional=True runs a second pass backwards and concatenates both." if module.bidirectional
                     else ".")
            if module.proj_size:
                text += f" proj_size={module.proj_size} projects h down before it is fed back and output."
            out.append((f"nn.{kind}", text))
        elif isinstance(module, nn.Linear) and module is output_head(loaded.module):
            out.append((f"nn.{kind}", f"maps each {module.in_features}-wide output back to {module.out_features:,} "
                        "vocabulary logits (the softmax is applied in the loss)."))
        else:
            continue
        seen.add(kind)
    if loaded.spec is not None:
        out.append(("parameters", "embed_dim is the embedding width, hidden_dim the recurrent state width, "
                    "num_layers how many recurrent layers are stacked; bidirectional=True doubles the "
                    "recurrent output width (and the recurrent parameters)."))
    return out
