"""``generation``: per-sequence state from the tensors the models really return, KV caches against the closed
form, totals and the budget, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from lstm_inspect.analyses.generation import crossing_context, generation_memory
from lstm_inspect.building import materialize
from lstm_inspect.cli import app
from lstm_inspect.source import load_builtin
from lstm_inspect.sources import resolve_source
from lstm_inspect.spec import ModelSpec
from tests.schema_helpers import validate

runner = CliRunner()
SMALL = dict(vocab_size=100, embed_dim=16, hidden_dim=24)


def _real_state_bytes(value) -> int:
    """Bytes of every floating tensor reachable from a real returned state (tuples, lists, objects)."""
    seen: set[int] = set()

    def walk(v) -> int:
        if id(v) in seen:
            return 0
        seen.add(id(v))
        if isinstance(v, torch.Tensor):
            return v.numel() * v.element_size() if v.is_floating_point() else 0
        if isinstance(v, (list, tuple)):
            return sum(walk(x) for x in v)
        if isinstance(v, dict):
            return sum(walk(x) for x in v.values())
        if hasattr(v, "__dict__") and not isinstance(v, torch.nn.Module):
            return sum(walk(x) for k, x in vars(v).items() if k != "config" and not k.endswith("_initial"))
        return 0

    return walk(value)


@pytest.mark.parametrize("cell, extra", [
    ("lstm", {}), ("gru", {}), ("rnn", {}), ("lstm", {"bidirectional": True, "num_layers": 3}),
    ("lstm", {"proj_size": 8}), ("gru", {"bidirectional": True}),
])
def test_recurrent_state_is_the_h_n_c_n_the_module_returns(cell, extra):
    spec = ModelSpec(cell=cell, **SMALL, **extra)
    report = generation_memory(load_builtin(spec), contexts=[1, 5000], batch_sizes=[1, 3])
    # What nn.LSTM/GRU/RNN really returns, on real tensors, for one sequence.
    real = materialize(load_builtin(spec).module, torch.device("cpu"), torch.float32)
    rnn = next(m for m in real.modules() if isinstance(m, torch.nn.RNNBase))
    _, state = rnn(torch.zeros(1, 7, rnn.input_size) if rnn.batch_first else torch.zeros(7, 1, rnn.input_size))
    states = state if isinstance(state, tuple) else (state,)
    returned = sum(s.numel() * s.element_size() for s in states)
    # Closed form: layers · directions · (H_r [+ H for c]) floats.
    d = 2 if spec.bidirectional else 1
    h_r = spec.proj_size or spec.hidden_dim
    closed = 4 * spec.num_layers * d * (h_r + (spec.hidden_dim if cell == "lstm" else 0))
    assert report.fixed_bytes == returned == closed
    assert report.per_token_bytes == 0 and report.kind == "recurrent state"
    assert sorted(t.shape for t in report.state_tensors) == sorted(tuple(s.shape) for s in states)
    # Totals: weights + batch × (state + the logits row of one step).
    assert report.step_output_bytes == 4 * spec.vocab_size
    for row in report.rows:
        assert row.per_sequence_bytes == closed
        assert row.total_bytes == tuple(report.weights_bytes + b * (closed + 4 * spec.vocab_size) for b in (1, 3))


def _hf_dir(tmp_path, config):
    path = tmp_path / config.model_type
    path.mkdir()
    config.to_json_file(path / "config.json")
    return str(path)


def test_mamba_state_is_the_conv_and_ssm_state_its_cache_holds(tmp_path):
    from transformers import MambaConfig, MambaForCausalLM

    config = MambaConfig(vocab_size=64, hidden_size=16, state_size=6, num_hidden_layers=3, conv_kernel=4,
                         expand=2, intermediate_size=32)
    report = generation_memory(resolve_source(_hf_dir(tmp_path, config)), contexts=[1, 100_000], batch_sizes=[1])
    # The cache a real forward returns (real weights, tiny).
    model = MambaForCausalLM(config).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 5, dtype=torch.long), use_cache=True)
    cache = next(out[k] for k in out.keys() if k != "logits")
    returned = _real_state_bytes(cache)
    # Closed form: per layer a conv state [intermediate, conv_kernel] and an SSM state [intermediate, state_size].
    closed = 4 * config.num_hidden_layers * config.intermediate_size * (config.conv_kernel + config.state_size)
    assert report.fixed_bytes == returned == closed
    assert report.per_token_bytes == 0
    assert [r.per_sequence_bytes for r in report.rows] == [closed, closed]


@pytest.mark.parametrize("dtype, elem", [("float32", 4), ("bfloat16", 2)])
def test_gpt2_kv_cache_is_the_closed_form(tmp_path, dtype, elem):
    from transformers import GPT2Config

    config = GPT2Config(vocab_size=50, n_embd=32, n_layer=3, n_head=4, n_positions=64)
    contexts = [1, 17, 4096, 131072]
    report = generation_memory(resolve_source(_hf_dir(tmp_path, config)), contexts=contexts, batch_sizes=[1, 4],
                               dtype=dtype)
    head_dim = config.n_embd // config.n_head
    for row, t in zip(report.rows, contexts):
        assert row.per_sequence_bytes == 2 * config.n_layer * config.n_head * head_dim * t * elem
    assert report.kind == "kv cache" and report.fixed_bytes == 0
    assert any("max_position_embeddings" in n for n in report.notes)   # 131072 > n_positions


def test_grouped_kv_llama_cache_is_the_closed_form(tmp_path):
    from transformers import LlamaConfig

    config = LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=8, num_key_value_heads=2, head_dim=4, max_position_embeddings=1 << 20)
    contexts = [1, 1000, 32768, 131072]
    report = generation_memory(resolve_source(_hf_dir(tmp_path, config)), contexts=contexts, batch_sizes=[2])
    for row, t in zip(report.rows, contexts):
        # kv_heads (2), not the 8 query heads.
        assert row.per_sequence_bytes == 2 * 3 * 2 * 4 * t * 4
    assert not any("max_position_embeddings" in n for n in report.notes)


def test_budget_is_the_largest_batch_whose_total_fits():
    spec = ModelSpec(**SMALL)
    report = generation_memory(load_builtin(spec), contexts=[8], batch_sizes=[1], budget_bytes=3_000_000)
    (row,) = report.rows
    per = report.per_sequence(8) + report.step_output_bytes
    assert row.max_batch_size > 0
    assert report.weights_bytes + row.max_batch_size * per <= 3_000_000 < report.weights_bytes + (row.max_batch_size + 1) * per
    tiny = generation_memory(load_builtin(spec), contexts=[8], batch_sizes=[1], budget_bytes=1000)
    assert tiny.rows[0].max_batch_size == 0


@pytest.mark.parametrize("fa, pa, fb, pb", [(12288, 0, 0, 73728), (5000, 0, 0, 100), (0, 10, 0, 10), (100, 0, 50, 0),
                                            (0, 100, 1000, 10), (300, 3, 100, 7)])
def test_crossing_context_is_where_the_states_meet(fa, pa, fb, pb):
    got = crossing_context(fa, pa, fb, pb)

    def b_reached(t: int) -> bool:
        return fb + pb * t >= fa + pa * t

    if got is None:
        assert not any(b_reached(t) for t in (1, 10, 10**6, 10**9))
    else:
        assert b_reached(got) and (got == 1 or not b_reached(got - 1))


def test_cli_json_and_table_at_80_and_200_columns():
    args = ["generation", "--vocab-size", "100", "--embed-dim", "16", "--hidden-dim", "24", "--contexts", "1,131072",
            "--budget", "1GiB"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate(doc)
    assert doc["state_fixed_bytes"] == 4 * 2 * (24 + 24) and doc["state_per_token_bytes"] == 0
    assert [r["context"] for r in doc["rows"]] == [1, 131072]
    for width in ("80", "200"):
        table = runner.invoke(app, ["--width", width, *args])
        assert table.exit_code == 0, table.output
        assert "131,072" in table.stdout and "max batch" in table.stdout


@pytest.mark.parametrize("args", [["--contexts", "0"], ["--batch-sizes", "x"], ["--dtype", "int8"], ["--budget", "lots"]])
def test_cli_bad_input_is_one_line_exit_2(args):
    result = runner.invoke(app, ["generation", "--vocab-size", "100", *args])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error:")


def test_compare_shows_generation_side_by_side_and_where_the_curves_cross(tmp_path):
    from transformers import GPT2Config

    # An LSTM whose state per sequence is 4 · layers · (h + c) = 4 · 2 · (64 + 64) = 1,024 bytes against a
    # one-layer GPT-2 whose KV cache is 2 · 1 layer · 8 wide · 4 bytes = 64 bytes per token: equal at 16 tokens.
    gpt2 = _hf_dir(tmp_path, GPT2Config(vocab_size=50, n_embd=8, n_layer=1, n_head=2, n_positions=64))
    lstm = "vocab_size=50,embed_dim=8,hidden_dim=64,num_layers=2"
    result = runner.invoke(app, ["compare", lstm, gpt2, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate(doc)
    assert doc["generation_state_crossing"] == 1024 // 64
    for row in doc["generation"]:
        assert row["state_bytes"] == [1024, 64 * row["context"]]
    # Weights + one sequence's state: the first context where the GPT-2 side reaches the LSTM side.
    wa, wb = doc["costs"][0]["weights_bytes"], doc["costs"][1]["weights_bytes"]
    t = doc["generation_total_crossing"]
    assert wb + 64 * t >= wa + 1024 and (t == 1 or wb + 64 * (t - 1) < wa + 1024)
    table = runner.invoke(app, ["--width", "80", "compare", lstm, gpt2])
    assert table.exit_code == 0, table.output
    assert "state per sequence reaches" in table.stdout and "at context 16" in table.stdout
