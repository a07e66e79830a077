"""Transformers checkpoints as they are: a directory's weights, not its config, fix the shapes.

A tiny Llama is saved with ``save_pretrained``; its pruned copy keeps the original config.json while
layer 1 has 2 query heads : 1 key/value head (of 4:2) and 40 intermediate units (of 64), and layer 2
has no attention or MLP weights at all (source document 003's ZeroAttention/ZeroMLP layer). The pruned
model is also built for real here, so every expected number comes from a module or a closed form
written below, never from the tool.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lstm_inspect.cli import app

runner = CliRunner()

VOCAB, HIDDEN, LAYERS, HEADS, KV_HEADS, INTER = 100, 32, 3, 4, 2, 64
HEAD_DIM = HIDDEN // HEADS
PRUNED_LAYER, PRUNED_HEADS, PRUNED_KV, PRUNED_INTER = 1, 2, 1, 40
ZERO_LAYER = 2
FORMATS = ("safetensors", "sharded", "bin", "bin-sharded")


def _config(**extra):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                       num_key_value_heads=KV_HEADS, intermediate_size=INTER, **extra)


def _sliced(linear, rows: int | None = None, cols: int | None = None):
    """A smaller nn.Linear holding the first ``rows`` output / ``cols`` input units (whole heads, whole groups)."""
    from torch import nn

    weight = linear.weight.detach()
    weight = weight[:rows] if rows is not None else weight
    weight = weight[:, :cols] if cols is not None else weight
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    new.weight = nn.Parameter(weight.clone())
    return new


def _pruned_model(model):
    """What a pruning tool leaves: layer 1 at 2Q:1KV (query heads 0-1 share kv head 0) and 40 units, layer 2 emptied."""
    import torch
    from torch import nn

    class ZeroAttention(nn.Module):
        def forward(self, hidden_states, *args, **kwargs):
            return torch.zeros_like(hidden_states), None

    class ZeroMLP(nn.Module):
        def forward(self, x):
            return torch.zeros_like(x)

    attn = model.model.layers[PRUNED_LAYER].self_attn
    attn.q_proj = _sliced(attn.q_proj, rows=PRUNED_HEADS * HEAD_DIM)
    attn.k_proj = _sliced(attn.k_proj, rows=PRUNED_KV * HEAD_DIM)
    attn.v_proj = _sliced(attn.v_proj, rows=PRUNED_KV * HEAD_DIM)
    attn.o_proj = _sliced(attn.o_proj, cols=PRUNED_HEADS * HEAD_DIM)
    attn.num_key_value_groups = PRUNED_HEADS // PRUNED_KV
    mlp = model.model.layers[PRUNED_LAYER].mlp
    mlp.gate_proj = _sliced(mlp.gate_proj, rows=PRUNED_INTER)
    mlp.up_proj = _sliced(mlp.up_proj, rows=PRUNED_INTER)
    mlp.down_proj = _sliced(mlp.down_proj, cols=PRUNED_INTER)
    mlp.intermediate_size = PRUNED_INTER
    model.model.layers[ZERO_LAYER].self_attn = ZeroAttention()
    model.model.layers[ZERO_LAYER].mlp = ZeroMLP()
    return model


def _unique_numel(model) -> int:
    return sum(p.numel() for p in model.parameters())   # parameters() yields a tied tensor once


def _save_bin(state_dict: dict, directory: Path, *, shards: int) -> None:
    """``pytorch_model.bin`` (or shards and their index) as older transformers wrote them."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    names = list(state_dict)
    if shards == 1:
        torch.save({k: state_dict[k].contiguous() for k in names}, directory / "pytorch_model.bin")
        return
    weight_map = {}
    for i in range(shards):
        part = names[i::shards]
        file = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        torch.save({k: state_dict[k].contiguous() for k in part}, directory / file)
        weight_map.update({k: file for k in part})
    (directory / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def _save(model, directory: Path, fmt: str) -> Path:
    """``model`` in ``directory`` as format ``fmt``; the config.json is always the (unpruned) one ``model.config`` holds."""
    if fmt == "safetensors":
        model.save_pretrained(directory)
    elif fmt == "sharded":
        model.save_pretrained(directory, max_shard_size="20KB")
        assert (directory / "model.safetensors.index.json").is_file()
    else:
        _save_bin(model.state_dict(), directory, shards=1 if fmt == "bin" else 3)
        model.config.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def models():
    """The original and the pruned model, built for real (seeded weights)."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    original = LlamaForCausalLM(_config())
    pruned = LlamaForCausalLM(_config())
    pruned.load_state_dict(original.state_dict())
    return original, _pruned_model(pruned)


@pytest.fixture(scope="module")
def dirs(models, tmp_path_factory):
    """``{format: (original_dir, pruned_dir)}``."""
    root = tmp_path_factory.mktemp("hf_weights")
    original, pruned = models
    return {fmt: (_save(original, root / fmt / "original", fmt), _save(pruned, root / fmt / "pruned", fmt))
            for fmt in FORMATS}


def _json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _linear_macs_per_token(layers: list[tuple[int, int, int]]) -> int:
    """Σ in×out of every Linear for one token: per layer q h·(n·d), k and v h·(kv·d), o (n·d)·h, gate/up/down h·i; lm_head h·V."""
    total = HIDDEN * VOCAB
    for heads, kv, inter in layers:
        total += HIDDEN * heads * HEAD_DIM + 2 * HIDDEN * kv * HEAD_DIM + heads * HEAD_DIM * HIDDEN + 3 * HIDDEN * inter
    return total


def _macs(layers: list[tuple[int, int, int]], batch: int, seq: int) -> int:
    """The Linears' MACs for every token, plus each layer's attention products Q·Kᵀ and A·V: n·T·T·d twice
    per sequence (every query head attends; a layer pruned to 0 heads has none)."""
    attention = sum(heads * seq * seq * 2 * HEAD_DIM for heads, _kv, _inter in layers)
    return batch * seq * _linear_macs_per_token(layers) + batch * attention


ORIGINAL_LAYERS = [(HEADS, KV_HEADS, INTER)] * LAYERS
PRUNED_LAYERS = [(HEADS, KV_HEADS, INTER), (PRUNED_HEADS, PRUNED_KV, PRUNED_INTER), (0, 0, 0)]


def test_the_real_pruned_model_runs(models):
    """The test's own pruned model is a working model (the reference the tool is checked against)."""
    import torch

    original, pruned = models
    logits = pruned(torch.zeros(1, 5, dtype=torch.long)).logits
    assert tuple(logits.shape) == (1, 5, VOCAB)
    assert _unique_numel(pruned) < _unique_numel(original)


@pytest.mark.parametrize("fmt", FORMATS)
def test_params_follow_the_weights(dirs, models, fmt):
    original, pruned = models
    original_dir, pruned_dir = dirs[fmt]
    doc = _json("params", "--model", str(pruned_dir))
    assert doc["total_params"] == _unique_numel(pruned)
    assert _json("params", "--model", str(original_dir))["total_params"] == _unique_numel(original)
    layers = doc["layers"]["layers"]
    got = [(l["attention"]["num_heads"], l["attention"]["num_kv_heads"], l["mlp"]["intermediate_size"]) for l in layers]
    assert got == PRUNED_LAYERS
    assert [l["is_zero_layer"] for l in layers] == [i == ZERO_LAYER for i in range(LAYERS)]
    assert layers[ZERO_LAYER]["attention"]["type"] == "ZeroAttention" and layers[ZERO_LAYER]["mlp"]["type"] == "ZeroMLP"
    for i, layer in enumerate(layers):
        block = pruned.model.layers[i]
        assert layer["total"] == _unique_numel(block)
        assert layer["attention"]["total"] == _unique_numel(block.self_attn)
        assert layer["mlp"]["total"] == _unique_numel(block.mlp)
    # the names shown are the file's
    assert [t["name"] for t in doc["tensors"]] == [n for n, _ in pruned.named_parameters()]
    assert doc["model"]["weights"]["format"] == ("safetensors" if fmt in ("safetensors", "sharded") else "torch")
    assert doc["model"]["source"] == "transformers"
    note = next(n for n in doc["notes"] if n.startswith("weights differ from config.json"))
    assert f"num_attention_heads {HEADS} → {PRUNED_HEADS} (layer {PRUNED_LAYER})" in note
    assert f"num_key_value_heads {KV_HEADS} → {PRUNED_KV} (layer {PRUNED_LAYER})" in note
    assert f"intermediate_size {INTER} → {PRUNED_INTER} (layer {PRUNED_LAYER})" in note
    assert f"layer {ZERO_LAYER}" in note.split("intermediate_size")[1]


def test_sharded_files_are_listed(dirs):
    doc = _json("params", "--model", str(dirs["sharded"][1]))
    weights = doc["model"]["weights"]
    index = json.loads((dirs["sharded"][1] / "model.safetensors.index.json").read_text())
    assert weights["index"] == "model.safetensors.index.json"
    assert weights["files"] == sorted(set(index["weight_map"].values())) and len(weights["files"]) > 1


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_flops_follow_the_weights(dirs, fmt):
    batch, seq = 2, 7
    for directory, layers in zip(dirs[fmt], (ORIGINAL_LAYERS, PRUNED_LAYERS)):
        doc = _json("flops", "--model", str(directory), "--batch", str(batch), "--seq", str(seq))
        assert doc["macs"] == _macs(layers, batch, seq)
    assert any("weights differ from config.json" in n for n in doc["notes"])


def test_structure_and_memory_run_on_the_pruned_weights(dirs):
    pruned_dir = dirs["safetensors"][1]
    doc = _json("structure", "--model", str(pruned_dir), "--seq", "5")
    attn = doc["tree"]["children"][0]["children"][1]["children"][PRUNED_LAYER]["children"][0]
    q_proj = attn["children"][0]
    assert q_proj["name"] == "q_proj" and q_proj["output_shape"] == [1, 5, PRUNED_HEADS * HEAD_DIM]
    assert any("weights differ from config.json" in n for n in doc["notes"])
    doc = _json("memory", "--model", str(pruned_dir), "--method", "estimate", "--batch-sizes", "1", "--seq-lens", "8")
    assert doc["cells"][0]["status"] == "ok"
    assert any("weights differ from config.json" in n for n in doc["notes"])


def _delta(original: int, pruned: int) -> dict:
    return {"original": original, "pruned": pruned, "reduced": original - pruned,
            "reduction_ratio": (original - pruned) / original}


@pytest.mark.parametrize("fmt", FORMATS)
def test_compare_original_with_pruned(dirs, models, fmt):
    original, pruned = models
    doc = _json("compare", *(str(d) for d in dirs[fmt]))
    pair = doc["comparisons"][0]
    assert pair["total_params"] == _delta(_unique_numel(original), _unique_numel(pruned))
    for i, layer in enumerate(pair["layers"]):
        a, b = original.model.layers[i], pruned.model.layers[i]
        assert layer["total"] == _delta(_unique_numel(a), _unique_numel(b))
        assert layer["attention"]["original"] == _unique_numel(a.self_attn)
        assert layer["attention"]["pruned"] == _unique_numel(b.self_attn)
        assert layer["mlp"]["pruned"] == _unique_numel(b.mlp)
        heads, kv, inter = PRUNED_LAYERS[i]
        assert layer["attention"]["num_heads"] == {"original": HEADS, "pruned": heads}
        assert layer["attention"]["num_kv_heads"] == {"original": KV_HEADS, "pruned": kv}
        assert layer["mlp"]["intermediate_size"] == {"original": INTER, "pruned": inter}
        assert layer["is_zero_layer"] is (i == ZERO_LAYER)
    assert pair["zero_layers"] == [ZERO_LAYER]
    assert pair["macs"]["pruned"] == _macs(PRUNED_LAYERS, 1, 32)
    assert any(n.startswith("pruned: weights differ from config.json") for n in pair["notes"])


def test_compare_human_output_shows_the_heads_read_from_the_weights(dirs):
    result = runner.invoke(app, ["compare", *(str(d) for d in dirs["safetensors"]), "--width", "200"])
    assert result.exit_code == 0, result.output
    assert f"{HEADS}Q:{KV_HEADS}KV → {PRUNED_HEADS}Q:{PRUNED_KV}KV" in result.stdout
    assert f"layers removed entirely (1): {ZERO_LAYER}" in result.stdout
    assert f"{ZERO_LAYER} [zero]" in result.stdout   # a label, not Rich markup


def test_an_original_directory_is_its_config(dirs):
    """Weights that agree with the config change nothing but the description."""
    original_dir = dirs["safetensors"][0]
    for command in (["params"], ["flops", "--seq", "6"]):
        with_weights = _json(*command, "--model", str(original_dir))
        alone = _json(*command, "--model", str(original_dir / "config.json"))
        assert with_weights.pop("model").pop("weights") == {"format": "safetensors", "files": ["model.safetensors"]}
        alone.pop("model")
        assert with_weights == alone


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_a_weights_file_beside_its_config(dirs, models, fmt):
    name = "model.safetensors" if fmt == "safetensors" else "pytorch_model.bin"
    doc = _json("params", "--model", str(dirs[fmt][1] / name))
    assert doc["total_params"] == _unique_numel(models[1])
    assert doc["model"]["weights"]["files"] == [name]
    assert [t["name"] for t in doc["tensors"]] == [n for n, _ in models[1].named_parameters()]


def test_tied_embeddings_are_not_missing(tmp_path):
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(_config(tie_word_embeddings=True))
    model.save_pretrained(tmp_path / "tied")
    doc = _json("params", "--model", str(tmp_path / "tied"))
    assert doc["total_params"] == _unique_numel(model)


def _rewrite(source: Path, target: Path, edit) -> Path:
    """A copy of ``source`` (single safetensors) whose state_dict went through ``edit``."""
    from safetensors.torch import load_file, save_file

    target.mkdir(parents=True)
    shutil.copy(source / "config.json", target / "config.json")
    state = edit(load_file(source / "model.safetensors"))
    save_file({k: v.contiguous() for k, v in state.items()}, target / "model.safetensors", metadata={"format": "pt"})
    return target


def test_tensors_the_model_has_not_are_an_error(dirs, tmp_path):
    def rename(state):
        state["model.final_norm.weight"] = state.pop("model.norm.weight")
        return state

    bad = _rewrite(dirs["safetensors"][0], tmp_path / "bad", rename)
    result = runner.invoke(app, ["params", "--model", str(bad)])
    assert result.exit_code == 3, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "model.final_norm.weight" in result.stderr


def test_a_partly_missing_attention_is_an_error(dirs, tmp_path):
    def drop(state):
        del state["model.layers.0.self_attn.q_proj.weight"]
        return state

    bad = _rewrite(dirs["safetensors"][0], tmp_path / "bad", drop)
    result = runner.invoke(app, ["params", "--model", str(bad)])
    assert result.exit_code == 3, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert "lacks" in result.stderr and "model.layers.0.self_attn.q_proj.weight" in result.stderr


def test_query_heads_not_a_multiple_of_kv_heads(dirs, tmp_path):
    """26Q:6KV-like (here 3Q:2KV): counted from the shapes; no forward pass, said in one line."""
    p = "model.layers.0.self_attn."

    def three_heads(state):
        state[p + "q_proj.weight"] = state[p + "q_proj.weight"][: 3 * HEAD_DIM]
        state[p + "o_proj.weight"] = state[p + "o_proj.weight"][:, : 3 * HEAD_DIM]
        return state

    original_dir = dirs["safetensors"][0]
    odd = _rewrite(original_dir, tmp_path / "odd", three_heads)
    from safetensors import safe_open

    with safe_open(str(odd / "model.safetensors"), framework="pt") as handle:
        expected = sum(math.prod(handle.get_slice(k).get_shape()) for k in handle.keys())
    doc = _json("params", "--model", str(odd))
    assert doc["total_params"] == expected
    assert doc["layers"]["layers"][0]["attention"]["num_heads"] == 3
    assert doc["layers"]["layers"][0]["attention"]["num_kv_heads"] == KV_HEADS
    structure = _json("structure", "--model", str(odd))
    assert any("not a whole multiple" in n for n in structure["notes"])
    result = runner.invoke(app, ["flops", "--model", str(odd)])
    assert result.exit_code == 3
    assert len(result.stderr.strip().splitlines()) == 1 and "3 query heads" in result.stderr
    pair = _json("compare", str(original_dir), str(odd))["comparisons"][0]
    assert pair["layers"][0]["attention"]["num_heads"] == {"original": HEADS, "pruned": 3}
    assert pair["macs"] is None
    result = runner.invoke(app, ["compare", str(original_dir), str(odd), "--width", "200"])
    assert result.exit_code == 0 and "4Q:2KV → 3Q:2KV" in result.stdout


def test_a_config_alone_still_works(tmp_path):
    _config().save_pretrained(tmp_path / "bare")
    doc = _json("params", "--model", str(tmp_path / "bare"))
    assert "weights" not in doc["model"]
    assert not any("weights differ" in n for n in doc["notes"])


def test_a_sources_notes_reach_every_report():
    import dataclasses

    from lstm_inspect.analyses.compare import compare_models
    from lstm_inspect.analyses.flops import count_flops
    from lstm_inspect.analyses.memory import sweep_memory
    from lstm_inspect.analyses.params import count_params
    from lstm_inspect.analyses.structure import describe_structure
    from lstm_inspect.sources import resolve_source

    plain = resolve_source("embed_dim=8,hidden_dim=8,vocab_size=50")
    noted = dataclasses.replace(plain, notes=("from the source",))
    assert "from the source" in count_params(noted).notes
    assert "from the source" in describe_structure(noted, seq=4).notes
    assert "from the source" in count_flops(noted, seq=4).notes
    assert "from the source" in sweep_memory(noted, batch_sizes=[1], seq_lens=[4], method="estimate").notes
    pair = compare_models([plain, noted], ["a", "b"], costs=False).comparisons[0]
    assert "b: from the source" in pair.notes
    assert "from the source" not in count_params(plain).notes
