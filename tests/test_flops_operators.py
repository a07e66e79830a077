"""The operator pass: what module hooks cannot see (attention products, functional calls, closures) is counted,
nothing is counted twice, and ops without a formula are listed (issue 10)."""

from __future__ import annotations

import json

import pytest

from lstm_inspect.analyses.flops import count_flops
from lstm_inspect.source import LoadedModel, token_batch_input
from lstm_inspect.sources import resolve_source


def _loaded(module, name="test"):
    return LoadedModel(module, None, {"source": "test", "name": name}, token_batch_input(None))


def test_gpt2_small_counts_attention_products_exactly():
    # GPT-2 small (transformers' default config): L = 12, h = 768, 12 heads, V = 50257
    L, h, V, B, T = 12, 768, 50257, 1, 128
    projections = B * T * (L * (3 * h * h + h * h + 4 * h * h + 4 * h * h) + h * V)
    attention = B * L * 2 * T * T * h        # Q·Kᵀ and A·V: heads · T · T · head_dim, twice
    report = count_flops(resolve_source("hf:gpt2"), batch=B, seq=T)
    assert report.macs == projections + attention
    assert report.uncounted_ops == ()
    attn = [m for m in report.modules if m.counted_by == "operators" and m.name.endswith(".attn")]
    assert len(attn) == L and all(m.macs == B * 2 * T * T * h for m in attn)
    assert any(c.component == "attention" for c in report.components)


def test_llama_with_grouped_kv_heads(tmp_path):
    from transformers import LlamaConfig

    h, inter, L, nh, nkv, V, B, T = 64, 96, 2, 8, 2, 101, 2, 7
    d = h // nh
    LlamaConfig(hidden_size=h, intermediate_size=inter, num_hidden_layers=L, num_attention_heads=nh,
                num_key_value_heads=nkv, vocab_size=V, max_position_embeddings=64, bos_token_id=0, eos_token_id=0,
                pad_token_id=0).to_json_file(str(tmp_path / "config.json"))
    report = count_flops(resolve_source(str(tmp_path / "config.json")), batch=B, seq=T)
    per_token = L * (h * nh * d + 2 * h * nkv * d + nh * d * h + 3 * h * inter) + h * V
    attention = B * L * nh * T * T * 2 * d   # every query head attends: K/V heads are shared, not fewer products
    # rotary frequencies: positions[..., None] * inv_freq, a broadcast multiply (element-wise, no MACs)
    assert report.macs == B * T * per_token + attention


def test_closure_forward_is_counted():
    import torch
    from torch import nn

    V, E, O, B, T = 20, 6, 5, 3, 4
    with torch.device("meta"):
        model = nn.Module()
        model.embed = nn.Embedding(V, E)
        model.w = nn.Parameter(torch.empty(E, O))

    def forward(tokens):          # a closure, not a method: module hooks see nothing but the embedding
        return torch.tanh(model.embed(tokens) @ model.w)

    model.forward = forward
    report = count_flops(_loaded(model), batch=B, seq=T)
    assert report.macs == B * T * E * O
    assert report.flops == 2 * B * T * E * O + B * T * O       # tanh: one FLOP per output element
    assert [m.name for m in report.modules if m.counted_by == "operators"] == [""]


def test_ops_inside_hooked_modules_are_not_counted_twice():
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(30, 8)
            self.lstm = nn.LSTM(8, 6, batch_first=True)
            self.head = nn.Linear(6, 30)
            self.extra = nn.Parameter(torch.empty(6, 6))

        def forward(self, tokens):
            out, _ = self.lstm(self.embed(tokens))
            return self.head(out @ self.extra)       # Linear runs addmm inside its hook: counted once

    with torch.device("meta"):
        net = Net()
    B, T = 2, 5
    report = count_flops(_loaded(net), batch=B, seq=T)
    lstm = B * T * 4 * 6 * (8 + 6)
    assert report.macs == lstm + B * T * 6 * 6 + B * T * 6 * 30
    by_name = {m.name: m for m in report.modules}
    assert by_name["head"].counted_by == "hook" and by_name["head"].macs == B * T * 6 * 30
    assert by_name[""].counted_by == "operators" and by_name[""].macs == B * T * 6 * 6


