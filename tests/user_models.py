"""Models written the way their authors write them (not the product's classes), for the checkpoint tests.

* ``SimpleLSTMModel``: source document 000 (``embed``, ``lstm``, ``proj``);
* ``PrunedSimpleLSTM``: what a pruning script writes: a ModuleList of one-layer LSTMs, one narrower;
* ``SingleStepLSTM``: source document 001 (``lstm`` + ``linear`` on the last step, float features);
* ``RNNModel``: PyTorch's examples/word_language_model (``encoder``, ``rnn``, ``decoder``; seq-first);
* ``AWDLSTM``: an AWD-LSTM-like model whose LSTMs are wrapped in ``WeightDrop`` (``weight_hh_l0_raw``).
"""

from __future__ import annotations

import torch
from torch import nn


class SimpleLSTMModel(nn.Module):
    def __init__(self, vocab_size=50258, embed_dim=768, hidden_dim=768, num_layers=2, bidirectional=False):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, num_layers=num_layers, batch_first=True,
                            bidirectional=bidirectional)
        self.proj = nn.Linear(hidden_dim * (2 if bidirectional else 1), vocab_size)

    def forward(self, x):
        out, _ = self.lstm(self.embed(x))
        return self.proj(out)


class PrunedSimpleLSTM(nn.Module):
    def __init__(self, vocab_size, embed_dim, widths):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        inputs = [embed_dim] + list(widths[:-1])
        self.lstms = nn.ModuleList(nn.LSTM(i, h, batch_first=True) for i, h in zip(inputs, widths))
        self.proj = nn.Linear(widths[-1], vocab_size)

    def forward(self, x):
        out = self.embed(x)
        for lstm in self.lstms:
            out, _ = lstm(out)
        return self.proj(out)


class SingleStepLSTM(nn.Module):
    def __init__(self, batch_size, input_size, hidden_size, output_size):
        super().__init__()
        self.lstm = nn.LSTM(input_size=input_size, hidden_size=hidden_size, num_layers=1, batch_first=False,
                            bidirectional=False)
        self.linear = nn.Linear(in_features=hidden_size, out_features=output_size, bias=True)

    def forward(self, x):
        lstm_out, _ = self.lstm(x)
        return self.linear(lstm_out[-1])


class RNNModel(nn.Module):
    """Container module with an encoder, a recurrent module, and a decoder (word_language_model)."""

    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5, tie_weights=False):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        if rnn_type in ["LSTM", "GRU"]:
            self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        else:
            nonlinearity = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}[rnn_type]
            self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=nonlinearity, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            if nhid != ninp:
                raise ValueError("When using the tied flag, nhid must be equal to emsize")
            self.decoder.weight = self.encoder.weight

    def forward(self, input, hidden=None):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        return self.decoder(self.drop(output))


class WeightDrop(nn.Module):
    """AWD-LSTM's weight drop: the raw hidden-to-hidden weight is the parameter."""

    def __init__(self, module, weights, dropout=0.0):
        super().__init__()
        self.module = module
        self.weights = weights
        self.dropout = dropout
        for name_w in self.weights:
            w = getattr(self.module, name_w)
            del self.module._parameters[name_w]
            self.module.register_parameter(name_w + "_raw", nn.Parameter(w.data))

    def forward(self, *args):
        for name_w in self.weights:
            raw_w = getattr(self.module, name_w + "_raw")
            setattr(self.module, name_w, nn.functional.dropout(raw_w, p=self.dropout, training=self.training))
        return self.module.forward(*args)


class AWDLSTM(nn.Module):
    def __init__(self, ntoken, ninp, nhid, nlayers, tie_weights=True):
        super().__init__()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnns = nn.ModuleList(
            WeightDrop(nn.LSTM(ninp if l == 0 else nhid, nhid if l != nlayers - 1 else ninp, 1), ["weight_hh_l0"])
            for l in range(nlayers)
        )
        self.decoder = nn.Linear(ninp, ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight


def unique_params(model: nn.Module) -> int:
    """sum(p.numel()) over unique parameters (tied ones once)."""
    return sum(p.numel() for p in model.parameters())


def malicious_payload(marker: str):
    """An object whose unpickling runs ``touch marker``."""

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    return Evil()


torch.manual_seed(0)
