"""A training step counted (issue 10): forward + backward, against closed forms derived here and against
torch.utils.flop_counter.FlopCounterMode running the same forward and backward on real small tensors."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lstm_inspect.analyses.flops import count_flops
from lstm_inspect.api import inspect_model
from lstm_inspect.source import load_builtin
from lstm_inspect.spec import ModelSpec
from tests.test_flops import expected_elementwise, expected_macs, gates, specs
from tests.user_models import SimpleLSTMModel


def reference_step_macs(model: nn.Module, inputs: tuple) -> int:
    """FlopCounterMode's matrix-product MACs of forward + backward (from the sum of the output) on real tensors."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        out = model(*inputs)
        out = out.logits if hasattr(out, "logits") else out
        out.sum().backward()
    return counter.get_total_flops() // 2


def test_mlp_backward_is_twice_the_products_less_the_first_input_gradient():
    rows, widths = 2 * 5, (7, 11, 13, 5)
    model = nn.Sequential(nn.Linear(7, 11), nn.ReLU(), nn.Linear(11, 13), nn.Tanh(), nn.Linear(13, 5))
    report = count_flops(inspect_model(model, sample_input=lambda b, s, d: torch.zeros(b, s, 7, device=d)).loaded,
                         batch=2, seq=5)
    products = [rows * i * o for i, o in zip(widths, widths[1:])]
    assert report.macs == sum(products)
    # dW of every layer, dX of every layer but the first (its input is data, it needs no gradient)
    backward = 2 * sum(products) - products[0]
    assert report.training.backward_macs == backward
    assert report.training_macs == sum(products) + backward != 3 * report.macs
    assert report.training.method == "counted"
    # element-wise: bias gradients (a row sum: rows·out) and ReLU/Tanh derivatives (one op per element)
    bias = sum(rows * o for o in widths[1:])
    activations = rows * 11 + rows * 13
    assert report.training.backward_flops == 2 * backward + bias + activations
    real = reference_step_macs(model, (torch.randn(2, 5, 7),))
    assert report.training_macs == real


