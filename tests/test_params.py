"""Parameter counts against closed forms written here, independently of lstm_inspect.analyses."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lstm_inspect.analyses.params import count_params
from lstm_inspect.cli import app
from lstm_inspect.errors import InvalidInput
from lstm_inspect.source import load_builtin
from lstm_inspect.spec import ModelSpec

runner = CliRunner()


def expected_total(spec: ModelSpec) -> int:
    """PyTorch's documented shapes: weight_ih [G·H, I], weight_hh [G·H, H_r], b_ih/b_hh [G·H], weight_hr [H_r, H]."""
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[spec.cell]
    h = spec.hidden_dim
    hr = spec.proj_size if spec.proj_size else h
    dirs = 2 if spec.bidirectional else 1
    total = spec.vocab_size * spec.embed_dim
    for layer in range(spec.num_layers):
        inp = spec.embed_dim if layer == 0 else hr * dirs
        per_dir = gates * h * inp + gates * h * hr
        if spec.bias:
            per_dir += 2 * gates * h
        if spec.proj_size:
            per_dir += hr * h
        total += dirs * per_dir
    proj_in = hr * dirs
    if not spec.tie_weights:
        total += proj_in * spec.vocab_size
    if spec.bias:
        total += spec.vocab_size
    return total


@st.composite
def specs(draw) -> ModelSpec:
    cell = draw(st.sampled_from(["lstm", "gru", "rnn"]))
    hidden = draw(st.integers(2, 48))
    proj = draw(st.integers(0, hidden - 1)) if cell == "lstm" and draw(st.booleans()) else 0
    bidirectional = draw(st.booleans())
    tie = draw(st.booleans())
    out_dim = (proj or hidden) * (2 if bidirectional else 1)
    embed = out_dim if tie else draw(st.integers(1, 64))
    return ModelSpec(
        cell=cell, vocab_size=draw(st.integers(1, 300)), embed_dim=embed, hidden_dim=hidden,
        num_layers=draw(st.integers(1, 4)), bidirectional=bidirectional, proj_size=proj,
        bias=draw(st.booleans()), tie_weights=tie,
    )


@settings(max_examples=60, deadline=None)
@given(specs())
def test_counted_total_equals_closed_form(spec):
    report = count_params(load_builtin(spec))
    assert report.total == expected_total(spec)
    assert report.trainable == report.total and report.frozen == 0
    assert report.checks_ok, [c for c in report.checks if not c.ok]
    assert sum(c.counted for c in report.checks) == report.total
    assert report.dtype_bytes == {"float32": 4 * report.total, "float16": 2 * report.total,
                                  "bfloat16": 2 * report.total, "int8": report.total}


@settings(max_examples=15, deadline=None)
@given(specs())
def test_meta_count_equals_a_real_model(spec):
    """The meta build holds the same tensors as a real one (torch's own dedup of tied weights)."""
    import torch

    from lstm_inspect.building import build_real

    real = build_real(spec, torch.device("cpu"))
    assert count_params(load_builtin(spec)).total == sum(p.numel() for p in real.parameters())


def test_default_model_components():
    spec = ModelSpec()
    report = count_params(load_builtin(spec))
    v, e, h = 50258, 768, 768
    lstm_layer = 4 * h * (e + h) + 8 * h
    assert report.total == v * e + 2 * lstm_layer + (h * v + v)
    shares = {s.name: s.count for s in report.components}
    assert shares == {"embedding": v * e, "recurrent": 2 * lstm_layer, "projection": h * v + v}
    textbook = [c.textbook for c in report.checks if c.component.startswith("recurrent")]
    assert textbook == [4 * ((e + h) * h + h)] * 2  # source document 002's formula, one bias


def test_tied_weights_counted_once():
    spec = ModelSpec(embed_dim=32, hidden_dim=32, vocab_size=100, tie_weights=True)
    report = count_params(load_builtin(spec))
    names = [t.name for t in report.tensors]
    assert "embed.weight" in names and "proj.weight" not in names
    tied = next(t for t in report.tensors if t.name == "embed.weight")
    assert tied.tied_to == ("proj.weight",)
    assert report.total == expected_total(spec)


def test_frozen_parameters_are_reported():
    loaded = load_builtin(ModelSpec(embed_dim=8, hidden_dim=8, vocab_size=20))
    loaded.module.embed.weight.requires_grad_(False)
    report = count_params(loaded)
    assert report.frozen == 20 * 8
    assert report.trainable == report.total - 160


def test_params_json_document():
    result = runner.invoke(app, ["params", "--json", "--hidden-dim", "64", "--embed-dim", "32", "--vocab-size", "1000"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    spec = ModelSpec(hidden_dim=64, embed_dim=32, vocab_size=1000)
    assert doc["schema"] == "lstm-inspect.params/1"
    assert doc["total_params"] == expected_total(spec)
    assert doc["trainable_params"] == doc["total_params"]
    assert doc["model"]["spec"]["hidden_dim"] == 64
    assert doc["checks_ok"] is True
    assert len(doc["tensors"]) == 1 + 8 + 2  # embedding, 2 layers x 4 tensors, proj weight + bias
    assert all(isinstance(t["count"], int) for t in doc["tensors"])
    assert abs(sum(c["ratio"] for c in doc["components"]) - 1.0) < 1e-9
    assert result.stderr == ""


def test_top_and_all_limit_the_table():
    args = ["params", "--num-layers", "8", "--hidden-dim", "16", "--embed-dim", "16", "--vocab-size", "50"]
    limited = runner.invoke(app, args + ["--top", "5"])
    assert limited.exit_code == 0, limited.output
    assert "more tensor(s) not shown" in limited.stdout
    assert "lstm.bias_hh_l7" not in limited.stdout
    full = runner.invoke(app, args + ["--all"])
    assert "lstm.bias_hh_l7" in full.stdout and "not shown" not in full.stdout


def test_source_script_spellings():
    result = runner.invoke(app, ["params", "--json", "--embed_dim", "512", "--hidden_dim", "512", "--num_layers", "3"])
    assert result.exit_code == 0, result.output
    spec = json.loads(result.stdout)["model"]["spec"]
    assert (spec["embed_dim"], spec["hidden_dim"], spec["num_layers"]) == (512, 512, 3)


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"hidden_dim": 0}, "--hidden-dim must be at least 1"),
        ({"embed_dim": -4}, "--embed-dim must be at least 1"),
        ({"num_layers": 5000}, "--num-layers must be at most"),
        ({"vocab_size": 2**30}, "--vocab-size must be at most"),
        ({"cell": "transformer"}, "--cell must be one of"),
        ({"proj_size": 768}, "--proj-size must be smaller than --hidden-dim"),
        ({"cell": "gru", "proj_size": 10}, "--proj-size only applies to --cell lstm"),
        ({"dropout": 1.0}, "--dropout must be in [0, 1)"),
        ({"dropout": -0.1}, "--dropout must be in [0, 1)"),
        ({"tie_weights": True, "embed_dim": 100}, "--tie-weights needs"),
        ({"tie_weights": True, "bidirectional": True}, "--tie-weights needs"),
    ],
)
def test_spec_validation(changes, fragment):
    """The library names its fields; the CLI prints them as the flags."""
    from lstm_inspect.errors import as_flags

    with pytest.raises(InvalidInput, match=None) as info:
        ModelSpec(**changes)
    field_text = fragment.replace("--", "").replace("-", "_")
    assert field_text in str(info.value) and "--" not in str(info.value)
    assert fragment in as_flags(str(info.value), info.value.fields)
