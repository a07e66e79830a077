"""The built-in model's architecture, read back from a state_dict's tensor names and shapes.

A state_dict of :class:`~lstm_inspect.model.RecurrentLanguageModel` has ``embed.weight [V, E]``,
``rnn.weight_ih_l{k}[_reverse] [G·H, I]``, ``rnn.weight_hh_l{k} [G·H, H_r]``, optional
``rnn.bias_ih_l{k}``/``rnn.bias_hh_l{k} [G·H]`` and ``rnn.weight_hr_l{k} [H_r, H]`` (LSTM
``proj_size``), ``proj.weight [V, D·H_r]`` and optional ``proj.bias [V]``. From those:

* G (hence the cell) = rows of ``weight_hh`` / H, where H = ``weight_hr``'s columns when there
  is a projection and ``weight_hh``'s columns otherwise: 4 LSTM, 3 GRU, 1 RNN;
* layers = the ``_l{k}`` indices, bidirectional = ``_reverse`` tensors present;
* tied weights = ``proj.weight`` absent (``safetensors`` drops shared tensors) or sharing the
  embedding's storage (``torch.save`` keeps ties).

Layers of different widths (a pruned checkpoint) give a :class:`StackSpec` that is not uniform;
the stack model in :mod:`lstm_inspect.sources.pruned` builds it. The pruned model's own names
(``rnn.{k}.weight_ih_l0``) are read as well, so its state_dict round-trips.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from lstm_inspect.errors import AnalysisFailed, InvalidInput
from lstm_inspect.sources.checkpoint import TensorInfo
from lstm_inspect.spec import ModelSpec

CELL_OF_GATES = {4: "lstm", 3: "gru", 1: "rnn"}
_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
_BUILTIN_NAME = re.compile(r"^rnn\.(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")
_STACK_NAME = re.compile(r"^rnn\.(\d+)\.(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l0(_reverse)?$")


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
class StackSpec:
    """Embedding -> recurrent layers (each its own widths) -> Linear: a possibly pruned built-in model."""

    cell: str
    vocab_size: int
    embed_dim: int
    bidirectional: bool
    bias: bool             # the recurrent layers' biases
    proj_bias: bool        # the projection's bias
    tie_weights: bool
    layers: tuple[LayerShape, ...]

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_dim(self) -> int:
        return self.layers[-1].state_size * self.num_directions

    def uniform_spec(self, *, batch_first: bool = True, dropout: float = 0.0) -> ModelSpec | None:
        """The equivalent :class:`ModelSpec` when every layer has the same widths, else None."""
        first = self.layers[0]
        if self.bias != self.proj_bias:
            return None
        if any(l.hidden_size != first.hidden_size or l.proj_size != first.proj_size for l in self.layers):
            return None
        try:
            return ModelSpec(cell=self.cell, vocab_size=self.vocab_size, embed_dim=self.embed_dim,
                             hidden_dim=first.hidden_size, num_layers=len(self.layers),
                             bidirectional=self.bidirectional, proj_size=first.proj_size, bias=self.bias,
                             dropout=dropout if len(self.layers) > 1 else 0.0, batch_first=batch_first,
                             tie_weights=self.tie_weights)
        except InvalidInput:
            return None


def infer_stack(infos: Mapping[str, TensorInfo], origin: str = "the checkpoint") -> StackSpec:
    """The architecture that produced ``infos`` (exit 3 with what was found when it is not this family)."""
    names = set(infos)
    per_layer: dict[tuple[int, bool], dict[str, tuple[int, ...]]] = {}
    unknown: list[str] = []
    for name, info in infos.items():
        match = _BUILTIN_NAME.match(name)
        if match:
            kind, layer, reverse = match.group(1), int(match.group(2)), bool(match.group(3))
        else:
            match = _STACK_NAME.match(name)
            if match:
                kind, layer, reverse = match.group(2), int(match.group(1)), bool(match.group(3))
            elif name in ("embed.weight", "proj.weight", "proj.bias"):
                continue
            else:
                unknown.append(name)
                continue
        per_layer.setdefault((layer, reverse), {})[kind] = info.shape
    if "embed.weight" not in names or not per_layer or unknown:
        raise AnalysisFailed(_not_this_family(infos, origin, unknown))

    def fail(message: str) -> AnalysisFailed:
        return AnalysisFailed(f"{origin}: {message}")

    embed = infos["embed.weight"].shape
    if len(embed) != 2:
        raise fail(f"embed.weight should be [V, E], found {list(embed)}")
    vocab, embed_dim = embed
    layer_ids = sorted({layer for layer, _ in per_layer})
    if layer_ids != list(range(len(layer_ids))):
        raise fail(f"recurrent layers should be numbered 0..{len(layer_ids) - 1}, found {layer_ids}")
    bidirectional = any(reverse for _, reverse in per_layer)
    cells: set[str] = set()
    biases: set[bool] = set()
    layers: list[LayerShape] = []
    for layer in layer_ids:
        shapes = per_layer.get((layer, False))
        if shapes is None:
            raise fail(f"recurrent layer {layer} has reverse tensors but no forward ones")
        if bidirectional and per_layer.get((layer, True)) != shapes:
            raise fail(f"recurrent layer {layer}: the reverse direction's tensors differ from the forward ones "
                       f"({per_layer.get((layer, True))} vs {shapes})")
        shape, cell, has_bias = _layer_shape(layer, shapes, fail)
        expected_input = embed_dim if layer == 0 else layers[-1].state_size * (2 if bidirectional else 1)
        if shape.input_size != expected_input:
            what = "the embedding width E" if layer == 0 else f"layer {layer - 1}'s output width"
            raise fail(f"recurrent layer {layer} takes inputs {shape.input_size} wide, but {what} is {expected_input}")
        cells.add(cell)
        biases.add(has_bias)
        layers.append(shape)
    if len(cells) > 1:
        raise fail(f"the recurrent layers mix cell types ({', '.join(sorted(cells))})")
    if len(biases) > 1:
        raise fail("some recurrent layers have bias vectors and others do not")
    output_dim = layers[-1].state_size * (2 if bidirectional else 1)
    tie, proj_bias = _projection(infos, vocab, embed_dim, output_dim, fail)
    return StackSpec(cell=cells.pop(), vocab_size=vocab, embed_dim=embed_dim, bidirectional=bidirectional,
                     bias=biases.pop(), proj_bias=proj_bias, tie_weights=tie, layers=tuple(layers))


def _layer_shape(layer: int, shapes: dict[str, tuple[int, ...]], fail) -> tuple[LayerShape, str, bool]:
    for kind in ("weight_ih", "weight_hh"):
        if kind not in shapes or len(shapes[kind]) != 2:
            raise fail(f"recurrent layer {layer}: {kind}_l{layer} is missing or not a matrix")
    rows, state = shapes["weight_hh"]
    if "weight_hr" in shapes:
        hr = shapes["weight_hr"]
        if len(hr) != 2 or hr[0] != state:
            raise fail(f"recurrent layer {layer}: weight_hr {list(hr)} does not match weight_hh {[rows, state]}")
        hidden, proj = hr[1], hr[0]
    else:
        hidden, proj = state, 0
    if hidden == 0 or rows % hidden:
        raise fail(f"recurrent layer {layer}: weight_hh rows {rows} are not a whole number of gates of width {hidden}")
    gates = rows // hidden
    cell = CELL_OF_GATES.get(gates)
    if cell is None or (proj and cell != "lstm"):
        raise fail(f"recurrent layer {layer}: {gates} gates of width {hidden} is not an LSTM (4), GRU (3) or RNN (1)")
    if shapes["weight_ih"][0] != rows:
        raise fail(f"recurrent layer {layer}: weight_ih has {shapes['weight_ih'][0]} rows, weight_hh {rows}")
    has_ih, has_hh = "bias_ih" in shapes, "bias_hh" in shapes
    if has_ih != has_hh:
        raise fail(f"recurrent layer {layer}: only one of bias_ih/bias_hh is present")
    if has_ih and (shapes["bias_ih"] != (rows,) or shapes["bias_hh"] != (rows,)):
        raise fail(f"recurrent layer {layer}: biases should be [{rows}]")
    return LayerShape(shapes["weight_ih"][1], hidden, proj), cell, has_ih


def _projection(infos: Mapping[str, TensorInfo], vocab: int, embed_dim: int, output_dim: int, fail) -> tuple[bool, bool]:
    weight = infos.get("proj.weight")
    bias = infos.get("proj.bias")
    if bias is not None and bias.shape != (vocab,):
        raise fail(f"proj.bias should be [{vocab}], found {list(bias.shape)}")
    if weight is None:
        # safetensors keeps one name per shared tensor: a missing projection is the tied embedding.
        if output_dim != embed_dim:
            raise fail(f"proj.weight is missing and cannot be tied to the embedding (output width {output_dim} != E {embed_dim})")
        return True, bias is not None
    if weight.shape != (vocab, output_dim):
        raise fail(f"proj.weight should be [V={vocab}, {output_dim}], found {list(weight.shape)}")
    embed = infos["embed.weight"]
    tied = weight.storage is not None and weight.storage == embed.storage and weight.shape == embed.shape
    return tied, bias is not None


def _not_this_family(infos: Mapping[str, TensorInfo], origin: str, unknown: list[str]) -> str:
    sample = ", ".join(f"{name} {list(info.shape)}" for name, info in list(infos.items())[:4])
    hint = ""
    if any(".layers." in n or n.startswith(("transformer.h.", "model.layers.")) for n in infos):
        hint = " It looks like a transformers checkpoint: give its config.json (--model path/to/config.json)."
    elif unknown:
        hint = f" Unexpected tensors: {', '.join(unknown[:3])}{'...' if len(unknown) > 3 else ''}."
    return (f"{origin} is not a state_dict of the built-in model family (embed -> rnn -> proj): found {len(infos)} "
            f"tensor(s), e.g. {sample}; expected embed.weight, rnn.weight_ih_l0, rnn.weight_hh_l0, ..., proj.weight."
            f"{hint} For another architecture use --model package.module:factory.")
