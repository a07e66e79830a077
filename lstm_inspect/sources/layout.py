"""A recurrent model read back from a state_dict's names and shapes, whatever its modules are called.

The weights' shapes are the truth about a checkpoint. From them:

* a **recurrent module** is any prefix holding PyTorch's recurrent tensor names
  (:mod:`lstm_inspect.recurrence`): its cell from the gate rows (``weight_hh`` rows / H: 4 LSTM, 3 GRU,
  1 RNN, H = ``weight_hr``'s columns with a projection), its layers from ``_l{k}``, bidirectional from
  ``_reverse``; single-layer modules in a ModuleList (``lstms.0``, ``lstms.1``) are chained in index
  order, each with its own widths;
* the **embedding** is a lone ``X.weight [V, E]`` with E = the first recurrent input width; no
  embedding means the model reads float features ``[.., input_size]`` (source document 001);
* the **head** is ``X.weight [O, D·H_r]`` (plus ``X.bias [O]``) on the last recurrent output; a head
  whose O is the embedding's vocabulary runs at every time step (a language model), any other (a
  regression or classification head) on the last step, as source document 001's ``linear(out[-1])``;
* **tied weights**: names that share one storage (``torch.save``), a name safetensors dropped and
  recorded in its metadata, or a head bias whose weight is missing.

What is not recognised is listed, never dropped: :attr:`Layout.problems` says why the pieces do not make
one runnable model, and the parameters are still counted from the shapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from lstm_inspect.recurrence import CELL_OF_GATES, GATES, parse_tensor_name
from lstm_inspect.errors import InvalidInput
from lstm_inspect.sources.checkpoint import TensorInfo
from lstm_inspect.spec import ModelSpec

EVERY_STEP = "every step"
LAST_STEP = "last step"
_EMBEDDING_HINTS = ("embed", "encoder", "emb", "wte", "tok", "lookup")
_HEAD_HINTS = ("proj", "decoder", "head", "fc", "linear", "out", "classifier", "output", "dense")


@dataclass(frozen=True)
class LayerShape:
    """One recurrent layer (every direction has the same shapes)."""

    input_size: int
    hidden_size: int
    proj_size: int = 0   # 0: no projection (state width = hidden)

    @property
    def state_size(self) -> int:
        return self.proj_size or self.hidden_size


@dataclass(frozen=True)
class RecurrentBlock:
    """One recurrent module of the checkpoint (``lstm``, ``lstms.1``, ``rnns.0.module``)."""

    path: str
    cell: str
    bidirectional: bool
    bias: bool
    layers: tuple[LayerShape, ...]
    raw: tuple[str, ...] = ()   # leaf names stored with the weight-drop spelling (``weight_hh_l0`` for ``..._raw``)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    @property
    def output_size(self) -> int:
        return self.layers[-1].state_size * self.num_directions

    @property
    def uniform(self) -> bool:
        """One ``nn.LSTM``/``GRU``/``RNN`` can hold it (every layer the same widths)."""
        first = self.layers[0]
        return all(l.hidden_size == first.hidden_size and l.proj_size == first.proj_size for l in self.layers)


@dataclass(frozen=True)
class LinearShape:
    path: str
    in_features: int
    out_features: int
    bias: bool


@dataclass(frozen=True)
class EmbeddingShape:
    path: str
    num_embeddings: int
    embedding_dim: int


@dataclass(frozen=True)
class Layout:
    """What a state_dict holds, as far as its shapes tell."""

    blocks: tuple[RecurrentBlock, ...]
    embedding: EmbeddingShape | None
    head: LinearShape | None
    tied: bool                      # the head's weight is the embedding's tensor
    head_on: str                    # EVERY_STEP or LAST_STEP
    unrecognised: tuple[str, ...]   # tensors outside the embedding, the recurrent modules and the head
    problems: tuple[str, ...]       # why the recognised pieces do not make one model (empty: they do)
    aliases: tuple[tuple[str, str], ...] = ()   # (name, the name whose tensor it shares)

    @property
    def runnable(self) -> bool:
        return bool(self.blocks) and not self.problems and not self.unrecognised

    def recognised(self) -> str:
        """One line: what was recognised (for messages)."""
        parts = []
        if self.embedding:
            e = self.embedding
            parts.append(f"embedding {e.path} [{e.num_embeddings}, {e.embedding_dim}]")
        for b in self.blocks:
            widths = sorted({l.hidden_size for l in b.layers})
            parts.append(f"{b.cell.upper()} {b.path or '(root)'} ({len(b.layers)} layer(s), hidden "
                         f"{'/'.join(map(str, widths))}{', bidirectional' if b.bidirectional else ''})")
        if self.head:
            parts.append(f"head {self.head.path} [{self.head.out_features}, {self.head.in_features}]"
                         + (" tied to the embedding" if self.tied else ""))
        return "; ".join(parts) if parts else "no embedding, recurrent module or head"


def read_layout(infos: Mapping[str, TensorInfo]) -> Layout:
    """Recognise the pieces of ``infos`` (never raises: what does not fit is listed)."""
    aliases = _aliases(infos)
    names = list(infos)
    problems: list[str] = []
    by_prefix: dict[str, dict[tuple[int, bool], dict[str, tuple[int, ...]]]] = {}
    raw: dict[str, set[str]] = {}
    rest: list[str] = []
    for name in names:
        parsed = parse_tensor_name(name)
        if parsed is None:
            rest.append(name)
            continue
        if name in aliases:   # a recurrent tensor shared with another: counted once, under the first name
            continue
        by_prefix.setdefault(parsed.prefix, {}).setdefault((parsed.layer, parsed.reverse), {})[parsed.kind] = \
            infos[name].shape
        if parsed.raw:
            raw.setdefault(parsed.prefix, set()).add(parsed.leaf)
    blocks: list[RecurrentBlock] = []
    unrecognised: list[str] = []
    for prefix in sorted(by_prefix, key=_natural):
        try:
            blocks.append(_block(prefix, by_prefix[prefix], tuple(sorted(raw.get(prefix, ())))))
        except ValueError as exc:
            problems.append(str(exc))
            unrecognised.extend(n for n in names if (parse_tensor_name(n) or _NOPE).prefix == prefix)
    for before, after in zip(blocks, blocks[1:]):
        if after.input_size != before.output_size:
            problems.append(f"recurrent modules {before.path} (output {before.output_size} wide) and {after.path} "
                            f"(input {after.input_size} wide) do not chain")
    if not blocks and not problems:
        problems.append("no recurrent module (no weight_ih_l0/weight_hh_l0 tensors)")
    owners = _owners(rest, infos)
    embedding = _embedding(owners, blocks[0].input_size) if blocks else None
    head, tied = _head(owners, infos, aliases, blocks[-1].output_size if blocks else None, embedding)
    used = set()
    if embedding:
        used.add(f"{embedding.path}.weight")
    if head:
        used.update({f"{head.path}.weight", f"{head.path}.bias"})
    unrecognised.extend(n for n in rest if n not in used and n not in aliases)
    if unrecognised:
        problems.append(f"{len(unrecognised)} tensor(s) outside the embedding, the recurrent modules and the head: "
                        + ", ".join(f"{n} {list(infos[n].shape)}" for n in unrecognised[:4])
                        + (", ..." if len(unrecognised) > 4 else ""))
    head_on = EVERY_STEP if head is None or (embedding is not None and head.out_features == embedding.num_embeddings) \
        else LAST_STEP
    return Layout(tuple(blocks), embedding, head, tied, head_on, tuple(unrecognised), tuple(problems),
                  tuple(sorted(aliases.items())))


def builtin_spec(layout: Layout, *, batch_first: bool = True, dropout: float = 0.0) -> ModelSpec | None:
    """The built-in spec when ``layout`` is exactly the built-in model's state_dict, names included
    (``embed``, ``lstm``/``gru``/``rnn``, ``proj``: source document 000's model); else None."""
    if not layout.runnable or len(layout.blocks) != 1 or layout.embedding is None or layout.head is None:
        return None
    block, embed, head = layout.blocks[0], layout.embedding, layout.head
    if (block.path, embed.path, head.path) != (block.cell, "embed", "proj") or not block.uniform or block.raw \
            or head.bias != block.bias or head.out_features != embed.num_embeddings or layout.head_on != EVERY_STEP:
        return None
    if any(not (layout.tied and {a, b} == {"embed.weight", "proj.weight"}) for a, b in layout.aliases):
        return None
    first = block.layers[0]
    try:
        return ModelSpec(cell=block.cell, vocab_size=embed.num_embeddings, embed_dim=embed.embedding_dim,
                         hidden_dim=first.hidden_size, num_layers=len(block.layers), bidirectional=block.bidirectional,
                         proj_size=first.proj_size, bias=block.bias,
                         dropout=dropout if len(block.layers) > 1 else 0.0, batch_first=batch_first,
                         tie_weights=layout.tied)
    except InvalidInput:
        return None


class _Nope:
    prefix = None


_NOPE = _Nope()


def _natural(path: str) -> list:
    """``lstms.10`` after ``lstms.2``: digits compare as numbers."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.]", path)]


def _aliases(infos: Mapping[str, TensorInfo]) -> dict[str, str]:
    """name -> the first name (in file order) of the same tensor."""
    first: dict[object, str] = {}
    out: dict[str, str] = {}
    for name, info in infos.items():
        if info.storage is None:
            continue
        key = (info.storage, info.shape)
        if key in first:
            out[name] = first[key]
        else:
            first[key] = name
    return out


def _block(prefix: str, layers: dict[tuple[int, bool], dict[str, tuple[int, ...]]], raw: tuple[str, ...]) -> RecurrentBlock:
    where = prefix or "the root module"
    ids = sorted({layer for layer, _ in layers})
    if ids != list(range(len(ids))):
        raise ValueError(f"{where}: recurrent layers should be numbered 0..{len(ids) - 1}, found {ids}")
    bidirectional = any(reverse for _, reverse in layers)
    shapes: list[LayerShape] = []
    cells: set[str] = set()
    biases: set[bool] = set()
    for layer in ids:
        forward = layers.get((layer, False))
        if forward is None:
            raise ValueError(f"{where}: layer {layer} has reverse tensors but no forward ones")
        if bidirectional and layers.get((layer, True)) != forward:
            raise ValueError(f"{where}: layer {layer}'s reverse tensors differ from its forward ones")
        shape, cell, bias = _layer(where, layer, forward)
        if shapes and shape.input_size != shapes[-1].state_size * (2 if bidirectional else 1):
            raise ValueError(f"{where}: layer {layer} takes inputs {shape.input_size} wide, but layer {layer - 1} "
                             f"outputs {shapes[-1].state_size * (2 if bidirectional else 1)}")
        shapes.append(shape)
        cells.add(cell)
        biases.add(bias)
    if len(cells) > 1:
        raise ValueError(f"{where}: the layers mix cell types ({', '.join(sorted(cells))})")
    if len(biases) > 1:
        raise ValueError(f"{where}: some layers have bias vectors and others do not")
    return RecurrentBlock(prefix, cells.pop(), bidirectional, biases.pop(), tuple(shapes), raw)


def _layer(where: str, layer: int, shapes: dict[str, tuple[int, ...]]) -> tuple[LayerShape, str, bool]:
    for kind in ("weight_ih", "weight_hh"):
        if kind not in shapes or len(shapes[kind]) != 2:
            raise ValueError(f"{where}: {kind}_l{layer} is missing or not a matrix")
    rows, state = shapes["weight_hh"]
    if "weight_hr" in shapes:
        hr = shapes["weight_hr"]
        if len(hr) != 2 or hr[0] != state:
            raise ValueError(f"{where}: weight_hr_l{layer} {list(hr)} does not match weight_hh_l{layer} {[rows, state]}")
        hidden, proj = hr[1], hr[0]
    else:
        hidden, proj = state, 0
    if hidden == 0 or rows % hidden:
        raise ValueError(f"{where}: weight_hh_l{layer} has {rows} rows, not a whole number of gates of width {hidden}")
    cell = CELL_OF_GATES.get(rows // hidden)
    if cell is None or (proj and cell != "lstm"):
        raise ValueError(f"{where}: layer {layer} has {rows // hidden} gates of width {hidden}: not an LSTM (4), "
                         "GRU (3) or RNN (1)")
    if shapes["weight_ih"][0] != rows:
        raise ValueError(f"{where}: weight_ih_l{layer} has {shapes['weight_ih'][0]} rows, weight_hh_l{layer} {rows}")
    has_ih, has_hh = "bias_ih" in shapes, "bias_hh" in shapes
    if has_ih != has_hh:
        raise ValueError(f"{where}: layer {layer} has only one of bias_ih/bias_hh")
    if has_ih and (shapes["bias_ih"] != (rows,) or shapes["bias_hh"] != (rows,)):
        raise ValueError(f"{where}: layer {layer}'s biases should be [{rows}]")
    assert GATES[cell] * hidden == rows
    return LayerShape(shapes["weight_ih"][1], hidden, proj), cell, has_ih


def _owners(names: list[str], infos: Mapping[str, TensorInfo]) -> dict[str, dict[str, tuple[int, ...]]]:
    """Module path -> {leaf name: shape} for the tensors that are not recurrent."""
    owners: dict[str, dict[str, tuple[int, ...]]] = {}
    for name in names:
        path, _, leaf = name.rpartition(".")
        owners.setdefault(path, {})[leaf] = infos[name].shape
    return owners


def _hinted(candidates: list[str], hints: tuple[str, ...]) -> list[str]:
    preferred = [c for c in candidates if any(h in c.rsplit(".", 1)[-1].lower() for h in hints)]
    return preferred or candidates


def _embedding(owners: dict[str, dict[str, tuple[int, ...]]], width: int) -> EmbeddingShape | None:
    candidates = [p for p, leaves in owners.items()
                  if set(leaves) == {"weight"} and len(leaves["weight"]) == 2 and leaves["weight"][1] == width]
    candidates = _hinted(candidates, _EMBEDDING_HINTS)
    if len(candidates) != 1:
        return None
    rows, cols = owners[candidates[0]]["weight"]
    return EmbeddingShape(candidates[0], rows, cols)


def _head(owners: dict[str, dict[str, tuple[int, ...]]], infos: Mapping[str, TensorInfo], aliases: dict[str, str],
          width: int | None, embedding: EmbeddingShape | None) -> tuple[LinearShape | None, bool]:
    if width is None:
        return None, False
    embed_name = f"{embedding.path}.weight" if embedding else None
    candidates = []
    for path, leaves in owners.items():
        if path == (embedding.path if embedding else None) or "weight" not in leaves:
            continue
        weight, bias = leaves["weight"], leaves.get("bias")
        if set(leaves) <= {"weight", "bias"} and len(weight) == 2 and weight[1] == width \
                and (bias is None or bias == (weight[0],)):
            candidates.append(path)
    candidates = _hinted(candidates, _HEAD_HINTS)
    if len(candidates) == 1:
        path = candidates[0]
        weight = owners[path]["weight"]
        name = f"{path}.weight"
        tied = embed_name is not None and (aliases.get(name) == embed_name or aliases.get(embed_name) == name)
        return LinearShape(path, weight[1], weight[0], "bias" in owners[path]), tied
    # A head whose weight is the embedding's tensor, dropped by a writer that keeps one name per shared
    # tensor (safetensors without its metadata), leaving only the head's bias.
    if embedding is not None and embedding.embedding_dim == width:
        lone = [p for p, leaves in owners.items() if set(leaves) == {"bias"} and leaves["bias"] == (embedding.num_embeddings,)]
        if len(lone) == 1:
            return LinearShape(lone[0], width, embedding.num_embeddings, True), True
    return None, False
