"""Shared by the sources/compare/report tests: small real files and closed forms written here."""

from __future__ import annotations

from pathlib import Path

from lstm_inspect.spec import ModelSpec

GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def direction_params(cell: str, inp: int, hidden: int, proj: int, bias: bool) -> int:
    """One layer, one direction, from PyTorch's documented shapes (two bias vectors)."""
    g = GATES[cell]
    state = proj or hidden
    n = g * hidden * inp + g * hidden * state
    if bias:
        n += 2 * g * hidden
    if proj:
        n += proj * hidden
    return n


def stack_total(cell: str, vocab: int, embed: int, widths: list[int], *, bidirectional: bool = False,
                bias: bool = True, proj_bias: bool | None = None, tied: bool = False) -> int:
    """Embedding + layers of the given hidden widths (no projection) + output projection."""
    d = 2 if bidirectional else 1
    total = vocab * embed
    inp = embed
    for h in widths:
        total += d * direction_params(cell, inp, h, 0, bias)
        inp = d * h
    if not tied:
        total += inp * vocab
    if bias if proj_bias is None else proj_bias:
        total += vocab
    return total


def save_builtin(spec: ModelSpec, path: Path, fmt: str = "torch") -> None:
    """A real (randomly initialised) built-in model's state_dict written as ``fmt``."""
    import torch

    from lstm_inspect.model import RecurrentLanguageModel

    model = RecurrentLanguageModel(spec)
    if fmt == "torch":
        torch.save(model.state_dict(), path)
    else:
        from safetensors.torch import save_model

        save_model(model, str(path))


def pruned_state_dict(cell: str, vocab: int, embed: int, widths: list[int], *, bidirectional: bool = False):
    """A state_dict in the built-in naming whose layers have the given widths (what a pruner writes)."""
    import torch
    from torch import nn

    cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
    d = 2 if bidirectional else 1
    sd = {"embed.weight": torch.randn(vocab, embed)}
    inp = embed
    for k, h in enumerate(widths):
        layer = cls(inp, h, num_layers=1, bidirectional=bidirectional)
        for name, tensor in layer.state_dict().items():
            sd["rnn." + name.replace("_l0", f"_l{k}")] = tensor
        inp = d * h
    sd["proj.weight"] = torch.randn(vocab, inp)
    sd["proj.bias"] = torch.randn(vocab)
    return sd
