"""compare: source document 003's JSON checked field by field against closed forms written here."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from lstm_inspect.cli import app
from tests.sources_helpers import direction_params, pruned_state_dict, stack_total

runner = CliRunner()
ORIGINAL = "vocab_size=50,embed_dim=8,hidden_dim=12,num_layers=3"


def delta(original: int, pruned: int) -> dict:
    reduced = original - pruned
    return {"original": original, "pruned": pruned, "reduced": reduced,
            "reduction_ratio": reduced / original if original else 0.0}


@pytest.fixture
def pruned_path(tmp_path):
    """The original's layer 1 narrowed from 12 to 7, layer 2 removed entirely."""
    path = tmp_path / "pruned.pt"
    torch.save(pruned_state_dict("lstm", 50, 8, [12, 7]), path)
    return path


def test_known_pair_field_by_field(pruned_path):
    result = runner.invoke(app, ["compare", ORIGINAL, str(pruned_path), "--name-a", "original model",
                                 "--name-b", "pruned model", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["schema"] == "lstm-inspect.compare/1"
    assert doc["original_name"] == "original model" and doc["pruned_name"] == "pruned model"
    assert [m["label"] for m in doc["models"]] == ["original model", "pruned model"]

    assert doc["total_params"] == delta(stack_total("lstm", 50, 8, [12, 12, 12]), stack_total("lstm", 50, 8, [12, 7]))
    l0, l1_orig, l1_pruned = direction_params("lstm", 8, 12, 0, True), direction_params("lstm", 12, 12, 0, True), \
        direction_params("lstm", 12, 7, 0, True)
    l2_orig = direction_params("lstm", 12, 12, 0, True)
    assert doc["layer_params"] == delta(l0 + l1_orig + l2_orig, l0 + l1_pruned)
    assert doc["embedding_params"] == delta(50 * 8, 50 * 8)
    assert doc["lm_head_params"] == delta(12 * 50 + 50, 7 * 50 + 50)
    components = {c["name"]: c for c in doc["components"]}
    assert components["recurrent"] == {"name": "recurrent"} | delta(l0 + l1_orig + l2_orig, l0 + l1_pruned)

    layers = doc["layers"]
    assert [(l["layer_idx"], l["direction"]) for l in layers] == [(0, "forward"), (1, "forward"), (2, "forward")]
    assert layers[0]["total"] == delta(l0, l0) and layers[0]["is_zero_layer"] is False
    assert layers[1]["total"] == delta(l1_orig, l1_pruned)
    assert layers[1]["hidden_size"] == {"original": 12, "pruned": 7}
    assert layers[2]["total"] == delta(l2_orig, 0) and layers[2]["is_zero_layer"] is True
    assert doc["zero_layers"] == [2]
    changed = {c["name"]: (c["original"], c["pruned"]) for c in doc["changed_hyperparameters"]}
    assert changed == {"hidden_dim": (12, [12, 7]), "num_layers": (3, 2)}
    assert len(doc["comparisons"]) == 1 and doc["comparisons"][0]["total_params"] == doc["total_params"]

    console = runner.invoke(app, ["--width", "200", "compare", ORIGINAL, str(pruned_path)])
    assert console.exit_code == 0, console.output
    assert "layers removed entirely (1): 2" in console.stdout
    assert "hidden_size 12 → 7" in console.stdout
    reduced = stack_total("lstm", 50, 8, [12, 12, 12]) - stack_total("lstm", 50, 8, [12, 7])
    assert f"{reduced:,}" in console.stdout


def _llama_config(path, heads, kv, inter, layers):
    from transformers import LlamaConfig

    path.mkdir()
    LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=inter, num_hidden_layers=layers,
                num_attention_heads=heads, num_key_value_heads=kv, head_dim=8).to_json_file(path / "config.json")
    return path


def test_decoder_pair_heads_intermediate_and_zero_layer(tmp_path):
    a = _llama_config(tmp_path / "a", 4, 2, 64, 3)
    b = _llama_config(tmp_path / "b", 2, 1, 48, 2)
    result = runner.invoke(app, ["compare", str(a), str(b), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    h, d = 32, 8

    def attention(n, kv):
        return 2 * h * n * d + 2 * h * kv * d

    def layer(n, kv, inter):
        return attention(n, kv) + 3 * h * inter + 2 * h

    first = doc["layers"][0]
    assert first["total"] == delta(layer(4, 2, 64), layer(2, 1, 48))
    assert {k: first["attention"][k] for k in ("original", "pruned")} == {"original": attention(4, 2),
                                                                          "pruned": attention(2, 1)}
    assert first["attention"]["num_heads"] == {"original": 4, "pruned": 2}
    assert first["attention"]["num_kv_heads"] == {"original": 2, "pruned": 1}
    assert first["mlp"]["intermediate_size"] == {"original": 64, "pruned": 48}
    assert first["mlp"]["original"] == 3 * h * 64 and first["mlp"]["pruned"] == 3 * h * 48
    assert doc["layers"][2]["is_zero_layer"] is True and doc["zero_layers"] == [2]
    assert doc["layers"][2]["attention"]["num_heads"] == {"original": 4, "pruned": 0}
    assert doc["layer_params"] == delta(3 * layer(4, 2, 64), 2 * layer(2, 1, 48))
    total = lambda n, kv, i, L: 2 * 100 * h + L * layer(n, kv, i) + h   # untied head, final norm
    assert doc["total_params"] == delta(total(4, 2, 64, 3), total(2, 1, 48, 2))


def test_more_than_two_sources_one_column_each_against_the_first(tmp_path):
    small = "vocab_size=20,embed_dim=4,hidden_dim=6,num_layers=2"
    b, c = small.replace("hidden_dim=6", "hidden_dim=3"), small.replace("num_layers=2", "num_layers=1")
    result = runner.invoke(app, ["compare", small, b, c, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert "total_params" not in doc
    assert [p["pruned_name"] for p in doc["comparisons"]] == [b, c]
    assert all(p["original_name"] == small for p in doc["comparisons"])
    base = stack_total("lstm", 20, 4, [6, 6])
    assert doc["comparisons"][0]["total_params"] == delta(base, stack_total("lstm", 20, 4, [3, 3]))
    assert doc["comparisons"][1]["total_params"] == delta(base, stack_total("lstm", 20, 4, [6]))
    assert doc["comparisons"][1]["zero_layers"] == [1]
    console = runner.invoke(app, ["compare", small, b, c])
    assert console.exit_code == 0 and console.stdout.count("change") >= 2


def test_a_larger_second_model_gives_a_negative_reduction():
    result = runner.invoke(app, ["compare", "vocab_size=20,embed_dim=4,hidden_dim=3",
                                 "vocab_size=20,embed_dim=4,hidden_dim=6", "--json"])
    doc = json.loads(result.stdout)
    assert doc["total_params"]["reduced"] < 0 and doc["total_params"]["reduction_ratio"] < 0


def test_output_file_is_the_json_document(tmp_path, pruned_path):
    out = tmp_path / "comparison.json"
    result = runner.invoke(app, ["compare", ORIGINAL, str(pruned_path), "--json", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == json.loads(result.stdout)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    result = runner.invoke(app, ["compare", ORIGINAL, str(pruned_path), "--output", str(tmp_path / "no" / "x.json")])
    assert result.exit_code == 2 and "--output" in result.stderr


def test_compare_needs_two_sources_and_valid_ones(tmp_path):
    result = runner.invoke(app, ["compare", "builtin"])
    assert result.exit_code == 2 and "at least two" in result.stderr
    result = runner.invoke(app, ["compare", "builtin", str(tmp_path / "missing.pt")])
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_compare_json_matches_its_schema(pruned_path):
    from tests.schema_helpers import validate

    doc = json.loads(runner.invoke(app, ["compare", ORIGINAL, str(pruned_path), "--json"]).stdout)
    validate(doc)
    import jsonschema

    doc["total_params"]["original"] = "many"
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)
