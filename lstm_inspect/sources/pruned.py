"""A built-in-family model whose recurrent layers have their own widths (a pruned checkpoint).

``nn.LSTM`` has one hidden size for all its layers, so each layer is its own single-layer module in
``rnn`` (an ``nn.ModuleList``). Tensor names map one to one: the checkpoint's
``rnn.weight_ih_l{k}[_reverse]`` is this model's ``rnn.{k}.weight_ih_l0[_reverse]``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from lstm_inspect.sources.infer import StackSpec

_CELL_CLASSES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
_BUILTIN_NAME = re.compile(r"^rnn\.(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


class PrunedRecurrentLanguageModel(nn.Module):
    """Embedding -> one recurrent module per layer (own widths) -> Linear to the vocabulary."""

    def __init__(self, stack: StackSpec, *, batch_first: bool = True) -> None:
        super().__init__()
        self.stack = stack
        self.embed = nn.Embedding(stack.vocab_size, stack.embed_dim)
        cls = _CELL_CLASSES[stack.cell]
        layers = []
        for shape in stack.layers:
            kwargs: dict[str, Any] = dict(input_size=shape.input_size, hidden_size=shape.hidden_size, num_layers=1,
                                          bias=stack.bias, batch_first=batch_first, bidirectional=stack.bidirectional)
            if stack.cell == "lstm":
                kwargs["proj_size"] = shape.proj_size
            layers.append(cls(**kwargs))
        self.rnn = nn.ModuleList(layers)
        self.proj = nn.Linear(stack.output_dim, stack.vocab_size, bias=stack.proj_bias)
        if stack.tie_weights:
            self.proj.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids ``[B, T]`` (``[T, B]`` when not batch_first) -> logits ``[..., vocab]``."""
        hidden = self.embed(tokens)
        for layer in self.rnn:
            hidden, _state = layer(hidden)
        return self.proj(hidden)


def module_name(checkpoint_name: str) -> str:
    """``rnn.weight_ih_l3_reverse`` -> ``rnn.3.weight_ih_l0_reverse``; other names are unchanged."""
    match = _BUILTIN_NAME.match(checkpoint_name)
    if not match:
        return checkpoint_name
    return f"rnn.{match.group(2)}.{match.group(1)}_l0{match.group(3) or ''}"


def remap_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A built-in-layout state_dict renamed for :class:`PrunedRecurrentLanguageModel`.load_state_dict."""
    return {module_name(name): tensor for name, tensor in state_dict.items()}


_STACK_TENSOR = re.compile(r"^rnn\.(\d+)\.")


def closed_form_checks(stack: StackSpec, tensors: Sequence[Any]) -> tuple:
    """Closed-form checks for a stack with per-layer widths: each layer is checked with its own I, H, H_r.

    ``tensors`` are :class:`~lstm_inspect.analyses.params.TensorRow` of the stack model.
    """
    from lstm_inspect.analyses import closed_form
    from lstm_inspect.analyses.params import ClosedFormCheck
    from lstm_inspect.spec import ModelSpec

    by_component: dict[str, int] = {}
    by_layer: dict[int, int] = {}
    for t in tensors:
        by_component[t.component] = by_component.get(t.component, 0) + t.count
        match = _STACK_TENSOR.match(t.name)
        if t.component == "recurrent" and match:
            by_layer[int(match.group(1))] = by_layer.get(int(match.group(1)), 0) + t.count
    checks = []
    emb = closed_form.embedding_params(ModelSpec(vocab_size=stack.vocab_size, embed_dim=stack.embed_dim))
    checks.append(ClosedFormCheck(emb.component, emb.symbolic, emb.substituted, emb.value, by_component.get("embedding", 0)))
    for index, shape in enumerate(stack.layers):
        # A one-layer spec whose "embedding width" is this layer's input: the same formula, this layer's widths.
        spec = ModelSpec(cell=stack.cell, embed_dim=shape.input_size, hidden_dim=shape.hidden_size, num_layers=1,
                         bidirectional=stack.bidirectional, proj_size=shape.proj_size, bias=stack.bias)
        f = closed_form.recurrent_layer_params(spec, 0)
        textbook = closed_form.textbook_recurrent_layer_params(spec, 0)
        checks.append(ClosedFormCheck(f"recurrent layer {index}", f.symbolic, f.substituted, f.value,
                                      by_layer.get(index, 0), textbook=textbook if textbook != f.value else None))
    last = stack.layers[-1]
    out_spec = ModelSpec(cell=stack.cell, vocab_size=stack.vocab_size, embed_dim=stack.embed_dim,
                         hidden_dim=last.hidden_size, num_layers=1, bidirectional=stack.bidirectional,
                         proj_size=last.proj_size, bias=stack.proj_bias, tie_weights=stack.tie_weights)
    proj = closed_form.projection_params(out_spec)
    checks.append(ClosedFormCheck(proj.component, proj.symbolic, proj.substituted, proj.value,
                                  by_component.get("projection", 0)))
    return tuple(checks)
