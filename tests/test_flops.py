"""MACs and FLOPs against closed forms derived here, independently of lstm_inspect.thop_ops."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_inspect.analyses.flops import count_flops, count_grid
from lstm_inspect.hardware import find_accelerator
from lstm_inspect.source import load_builtin
from lstm_inspect.spec import ModelSpec


def gates(cell: str) -> int:
    # LSTM: input, forget, cell, output; GRU: reset, update, new; Elman RNN: one
    return {"lstm": 4, "gru": 3, "rnn": 1}[cell]


def expected_macs(spec: ModelSpec, cell_steps: int) -> int:
    """Every weight element of a matrix product does one multiply-accumulate per cell step."""
    h = spec.hidden_dim
    r = spec.proj_size if spec.proj_size else h          # width of h_t
    dirs = 2 if spec.bidirectional else 1
    total = 0
    for layer in range(spec.num_layers):
        x_width = spec.embed_dim if layer == 0 else r * dirs
        w_ih = gates(spec.cell) * h * x_width
        w_hh = gates(spec.cell) * h * r
        w_hr = r * h if spec.proj_size else 0
        total += dirs * cell_steps * (w_ih + w_hh + w_hr)
    # the projection runs once per real token: cell_steps tokens of width dirs * r
    total += cell_steps * (dirs * r) * spec.vocab_size
    return total


def expected_elementwise(spec: ModelSpec, cell_steps: int) -> int:
    h = spec.hidden_dim
    b = spec.bias
    if spec.cell == "lstm":
        per_cell = (4 * h + 4 * h if b else 0) + (3 * h + 2 * h) + (h + h + h + h)
    elif spec.cell == "gru":
        per_cell = (3 * h + 3 * h if b else 0) + 2 * h + 3 * h + 4 * h
    else:
        per_cell = (h + h if b else 0) + h
    dirs = 2 if spec.bidirectional else 1
    linear_bias = cell_steps * spec.vocab_size if b else 0
    return spec.num_layers * dirs * cell_steps * per_cell + linear_bias


specs = st.builds(
    lambda cell, layers, bidi, hidden, embed, vocab, proj_frac, bias, batch_first: ModelSpec(
        cell=cell, num_layers=layers, bidirectional=bidi, hidden_dim=hidden, embed_dim=embed, vocab_size=vocab,
        proj_size=(max(1, hidden * proj_frac // 4) if cell == "lstm" and proj_frac and hidden > 1 else 0),
        bias=bias, batch_first=batch_first),
    cell=st.sampled_from(["lstm", "gru", "rnn"]),
    layers=st.integers(1, 3),
    bidi=st.booleans(),
    hidden=st.integers(1, 24),
    embed=st.integers(1, 24),
    vocab=st.integers(1, 60),
    proj_frac=st.integers(0, 3),
    bias=st.booleans(),
    batch_first=st.booleans(),
)


@settings(max_examples=30, deadline=None)
@given(spec=specs, batch=st.integers(1, 5), seq=st.integers(1, 40))
def test_counted_macs_and_flops_equal_closed_form(spec, batch, seq):
    report = count_flops(load_builtin(spec), batch=batch, seq=seq)
    steps = batch * seq
    assert report.macs == expected_macs(spec, steps)
    assert report.flops == 2 * expected_macs(spec, steps) + expected_elementwise(spec, steps)
    assert report.checks and report.checks_ok
    assert sum(c.macs for c in report.components) == report.macs
    assert sum(m.flops for m in report.modules) == report.flops
    # every product's input needs a gradient (the embedding is trainable): the backward's products are 2 × the
    # forward's (its element-wise work is checked in test_flops_training)
    assert report.training_macs == 3 * report.macs


@settings(max_examples=30, deadline=None)
@given(spec=specs, lengths=st.lists(st.integers(1, 30), min_size=1, max_size=6), extra=st.integers(0, 5))
def test_packed_batch_counts_sum_of_lengths(spec, lengths, extra):
    seq = max(lengths) + extra
    report = count_flops(load_builtin(spec), seq=seq, lengths=lengths)
    assert report.macs == expected_macs(spec, sum(lengths))
    assert report.flops == 2 * report.macs + expected_elementwise(spec, sum(lengths))
    p = report.packed
    assert p.padded_macs == expected_macs(spec, len(lengths) * seq)
    assert p.waste_macs == expected_macs(spec, len(lengths) * seq) - expected_macs(spec, sum(lengths))
    assert 0.0 <= p.waste_ratio < 1.0
    assert report.checks_ok


def test_default_model_batch1_seq32():
    # 2 LSTM layers x 32 steps x 4 gates x 768 x (768 input + 768 hidden), plus 32 tokens x 768 x 50258 logits
    lstm = 2 * 32 * 4 * 768 * (768 + 768)
    head = 32 * 768 * 50258
    assert lstm + head == 1_537_130_496
    report = count_flops(load_builtin(ModelSpec()))
    assert report.macs == lstm + head
    assert report.thop_raw > 0


def test_hooks_exact_on_real_packed_sequence():
    """Our custom_ops on a real PackedSequence count sum(lengths) steps (thop 0.1.1 charges the rectangle)."""
    import thop
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    from lstm_inspect.thop_ops import Recorder, make_custom_ops

    lstm = torch.nn.LSTM(5, 6, num_layers=2, bidirectional=True, proj_size=3, batch_first=True)
    lengths = [7, 4, 2]
    x = pack_padded_sequence(torch.zeros(3, 7, 5), torch.tensor(lengths), batch_first=True)
    recorder = Recorder(names={id(lstm): "rnn"})
    ours, _ = thop.profile(lstm, (x,), custom_ops=make_custom_ops(recorder), verbose=False)
    per_step = [4 * 6 * (5 + 3) + 3 * 6, 4 * 6 * (2 * 3 + 3) + 3 * 6]
    assert int(ours) == 2 * sum(lengths) * sum(per_step)
    stock, _ = thop.profile(torch.nn.LSTM(5, 6, num_layers=2, bidirectional=True, proj_size=3, batch_first=True),
                            (x,), verbose=False)
    assert int(stock) != int(ours)


def test_grid_cells_scale_with_closed_form():
    spec = ModelSpec(cell="gru", hidden_dim=8, embed_dim=4, vocab_size=11, num_layers=2)
    grid = count_grid(load_builtin(spec), [1, 3], [2, 5])
    assert [(c.batch_size, c.seq_len) for c in grid.cells] == [(1, 2), (1, 5), (3, 2), (3, 5)]
    for c in grid.cells:
        assert c.macs == expected_macs(spec, c.batch_size * c.seq_len)
        assert c.flops == 2 * c.macs + expected_elementwise(spec, c.batch_size * c.seq_len)


def test_big_config_counts_without_allocating():
    import resource

    spec = ModelSpec(embed_dim=4096, hidden_dim=4096, num_layers=6)   # 1.2e9 parameters: 4.9 GB at float32
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = count_flops(load_builtin(spec), batch=64, seq=2048)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert report.macs == expected_macs(spec, 64 * 2048)
    assert grown_kib < 512 * 1024   # far less than the weights (or the logits: 64·2048·50258 floats)


def test_time_estimate_bounds():
    spec = ModelSpec(hidden_dim=16, embed_dim=8, vocab_size=20)
    h100 = find_accelerator("H100 SXM")
    report = count_flops(load_builtin(spec), batch=2, seq=3, accelerator=h100, dtype="float16")
    t = report.time
    assert t.peak_tflops == h100.peak_tflops["float16"]
    assert t.compute_s == pytest.approx(report.flops / (t.peak_tflops * 1e12))
    assert t.memory_s == pytest.approx(t.bytes_moved / (h100.bandwidth_gbs * 1e9))
    assert t.lower_bound_s == max(t.compute_s, t.memory_s)
    assert t.bound == ("memory" if t.memory_s > t.compute_s else "compute")
    # weights: W_hh and b_hh re-read at each of the 3 steps, the rest once; embedding reads 6 looked-up rows
    h, e, v = 16, 8, 20
    layer0 = (4 * h * e + 4 * h) + 3 * (4 * h * h + 4 * h)
    layer1 = (4 * h * h + 4 * h) + 3 * (4 * h * h + 4 * h)
    recurrent = layer0 + layer1
    weights = 6 * e + recurrent + (h * v + v)
    assert t.weight_bytes == 2 * weights
    only_peak = count_flops(load_builtin(spec), batch=2, seq=3, peak_tflops=10.0)
    assert only_peak.time.memory_s is None and only_peak.time.bound == "compute"


def test_any_module_without_spec_is_counted_not_checked():
    import torch
    from torch import nn

    from lstm_inspect.source import LoadedModel, token_batch_input

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.gru = nn.GRU(4, 5, batch_first=True, bidirectional=True)
            self.norm = nn.LayerNorm(10)
            self.head = nn.Linear(10, 3)

        def forward(self, tokens):
            out, _ = self.gru(self.emb(tokens))
            return self.head(self.norm(out))

    with torch.device("meta"):
        module = Tagger()
    loaded = LoadedModel(module, None, {"source": "test", "name": "tagger"}, token_batch_input(None))
    report = count_flops(loaded, batch=2, seq=3)
    gru = 2 * 6 * 3 * 5 * (4 + 5)
    head = 6 * 10 * 3
    norm = next(m for m in report.modules if m.name == "norm")
    assert norm.stock and norm.macs == 0 and norm.flops > 0   # thop's LayerNorm hook counts element-wise work
    assert report.macs == gru + head
    elementwise = 2 * 6 * (6 * 5 + 2 * 5 + 3 * 5 + 4 * 5) + 6 * 3   # GRU: 2 directions x 6 steps; head bias
    assert report.flops == 2 * report.macs + elementwise + norm.flops
    assert report.checks == ()
    assert any("not checked" in n for n in report.notes)


def test_thop_raw_is_thop_stock_convention():
    # thop 0.1.1's LSTM cell: 4 gates x ((I + H)·H products + H + 2H bias adds) + 3H cell update + H output;
    # its Linear: in_features per output element; Embedding: nothing
    h, steps = 768, 32
    cell = 4 * ((h + h) * h + h + 2 * h) + 3 * h + h
    expected = 2 * steps * cell + steps * 50258 * 768
    assert count_flops(load_builtin(ModelSpec())).thop_raw == expected


def test_tied_weight_is_read_by_lookup_and_projection():
    spec = ModelSpec(hidden_dim=8, embed_dim=8, vocab_size=30, num_layers=1, cell="rnn", tie_weights=True)
    t = count_flops(load_builtin(spec), batch=1, seq=2, peak_tflops=1.0, accelerator=find_accelerator("t4")).time
    # embedding: 2 looked-up rows of 8; RNN: W_ih, b_ih once, W_hh, b_hh at both steps; head: tied 30x8 + bias
    rnn = (8 * 8 + 8) + 2 * (8 * 8 + 8)
    assert t.weight_bytes == 4 * (2 * 8 + rnn + 30 * 8 + 30)
