"""``memory --method estimate`` from a law fitted to a few traces: against the full trace of every cell on
models that loop over time steps (GRU on the CPU, transformers' Mamba; infer and train), a model whose peak is
quadratic in the sequence (GPT-2's attention: the law is refused), a model that changes its code path at some
length inside the grid (the law is refused), the built-in LSTM (one fused op: every cell is traced), the same
cell traced first or again in a process, the budget search, and the CLI's marker."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lstm_inspect.analyses.memory import largest_batch, sweep_memory
from lstm_inspect.analyses.memory_estimate import Trace
from lstm_inspect.analyses.memory_fit import TOLERANCE, _bilinear, aligned_segments, fit_law
from lstm_inspect.analyses.memory_probes import Estimator
from lstm_inspect.cli import app
from lstm_inspect.source import load_builtin
from lstm_inspect.sources import resolve_source
from lstm_inspect.spec import ModelSpec
from tests.schema_helpers import validate

#: The fit lengths (8, 16) and two longer ones; the law is checked at the longest (40).
BATCHES, SEQS = [1, 2, 4, 8], [8, 16, 24, 40]
V = 97
GRU = ModelSpec(cell="gru", vocab_size=V, embed_dim=16, hidden_dim=24, num_layers=2, bidirectional=True)
LSTM = ModelSpec(vocab_size=V, embed_dim=16, hidden_dim=24)
#: Every cell but the fit points (batch 1 alone; 2 and 8 at lengths 8 and 16) and the far check (4 at 40; batch 1's
#: own piece is checked at 1 × 32, not a cell of this grid).
EXTRAPOLATED = {(b, t) for b in BATCHES for t in SEQS} - {(1, 8), (1, 16), (2, 8), (8, 8), (2, 16), (8, 16),
                                                          (4, 40)}


def _hf(tmp_path, kind: str):
    import transformers as tf

    config = {
        "mamba": lambda: tf.MambaConfig(hidden_size=32, state_size=4, num_hidden_layers=2, vocab_size=V, expand=2,
                                        conv_kernel=4, bos_token_id=0, eos_token_id=0, pad_token_id=0),
        "gpt2": lambda: tf.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=V, n_positions=256),
        "rwkv": lambda: tf.RwkvConfig(hidden_size=32, attention_hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, vocab_size=V, context_length=256),
        "xlstm": lambda: tf.xLSTMConfig(hidden_size=128, num_heads=2, num_blocks=2, vocab_size=V, bos_token_id=0,
                                        eos_token_id=0, pad_token_id=0),
    }[kind]()
    config.to_json_file(str(tmp_path / "config.json"))
    return resolve_source(str(tmp_path / "config.json"))


def _both(loaded, **kwargs):
    fitted = sweep_memory(loaded, batch_sizes=BATCHES, seq_lens=SEQS, method="estimate", **kwargs)
    full = sweep_memory(loaded, batch_sizes=BATCHES, seq_lens=SEQS, method="estimate", trace_every_cell=True, **kwargs)
    assert not any(c.extrapolated for c in full.cells)
    return fitted, full


@pytest.mark.parametrize("kind, mode, optimizer", [
    ("gru", "infer", "none"), ("mamba", "infer", "none"), ("gru", "train", "adam"), ("mamba", "train", "sgd"),
    # RWKV rescales its weights in place on its first inference call: without the estimator's warm-up step the
    # first trace ran 2 × layers more ops than any other, and the law was refused.
    ("rwkv", "infer", "none"),
])
def test_fitted_cells_equal_the_full_trace_within_the_tolerance(tmp_path, kind, mode, optimizer):
    loaded = load_builtin(GRU) if kind == "gru" else _hf(tmp_path, kind)
    fitted, full = _both(loaded, mode=mode, optimizer=optimizer)
    extrapolated = [c for c in fitted.cells if c.extrapolated]
    assert {(c.batch_size, c.seq_len) for c in extrapolated} == EXTRAPOLATED, fitted.notes
    for got, want in zip(fitted.cells, full.cells):
        assert got.status == want.status == "ok"
        assert abs(got.estimated_bytes - want.estimated_bytes) <= TOLERANCE * want.estimated_bytes, (got, want)
    assert any("extrapolated" in n and "checked at" in n for n in fitted.notes)


def test_gpt2_is_traced_in_every_cell(tmp_path):
    # Its attention runs fused on the CPU (as many ops at any length): every cell is a trace.
    fitted, full = _both(_hf(tmp_path, "gpt2"), mode="infer")
    assert not any(c.extrapolated for c in fitted.cells)
    assert [c.estimated_bytes for c in fitted.cells] == [c.estimated_bytes for c in full.cells]


@pytest.mark.parametrize("power, holds", [(1, True), (2, False)])
def test_a_segment_quadratic_in_the_sequence_refuses_the_law(power, holds):
    # Eager attention scores are B·heads·T²: a bilinear law through the fit points misses at the check,
    # even when that segment is far from the peak there.
    def trace(b: int, t: int) -> Trace:
        segments = (("enter", 1000 * b * t + 50_000), ("exit", 40 * b * t ** power), ("end", 7 * b))
        return Trace(max(p for _, p in segments), 10 * t, segments)

    law, traced = fit_law(trace, BATCHES, SEQS)
    assert (law is not None) == holds
    assert (1, 8) in traced and (1, 16) in traced
    if holds:
        assert law is not None and all(law(b, t) == trace(b, t).peak for b in (1, 3, 1000) for t in (8, 100, 4096))


def test_a_fused_recurrent_kernel_traces_every_cell():
    # The built-in LSTM runs one oneDNN op per layer whatever the length: a trace costs the same at any
    # length, so no law is fitted and every figure is a trace.
    fitted, full = _both(load_builtin(LSTM), mode="infer")
    assert not any(c.extrapolated for c in fitted.cells)
    assert [c.estimated_bytes for c in fitted.cells] == [c.estimated_bytes for c in full.cells]
    assert not any("extrapolated" in n for n in fitted.notes)


def test_the_built_in_lstm_follows_the_law_where_it_is_forced():
    loaded = load_builtin(LSTM.replace(vocab_size=2000))
    with Estimator(loaded, torch.float32, train=False) as estimator:
        law, _ = fit_law(estimator.trace, BATCHES, SEQS, force=True)
        assert law is not None
        for b in BATCHES:
            for t in SEQS:
                want = estimator.trace(b, t).peak
                assert abs(law(b, t) - want) <= TOLERANCE * want, (b, t, law(b, t), want)


def test_the_budget_search_on_the_law_agrees_with_full_traces(tmp_path):
    loaded = _hf(tmp_path, "mamba")
    with Estimator(loaded, torch.float32, train=False) as estimator:
        estimator.plan(BATCHES, SEQS)
        assert estimator.law is not None, (estimator.law_refused, estimator.route, estimator.notes)
        room = 3 * estimator(8, 24)
        fast = largest_batch(estimator, 24, room)
        assert fast.max_batch_size > max(BATCHES)          # beyond the grid: the law in batch size
        exact = largest_batch(lambda b, t: estimator.trace(b, t).peak, 24, room)
    assert fast.max_batch_size == exact.max_batch_size
    assert abs(fast.estimated_bytes - exact.estimated_bytes) <= TOLERANCE * exact.estimated_bytes


def test_cli_marks_extrapolated_cells_in_json_and_table(tmp_path):
    _hf(tmp_path, "mamba")
    args = ["memory", "--model", str(tmp_path / "config.json"), "--batch-sizes", "1,2,4,8", "--seq-lens", "8,16,24,40"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate(doc)
    assert {(c["batch_size"], c["seq_len"]) for c in doc["cells"] if c["extrapolated"]} == EXTRAPOLATED, doc["notes"]
    table = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    assert table.stdout.count("~") >= 8 and "extrapolated" in table.stdout
    every = CliRunner().invoke(app, [*args, "--json", "--trace-every-cell"])
    assert not any(c["extrapolated"] for c in json.loads(every.stdout)["cells"])


class SwitchesPathAt(torch.nn.Module):
    """Written as xLSTM's inference path is: one step at a time below a length, another path from it on.

    ``how="chunked"``: from ``threshold`` on, one batched product over the whole sequence (other ops, and a
    ``B·T·T`` buffer). ``how="wider"``: the same ops per step, but each step keeps four times the state.
    """

    def __init__(self, threshold: int, how: str, width: int = 16) -> None:
        super().__init__()
        self.threshold, self.how = threshold, how
        self.embed = torch.nn.Embedding(V, width)
        self.inp, self.rec = torch.nn.Linear(width, width), torch.nn.Linear(width, width, bias=False)
        self.head = torch.nn.Linear(width, V)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        seq = x.shape[1]
        if self.how == "chunked" and seq >= self.threshold:
            scores = torch.softmax(x @ x.transpose(1, 2), dim=-1)
            return self.head(torch.tanh(self.inp(scores @ x)))
        copies = 4 if seq >= self.threshold else 1
        h, kept = x[:, 0] * 0, []
        for t in range(seq):
            wide = torch.tanh(self.inp(x[:, t]) + self.rec(h)).repeat(1, copies)
            h = wide[:, : x.shape[-1]]
            kept.append(wide)
        return self.head(torch.stack(kept, 1)[..., : x.shape[-1]])


def _user_model(module: torch.nn.Module):
    from lstm_inspect.source import LoadedModel, token_batch_input

    return LoadedModel(module=module, spec=None, description={"source": "test", "name": "switch"},
                       sample_input=token_batch_input(None))


def _within_tolerance(fitted, full) -> None:
    for got, want in zip(fitted.cells, full.cells):
        assert abs(got.estimated_bytes - want.estimated_bytes) <= TOLERANCE * want.estimated_bytes, (got, want)


@pytest.mark.parametrize("how", ["chunked", "wider"])
def test_a_model_that_changes_path_inside_the_grid_is_never_extrapolated_across_it(how):
    # The path changes at 36: past the fit lengths (8, 16) and the grid's 24, before its longest (40). A law fitted
    # on the step-by-step path is wrong at 40; the check at the longest length sees the other path (other ops, or
    # the same ops and other sizes), so the law is checked at 24, holds there and is kept up to it; 40 is traced.
    fitted, full = _both(_user_model(SwitchesPathAt(36, how)), mode="infer")
    extrapolated = {(c.batch_size, c.seq_len) for c in fitted.cells if c.extrapolated}
    assert extrapolated and all(t <= 24 for _, t in extrapolated)
    assert all(not c.extrapolated for c in fitted.cells if c.seq_len >= 36)
    _within_tolerance(fitted, full)
    law = [n for n in fitted.notes if n.startswith("cells marked ~ are extrapolated")]
    assert len(law) == 1 and "for seq <= 24 only" in law[0] and "seq >=" not in law[0], law
    # The control: with the switch past the grid, the same model is extrapolated, and rightly.
    fitted, full = _both(_user_model(SwitchesPathAt(1000, how)), mode="infer")
    assert {(c.batch_size, c.seq_len) for c in fitted.cells if c.extrapolated} == EXTRAPOLATED
    _within_tolerance(fitted, full)


def test_past_a_switch_three_lengths_or_more_get_a_law_of_their_own():
    # Past the switch at 36 the same ops run per step, each keeping four times the state: the lengths 40, 48 and
    # 64 get their own law (fitted at 40 and 48, checked at 64), and every figure is the full trace's.
    seqs = [8, 16, 24, 40, 48, 64]
    loaded = _user_model(SwitchesPathAt(36, "wider"))
    fitted = sweep_memory(loaded, batch_sizes=BATCHES, seq_lens=seqs, method="estimate")
    full = sweep_memory(loaded, batch_sizes=BATCHES, seq_lens=seqs, method="estimate", trace_every_cell=True)
    extrapolated = {(c.batch_size, c.seq_len) for c in fitted.cells if c.extrapolated}
    assert {t for _, t in extrapolated} >= {24, 64}, extrapolated
    # the fit points of the second law are traces, not extrapolations
    assert not {(2, 40), (8, 40), (2, 48), (8, 48), (1, 40), (1, 48), (4, 64), (1, 64)} & extrapolated
    _within_tolerance(fitted, full)
    law = [n for n in fitted.notes if n.startswith("cells marked ~ are extrapolated")]
    assert len(law) == 1 and "seq <= 24:" in law[0] and "seq >= 40:" in law[0], law


def test_a_grid_of_batch_one_alone_takes_the_far_check_itself():
    # With no larger batches to take the check at the longest length, batch 1's piece is checked there: the path
    # that changes at 36 is seen at 1 × 40 (a check at 1 × 32 would miss it).
    model = _user_model(SwitchesPathAt(36, "chunked"))
    fitted = sweep_memory(model, batch_sizes=[1], seq_lens=SEQS, method="estimate")
    full = sweep_memory(model, batch_sizes=[1], seq_lens=SEQS, method="estimate", trace_every_cell=True)
    assert not any(c.extrapolated for c in fitted.cells)
    assert [c.estimated_bytes for c in fitted.cells] == [c.estimated_bytes for c in full.cells]
    assert any(n.startswith("every cell traced") and "1 × 40" in n for n in fitted.notes), fitted.notes
    control = sweep_memory(_user_model(SwitchesPathAt(1000, "chunked")), batch_sizes=[1], seq_lens=SEQS,
                           method="estimate")
    assert {c.seq_len for c in control.cells if c.extrapolated} == {24}     # 8, 16 fitted; 40 the check


def test_the_same_cell_gives_the_same_figure_whichever_way_it_was_obtained():
    # FakeTensorMode caches op results per process. The fake LSTM backward returns one bias gradient for
    # b_ih and b_hh on its first call of a shape (the CPU kernel returns two): the first trace of a cell in a
    # process was 384 bytes under the same cell traced again (planning traces vs every cell traced).
    from torch._subclasses.fake_tensor import FakeTensorMode

    loaded = load_builtin(LSTM)
    figures = []
    for every_cell in (False, True, False):
        FakeTensorMode.cache_clear()
        report = sweep_memory(loaded, batch_sizes=[1, 2], seq_lens=[8], method="estimate", mode="train",
                              optimizer="adam", trace_every_cell=every_cell)
        figures.append([c.estimated_bytes for c in report.cells])
    with Estimator(loaded, torch.float32, train=True, optimizer="adam") as estimator:
        FakeTensorMode.cache_clear()
        first, again = estimator.trace(1, 8).peak, estimator.trace(1, 8).peak
    assert figures[0] == figures[1] == figures[2]
    assert first == again == figures[0][0] - report.optimizer_state_bytes


coefficient = st.integers(-10**9, 10**9)


@settings(max_examples=100, deadline=None)
@given(a=coefficient, b=coefficient, c=coefficient, d=coefficient, b1=st.integers(1, 64), db=st.integers(0, 64),
       t1=st.integers(1, 512), dt=st.integers(1, 512))
def test_bilinear_recovers_the_coefficients(a, b, c, d, b1, db, t1, dt):
    b2, t2 = b1 + db, t1 + dt
    d = d if db else 0
    b = b if db else 0
    values = {(x, y): a + b * x + c * y + d * x * y for x in (b1, b2) for y in (t1, t2)}
    got = _bilinear(values, (b1, b2), (t1, t2))
    for x, y in [(b1, t1), (3 * b2 + 1, 5 * t2 + 7)]:
        assert sum(k * v for k, v in zip(got, (1, x, y, x * y))) == Fraction(a + b * x + c * y + d * x * y)


@settings(max_examples=50, deadline=None)
@given(steps=st.lists(st.integers(0, 5), min_size=2, max_size=4), peaks=st.lists(st.integers(0, 10**6), min_size=12,
                                                                                     max_size=12))
def test_marks_repeated_per_step_merge_into_their_segment(steps, peaks):
    # A module called once per time step marks a different number of times in each trace: its marks
    # are dropped and its segments merge (peak of the merged = largest of its parts).
    traces = []
    for n in steps:
        segments = [("enter", 1), *[("cell", 2)] * n, ("exit", 1), ("end",)]
        traces.append(Trace(0, 0, tuple((label, peaks[i % 12]) for i, label in enumerate(segments))))
    merged = aligned_segments(traces)
    assert merged is not None
    for n, row in zip(steps, merged):
        if len(set(steps)) > 1:
            assert row == [peaks[0], max(peaks[1:n + 2]), peaks[(n + 2) % 12]]
        else:
            assert len(row) == n + 3


def _route(loaded, route: str, **kwargs):
    """A sweep whose estimator is held to one route (``fake``: as before the meta route existed)."""
    from lstm_inspect.analyses import memory_probes

    original = memory_probes._meta_eligible
    memory_probes._meta_eligible = lambda *a: route == "meta" and original(*a)
    try:
        return sweep_memory(loaded, batch_sizes=BATCHES, seq_lens=SEQS, method="estimate", trace_every_cell=True,
                            **kwargs)
    finally:
        memory_probes._meta_eligible = original


@pytest.mark.parametrize("kind", ["mamba", "rwkv", "xlstm"])
@pytest.mark.parametrize("mode, optimizer", [("infer", "none"), ("train", "sgd")])
def test_the_meta_route_gives_the_fake_routes_figures(tmp_path, kind, mode, optimizer):
    # Every cell traced on meta (after the first cell's check against fake tensors) equals its fake-tensor trace;
    # the tiny Mamba ties its embeddings, so train mode also covers tied weights' gradients. xLSTM's cache makes
    # a tensor from Python data in its forward (``torch.tensor([0])``: no op dispatched on meta).
    loaded = _hf(tmp_path, kind)
    meta = _route(loaded, "meta", mode=mode, optimizer=optimizer)
    fake = _route(loaded, "fake", mode=mode, optimizer=optimizer)
    assert any("traced on the meta device" in n for n in meta.notes), meta.notes
    assert not any("traced on the meta device" in n for n in fake.notes), fake.notes
    assert [c.estimated_bytes for c in meta.cells] == [c.estimated_bytes for c in fake.cells]
    assert all(c.status == "ok" for c in meta.cells)


def test_a_meta_trace_that_differs_falls_back_to_fake_tensors_with_a_note(tmp_path, monkeypatch):
    from lstm_inspect.analyses import memory_probes

    traced = memory_probes.Estimator._trace_meta
    monkeypatch.setattr(memory_probes.Estimator, "_trace_meta",
                        lambda self, b, t: dataclasses.replace(traced(self, b, t), peak=1))
    loaded = _hf(tmp_path, "mamba")
    fallen = sweep_memory(loaded, batch_sizes=BATCHES, seq_lens=SEQS, method="estimate", trace_every_cell=True)
    fake = _route(loaded, "fake")
    assert [c.estimated_bytes for c in fallen.cells] == [c.estimated_bytes for c in fake.cells]
    assert any("traced on fake tensors" in n and "2×2" in n for n in fallen.notes), fallen.notes


class _Literal(torch.nn.Module):
    """A forward that makes a tensor from Python data (``torch.tensor``, ``as_tensor``): 4 × n bytes each, alive
    while the output is computed."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.embed = torch.nn.Embedding(V, 8)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        scale = torch.tensor([0.5] * self.n)
        shift = torch.as_tensor([1.0] * self.n)
        return self.embed(tokens).sum() * scale.sum() + shift.sum()


