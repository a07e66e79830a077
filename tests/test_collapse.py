"""Identical consecutive blocks as one row: short first screens, full detail behind --all/--verbose, JSON unchanged."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from lstm_inspect.cli import app
from lstm_inspect.render.groups import group_blocks, index_runs
from lstm_inspect.units import human_count

runner = CliRunner()
MODELS = ["hf:gpt2", "hf:llama", "hf:xlstm"]


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _pruned_llama(tmp_path):
    """The default Llama with every layer pruned alike (fewer KV heads, a narrower MLP): a config directory."""
    from transformers import LlamaConfig

    config = LlamaConfig()
    config.num_key_value_heads //= 2
    config.intermediate_size //= 2
    folder = tmp_path / "pruned_llama"
    folder.mkdir()
    config.to_json_file(folder / "config.json")
    return config, folder


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("command", ["flops", "structure"])
def test_default_view_fits_80_lines_and_all_expands(command, model):
    short = _run("--width", "80", command, "--model", model)
    assert len(short.splitlines()) <= 80
    assert "identical)" in short
    full = _run("--width", "200", command, "--model", model, "--all")
    assert len(full.splitlines()) > 80
    assert "identical)" not in full
    # --all, like the JSON, names every module; the JSON is the same whichever view is asked for.
    if model == "hf:gpt2":   # the JSON is the same whichever view is asked for
        doc = json.loads(_run(command, "--model", model, "--json"))
        assert json.loads(_run(command, "--model", model, "--json", "--all")) == doc
    if command == "flops" and model == "hf:gpt2":
        for m in doc["modules"]:
            assert m["name"] in full


def test_collapsed_row_carries_the_per_block_and_total_figures():
    doc = json.loads(_run("flops", "--model", "hf:gpt2", "--json"))
    blocks = [m for m in doc["modules"] if m["name"].startswith("transformer.h.")]
    count = len({m["name"].split(".")[2] for m in blocks})
    per_block = sum(m["macs"] for m in blocks if m["name"].startswith("transformer.h.0."))
    text = _run("--width", "200", "flops", "--model", "hf:gpt2")
    assert f"transformer.h.0–{count - 1} (×{count}, identical)" in text
    assert f"{per_block:,}" in text and f"{sum(m['macs'] for m in blocks):,}" in text


def test_compare_of_uniformly_pruned_llama_is_one_layer_row(tmp_path):
    config, folder = _pruned_llama(tmp_path)
    layers = config.num_hidden_layers
    short = _run("--width", "80", "compare", "hf:llama", str(folder))
    assert len(short.splitlines()) <= 80
    assert f"0–{layers - 1} (×{layers}," in short
    verbose = _run("--width", "200", "compare", "hf:llama", str(folder), "--verbose")
    rows = [line for line in verbose.splitlines() if re.match(r"│ \d+ ", line)]
    assert len(rows) == layers
    assert json.loads(_run("compare", "hf:llama", str(folder), "--json"))["layers"] == \
        json.loads(_run("compare", "hf:llama", str(folder), "--json", "--verbose"))["layers"]


@pytest.mark.parametrize("width", [40, 80, 200])
def test_no_token_is_split_and_no_number_cut(width):
    doc = json.loads(_run("flops", "--model", "hf:gpt2", "--json"))
    text = _run("--width", str(width), "flops", "--model", "hf:gpt2")
    assert max(len(line) for line in text.splitlines()) <= width
    words = text.split()
    for n, unit in ((doc["macs"], "MACs"), (doc["flops"], "FLOPs"), (doc["training"]["flops"], "FLOPs")):
        assert any(human_count(n, unit) in line for line in text.splitlines())
        # the exact figure is whole, or its column is named as not shown (never cut)
        assert f"{n:,}" in words or "(not shown at this width: exact" in " ".join(words)
    tree = json.loads(_run("structure", "--model", "hf:gpt2", "--json"))["tree"]
    text = _run("--width", str(width), "structure", "--model", "hf:gpt2")
    assert max(len(line) for line in text.splitlines()) <= width
    head = next(c for c in tree["children"] if c["name"] == "lm_head")["output_shape"]
    assert "[" + ",".join(map(str, head)) + "]" in text.split()   # one whole token, never [1, ⏎32, ...]


def test_a_block_that_differs_stays_on_its_own():
    rows = [("h.0.a", 1), ("h.1.a", 1), ("h.2.a", 5), ("h.3.a", 1), ("h.4.a", 1), ("head", 9)]
    groups = group_blocks(rows, lambda r: r[0], lambda r: r[1])
    assert [(g.first, g.last, g.count) for g in groups] == [(0, 1, 2), (2, 2, 1), (3, 4, 2), (0, 0, 0)]
    assert groups[0].label == "h.0–1 (×2, identical)" and groups[0].total(lambda r: r[1]) == 2
    assert [len(g.rows) for g in group_blocks(rows, lambda r: r[0], lambda r: r[1], expand=True)] == [1] * 6


def test_layer_runs_need_consecutive_indices():
    layers = [(0, "x"), (1, "x"), (3, "x"), (4, "y")]
    assert index_runs(layers, lambda l: l[0], lambda l: l[1]) == [[(0, "x"), (1, "x")], [(3, "x")], [(4, "y")]]