def _gpt2(attn: str):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=2, n_embd=48, n_head=4, vocab_size=101, n_positions=32, bos_token_id=0,
                        eos_token_id=0, attn_implementation=attn)
    return GPT2LMHeadModel(config)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_gpt2_backward_against_its_products_and_flop_counter(attn):
    batch, seq, h, v, layers, heads = 2, 9, 48, 101, 2, 4
    model = _gpt2(attn)
    report = count_flops(inspect_model(model).loaded, batch=batch, seq=seq)
    rows = batch * seq
    projections = rows * (layers * (h * 3 * h + h * h + h * 4 * h + 4 * h * h) + h * v)
    attention = layers * batch * heads * seq * seq * 2 * (h // heads)       # Q·Kᵀ and A·V
    assert report.macs == projections + attention
    # every product's input depends on the (trainable) embeddings: dW and dX everywhere, 2 × the products;
    # the fused attention kernel's backward recomputes the scores (Q·Kᵀ once more), as flop_counter counts it
    d = h // heads
    attention_backward = 2 * attention if attn == "eager" else layers * batch * heads * seq * seq * (3 * d + 2 * d)
    assert report.training.backward_macs == 2 * projections + attention_backward
    assert report.training.method == "counted" and report.training.fallback is None
    assert not report.training.uncounted_ops
    if attn == "eager":   # FlopCounterMode counts bmm; it has no formula for the CPU fused attention kernel
        model.eval()
        assert report.training_macs == reference_step_macs(model, (torch.zeros(batch, seq, dtype=torch.long),))


def backward_elementwise(spec: ModelSpec, steps: int) -> int:
    """Bias gradients (one add per bias element and step), 2 × the forward's gate and cell work, the
    embedding's gradient rows scatter-added (steps·E), the head's bias gradient (steps·V)."""
    h, dirs = spec.hidden_dim, 2 if spec.bidirectional else 1
    bias = 2 * gates(spec.cell) * h if spec.bias else 0
    cell_work = {"lstm": 5 * h + 4 * h, "gru": 2 * h + 3 * h + 4 * h, "rnn": h}[spec.cell]
    recurrent = spec.num_layers * dirs * steps * (bias + 2 * cell_work)
    return recurrent + steps * spec.embed_dim + (steps * spec.vocab_size if spec.bias else 0)


@settings(max_examples=30, deadline=None)
@given(spec=specs, batch=st.integers(1, 4), seq=st.integers(1, 30))
def test_builtin_training_step_equals_its_closed_form(spec, batch, seq):
    report = count_flops(load_builtin(spec), batch=batch, seq=seq)
    steps = batch * seq
    macs = expected_macs(spec, steps)
    # the recurrent stack's input is the embedding's output (trainable): every product's dX and dW, and dh
    # at every step: 2 × the forward's products
    assert report.training.backward_macs == 2 * macs
    assert report.training.backward_flops == 4 * macs + backward_elementwise(spec, steps)
    assert report.training_flops == 2 * macs + expected_elementwise(spec, steps) + report.training.backward_flops
    assert report.training.method == "closed form"


def test_float_feature_lstm_has_no_input_gradient_in_layer_0():
    # an LSTM on float features (no embedding): layer 0's dX = dgates·W_ih is not needed
    steps, i, h, out = 3 * 7, 5, 6, 4
    model = nn.Sequential()
    model.lstm = nn.LSTM(i, h, num_layers=2, batch_first=True)

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(i, h, num_layers=2, batch_first=True)
            self.proj = nn.Linear(h, out)

        def forward(self, x):
            return self.proj(self.lstm(x)[0])

    report = count_flops(inspect_model(Head(), sample_input=lambda b, s, d: torch.zeros(b, s, i, device=d)).loaded,
                         batch=3, seq=7)
    forward = steps * (4 * h * (i + h) + 4 * h * (h + h) + h * out)
    assert report.macs == forward
    assert report.training.backward_macs == 2 * forward - steps * 4 * h * i
    assert report.training_macs != 3 * report.macs
    assert {p.module: p.method for p in report.training.parts if p.macs} == {"lstm": "closed form", "proj": "closed form"}


def test_frozen_layers_and_user_model_mix_counted_and_closed_form():
    model = SimpleLSTMModel(vocab_size=50, embed_dim=8, hidden_dim=12, num_layers=2)
    model.embed.weight.requires_grad_(False)
    for p in model.lstm.parameters():
        p.requires_grad_(False)
    report = count_flops(inspect_model(model).loaded, batch=2, seq=4)
    steps = 8
    # nothing below the head is trainable: only dW of the head, and no gradient reaches the embedding
    assert report.training.backward_macs == steps * 12 * 50
    model.lstm.weight_hh_l1.requires_grad_(True)
    report = count_flops(inspect_model(model).loaded, batch=2, seq=4)
    # layer 1: dW_hh and the state chain dh (and dX of the head); layer 0 needs nothing
    head = steps * 12 * 50
    assert report.training.backward_macs == 2 * head + steps * 4 * 12 * 12 * 2


def test_packed_step_counts_sum_of_lengths_cell_steps():
    spec = ModelSpec(embed_dim=6, hidden_dim=5, num_layers=1, vocab_size=11)
    lengths = [4, 2, 1]
    report = count_flops(load_builtin(spec), batch=3, seq=4, lengths=lengths)
    assert report.training.backward_macs == 2 * expected_macs(spec, sum(lengths))


def test_no_gradient_falls_back_to_the_rule_and_says_why():
    class Argmax(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 3)

        def forward(self, x):
            with torch.no_grad():
                return self.proj(x)

    report = count_flops(inspect_model(Argmax(), sample_input=lambda b, s, d: torch.zeros(b, s, 4, device=d)).loaded,
                         batch=1, seq=2)
    assert report.training.method == "rule" and report.training_flops == 3 * report.flops
    assert "no gradient" in report.training.fallback


def test_time_estimate_uses_the_counted_step():
    report = count_flops(load_builtin(ModelSpec(embed_dim=8, hidden_dim=8, num_layers=1, vocab_size=20)),
                         peak_tflops=1.0)
    assert report.time.training_compute_s == pytest.approx(report.training_flops / 1e12)
    assert report.training_flops != 3 * report.flops


def test_cli_json_and_text_say_how_training_was_counted():
    from typer.testing import CliRunner

    from lstm_inspect.cli import app

    args = ["flops", "--embed-dim", "4", "--hidden-dim", "6", "--vocab-size", "13", "--seq", "3"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    training = json.loads(result.stdout)["training"]
    assert training["method"] == "closed form" and training["fallback"] is None
    assert training["macs"] == training["backward"]["macs"] + json.loads(result.stdout)["macs"]
    assert {p["method"] for p in training["parts"]} == {"closed form"}
    text = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert "training step, closed form" in text.stdout and "closed forms" in text.stdout


@pytest.mark.parametrize("groups", [1, 6])
def test_convolution_backward_counts_each_gradient_once_per_forward_product(groups):
    # a depthwise convolution (groups = channels, as Mamba's) costs dW = dX = its forward per output element
    # and kernel tap; flop_counter charges a grouped dW as if dense, so it is the reference for groups=1 only
    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(20, 6)
            self.conv = nn.Conv1d(6, 6, 3, groups=groups, padding=2)
            self.head = nn.Linear(6, 20)

        def forward(self, x):
            y = self.conv(self.embed(x).transpose(1, 2))[..., : x.shape[1]]
            return self.head(y.transpose(1, 2))

    batch, seq = 2, 5
    model = Conv()
    report = count_flops(inspect_model(model).loaded, batch=batch, seq=seq)
    conv = batch * 6 * (seq + 2) * (6 // groups) * 3     # output elements (padded length 7) × (C_in/groups)·k
    head = batch * seq * 6 * 20
    assert report.macs == conv + head
    assert report.training.backward_macs == 2 * conv + 2 * head
    if groups == 1:
        assert report.training_macs == reference_step_macs(model, (torch.zeros(batch, seq, dtype=torch.long),))
