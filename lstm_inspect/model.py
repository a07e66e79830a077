"""The built-in language model as an ``nn.Module`` (imports torch)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from lstm_inspect.recurrence import cell_class
from lstm_inspect.spec import ModelSpec
from lstm_inspect.torch_adapters import is_fake


class RecurrentLanguageModel(nn.Module):
    """Embedding -> LSTM/GRU/RNN stack -> Linear to the vocabulary (logits; softmax lives in the loss).

    Source document 000's ``SimpleLSTMModel``, names included: ``embed``, then the recurrent stack
    named after its cell (``lstm``, ``gru`` or ``rnn``), then ``proj``. A state_dict saved from the
    source script is this model's state_dict.
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
        self.add_module(spec.cell, cell_class(spec.cell)(**kwargs))
        self.proj = nn.Linear(spec.output_dim, spec.vocab_size, bias=spec.bias)
        if spec.tie_weights:
            self.proj.weight = self.embed.weight

    @property
    def recurrent(self) -> nn.RNNBase:
        """The recurrent stack (``self.lstm``, ``self.gru`` or ``self.rnn``)."""
        return self._modules[self.spec.cell]  # type: ignore[return-value]

    def forward(self, tokens: torch.Tensor, lengths: Sequence[int] | None = None) -> torch.Tensor:
        """Token ids ``[B, T]`` (``[T, B]`` when not batch_first) -> logits ``[..., vocab]``.

        With ``lengths`` (one per sequence) the batch is packed: the recurrent stack runs
        ``sum(lengths)`` cell steps and the projection sees only real tokens, so the result is
        the packed logits ``[sum(lengths), vocab]``.
        """
        embedded = self.embed(tokens)
        if lengths is None:
            hidden, _state = self.recurrent(embedded)
            return self.proj(hidden)
        return self.proj(packed_recurrent([self.recurrent], embedded, lengths))


def packed_recurrent(stack: Sequence[nn.RNNBase], embedded: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """Recurrent modules, one after the other, over a packed batch; returns the packed output data
    ``[sum(lengths), D·H_r]``.

    On real tensors this is ``pack_padded_sequence`` and the packed kernel. Fake and meta tensors
    cannot run the packed kernel (it reads ``batch_sizes``), so there the sequences are run in groups
    of equal length, unpacked: the same cell steps (each sequence is independent), the same output size.
    """
    from torch.nn.utils.rnn import pack_padded_sequence

    batch_first = stack[0].batch_first
    if embedded.device.type != "meta" and not is_fake(embedded):
        lengths_t = torch.as_tensor(list(lengths), dtype=torch.int64)
        packed = pack_padded_sequence(embedded, lengths_t, batch_first=batch_first, enforce_sorted=False)
        for rnn in stack:
            packed, _state = rnn(packed)
        return packed.data
    pieces = []
    for length in sorted(set(lengths), reverse=True):
        rows = [i for i, n in enumerate(lengths) if n == length]
        output = embedded[rows, :length] if batch_first else embedded[:length, rows]
        for rnn in stack:
            output, _state = rnn(output)
        pieces.append(output.reshape(len(rows) * length, output.shape[-1]))
    if embedded.device.type == "meta":
        # shape-only tracing: the packed output's size (torch.cat on meta imports torch._dynamo), joined to
        # the groups' autograd graph so that a counted training step sees that the head's input needs a gradient
        from lstm_inspect.shape_forwards import graft

        return graft(stack[0], tuple(pieces), embedded.new_empty((sum(lengths), pieces[0].shape[-1])))
    # fake tensors (the memory estimate): cat keeps the groups in the autograd graph, as the packed
    # output keeps the packed kernel's, so a training step's backward is estimated too
    return torch.cat(pieces)
