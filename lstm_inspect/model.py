"""The built-in language model as an ``nn.Module`` (imports torch)."""

from __future__ import annotations

import torch
from torch import nn

from lstm_inspect.spec import ModelSpec

_CELL_CLASSES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class RecurrentLanguageModel(nn.Module):
    """Embedding -> LSTM/GRU/RNN stack -> Linear to the vocabulary (logits; softmax lives in the loss).

    Module names ``embed``, ``rnn`` and ``proj`` are part of the checkpoint format: a state_dict
    of this model is recognised by them.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.embed = nn.Embedding(spec.vocab_size, spec.embed_dim)
        kwargs = dict(
            input_size=spec.embed_dim,
            hidden_size=spec.hidden_dim,
            num_layers=spec.num_layers,
            bias=spec.bias,
            batch_first=spec.batch_first,
            dropout=spec.dropout if spec.num_layers > 1 else 0.0,
            bidirectional=spec.bidirectional,
        )
        if spec.cell == "lstm":
            kwargs["proj_size"] = spec.proj_size
        self.rnn = _CELL_CLASSES[spec.cell](**kwargs)
        self.proj = nn.Linear(spec.output_dim, spec.vocab_size, bias=spec.bias)
        if spec.tie_weights:
            self.proj.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids ``[B, T]`` (``[T, B]`` when not batch_first) -> logits ``[..., vocab]``."""
        hidden, _state = self.rnn(self.embed(tokens))
        return self.proj(hidden)