@pytest.mark.parametrize("route", ["meta", "fake"])
def test_tensors_made_from_python_data_are_counted_on_either_route(route):
    # Each literal is 4·n bytes; the two are alive together, so the peak grows by 8·n between n = 0 and n = 1000.
    peaks = {}
    for n in (0, 1000):
        loaded = _user_model(_Literal(n))
        report = sweep_memory(loaded, batch_sizes=[2], seq_lens=[8], method="estimate", trace_every_cell=True)
        if route == "fake":
            report = _route(loaded, "fake")
        peaks[n] = [c.estimated_bytes for c in report.cells if (c.batch_size, c.seq_len) == (2, 8)][0]
        on_meta = any("traced on the meta device" in note for note in report.notes)
        assert on_meta == (route == "meta"), report.notes
    assert peaks[1000] - peaks[0] == 8 * 1000


def _undominated_by_definition(terms):
    """The terms no other term is at least as large as in every coefficient (the definition, quadratic)."""
    unique = set(terms)
    return sorted((t for t in unique if not any(o != t and all(x >= y for x, y in zip(o, t)) for o in unique)),
                  reverse=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(*[st.fractions(min_value=-50, max_value=50, max_denominator=12)] * 4), max_size=40))
def test_the_kept_terms_are_exactly_those_no_other_dominates(terms):
    from lstm_inspect.analyses.memory_fit import _undominated

    assert _undominated(terms) == _undominated_by_definition(terms)