def test_op_without_formula_is_listed():
    import torch
    from torch import nn

    class Spectral(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(30, 8)
            self.head = nn.Linear(5, 3)

        def forward(self, tokens):
            return self.head(torch.fft.rfft(self.embed(tokens), dim=-1).abs())

    with torch.device("meta"):
        model = Spectral()
    report = count_flops(_loaded(model), batch=2, seq=3)
    assert report.macs == 2 * 3 * 5 * 3
    names = dict(report.uncounted_ops)
    assert any("fft" in op for op in names) and all(calls >= 1 for calls in names.values())
    assert any("without a formula" in n for n in report.notes)


FACTORIES = """
import torch
from torch import nn
class Solver(nn.Module):          # multiplies by a weight through an op that has no formula here
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.w = nn.Parameter(torch.zeros(8, 8))
    def forward(self, x):
        return torch.linalg.solve(self.w, self.embed(x).transpose(-1, -2))
def solver():
    return Solver()
class Closure(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.w = nn.Parameter(torch.zeros(8, 50))
        self.forward = lambda x: self.embed(x) @ self.w
def closure():
    return Closure()
"""


@pytest.fixture
def factories(tmp_path, monkeypatch):
    (tmp_path / "op_factories.py").write_text(FACTORIES)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    import sys

    sys.modules.pop("op_factories", None)


def test_nothing_counted_is_exit_3_naming_the_ops(factories):
    from typer.testing import CliRunner

    from lstm_inspect.cli import app

    result = CliRunner().invoke(app, ["flops", "--model", "op_factories:solver"])
    assert result.exit_code == 3, result.output
    assert "0 MACs" in result.stderr and "linalg" in result.stderr


def test_closure_factory_on_the_command_line(factories):
    from typer.testing import CliRunner

    from lstm_inspect.cli import app

    result = CliRunner().invoke(app, ["flops", "--model", "op_factories:closure", "--batch", "2", "--seq", "3",
                                      "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["macs"] == 2 * 3 * 8 * 50 and doc["uncounted_ops"] == []


PACKED = """
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
class Packed(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.rnn = getattr(nn, cell)(8, 6, batch_first=True, bidirectional=True)
        self.head = nn.Linear(12, 50)
    def forward(self, tokens, lengths):
        packed = pack_padded_sequence(self.embed(tokens), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True)
        return self.head(out)
LENGTHS = {}
def _sample(batch, seq, device):
    return torch.zeros(batch, seq, dtype=torch.long, device=device), LENGTHS[(batch, seq)]
def lstm():
    return Packed("LSTM")
def gru():
    return Packed("GRU")
lstm.sample_input = gru.sample_input = _sample
class OneFeature(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(1, 8, batch_first=True)
    def forward(self, x):
        return self.lstm(x)[0]
def one_feature():
    return OneFeature()
class WrongState(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.gru = nn.GRU(8, 6, batch_first=True)
    def forward(self, x):
        return self.gru(self.embed(x), torch.zeros(1, x.shape[0], 5, device=x.device))[0]
def wrong_state():
    return WrongState()
"""


@pytest.fixture
def packed_models(tmp_path, monkeypatch):
    (tmp_path / "packed_models.py").write_text(PACKED)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    yield importlib.import_module("packed_models")
    import sys

    sys.modules.pop("packed_models", None)


@pytest.mark.parametrize("cell,gates", [("lstm", 4), ("gru", 3)])
@pytest.mark.parametrize("lengths", [[5, 2, 4], [1], [7, 7, 1, 3]])
def test_packed_input_inside_a_factory_runs_sum_of_lengths_steps(packed_models, cell, gates, lengths):
    B, T = len(lengths), max(lengths) + 1
    packed_models.LENGTHS[(B, T)] = lengths
    report = count_flops(resolve_source(f"packed_models:{cell}"), batch=B, seq=T)
    steps = sum(lengths)
    recurrent = 2 * steps * gates * 6 * (8 + 6)        # both directions, sum(lengths) cell steps each
    head = B * max(lengths) * 12 * 50                  # the head runs on the padded output, as the model does
    assert report.macs == recurrent + head
    assert {c.cell_steps for c in report.components if c.cell_steps is not None} == {steps}


@pytest.mark.parametrize("factory,message", [
    ("one_feature", "input.size(-1) must be equal to input_size. Expected 1, got"),
    ("wrong_state", "Expected hidden size (1, 2, 6), got (1, 2, 5)"),
])
def test_shape_only_forward_refuses_what_pytorch_refuses(packed_models, factory, message):
    import torch

    from lstm_inspect.errors import AnalysisFailed

    real = getattr(packed_models, factory)()
    with pytest.raises((RuntimeError, ValueError)):      # PyTorch itself refuses the same input
        real(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(AnalysisFailed) as failed:
        count_flops(resolve_source(f"packed_models:{factory}"), batch=2, seq=4)
    assert message in str(failed.value) and "sample_input" in str(failed.value)
