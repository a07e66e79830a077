"""--model sources: checkpoints (inferred and pruned), refused pickles, bad files, spec files, overrides."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lstm_inspect.analyses.params import count_params
from lstm_inspect.cli import app
from lstm_inspect.errors import AnalysisFailed
from lstm_inspect.sources import resolve_source
from lstm_inspect.sources.checkpoint import TensorInfo
from lstm_inspect.sources.layout import builtin_spec, read_layout
from lstm_inspect.spec import ModelSpec
from tests.sources_helpers import pruned_state_dict, save_builtin, stack_total

runner = CliRunner()


@st.composite
def specs(draw) -> ModelSpec:
    cell = draw(st.sampled_from(["lstm", "gru", "rnn"]))
    hidden = draw(st.integers(1, 12))
    proj = draw(st.integers(1, hidden - 1)) if cell == "lstm" and hidden > 1 and draw(st.booleans()) else 0
    bidirectional = draw(st.booleans())
    tie = draw(st.booleans())
    out_dim = (proj or hidden) * (2 if bidirectional else 1)
    embed = out_dim if tie else draw(st.integers(1, 12))
    return ModelSpec(cell=cell, vocab_size=draw(st.integers(1, 40)), embed_dim=embed, hidden_dim=hidden,
                     num_layers=draw(st.integers(1, 3)), bidirectional=bidirectional, proj_size=proj,
                     bias=draw(st.booleans()), tie_weights=tie)


@settings(max_examples=40, deadline=None)
@given(spec=specs(), fmt=st.sampled_from(["torch", "safetensors"]))
def test_spec_inferred_from_a_saved_checkpoint_is_the_spec_that_made_it(spec, fmt):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("m.pt" if fmt == "torch" else "m.safetensors")
        save_builtin(spec, path, fmt)
        loaded = resolve_source(str(path))
    assert loaded.spec == spec
    assert loaded.description["source"] == "checkpoint"
    assert loaded.description["format"] == fmt


@settings(max_examples=50, deadline=None)
@given(spec=specs())
def test_inference_from_shapes_alone_recovers_the_spec(spec):
    from lstm_inspect.building import build_meta

    module = build_meta(spec)
    infos = {name: TensorInfo(tuple(t.shape), "float32", id(t)) for name, t in module.state_dict(keep_vars=True).items()}
    assert builtin_spec(read_layout(infos)) == spec


def test_torch_and_safetensors_checkpoints_count_like_the_model(tmp_path):
    spec = ModelSpec(vocab_size=30, embed_dim=6, hidden_dim=5, num_layers=2, bidirectional=True)
    for fmt, name in (("torch", "a.pth"), ("safetensors", "a.safetensors")):
        save_builtin(spec, tmp_path / name, fmt)
        result = runner.invoke(app, ["params", "--json", "--model", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert doc["total_params"] == stack_total("lstm", 30, 6, [5, 5], bidirectional=True)
        assert doc["checks_ok"] is True and len(doc["checks"]) == 4
        assert doc["model"]["spec"]["hidden_dim"] == 5


def test_tied_weights_are_inferred_from_both_formats(tmp_path):
    spec = ModelSpec(vocab_size=20, embed_dim=8, hidden_dim=8, num_layers=1, tie_weights=True)
    for fmt, name in (("torch", "t.pt"), ("safetensors", "t.safetensors")):
        save_builtin(spec, tmp_path / name, fmt)
        loaded = resolve_source(str(tmp_path / name))
        assert loaded.spec.tie_weights is True
        assert count_params(loaded).total == stack_total("lstm", 20, 8, [8], tied=True)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_pruned_checkpoint_with_narrower_and_fewer_layers(tmp_path, bidirectional):
    widths = [16, 9]   # the original had 3 layers of 16; layer 1 was narrowed, layer 2 removed
    sd = pruned_state_dict("lstm", 40, 12, widths, bidirectional=bidirectional)
    path = tmp_path / "pruned.pt"
    torch.save(sd, path)
    loaded = resolve_source(str(path))
    assert loaded.spec is None
    assert type(loaded.module).__name__ == "RebuiltRecurrentModel"
    assert [l["hidden_size"] for l in loaded.description["layout"]["recurrent"][0]["layers"]] == widths
    assert count_params(loaded).total == stack_total("lstm", 40, 12, widths, bidirectional=bidirectional)

    # A real copy of the rebuilt model holds exactly the file's tensors, under the file's names.
    from lstm_inspect.sources.checkpoint import read_checkpoint
    from lstm_inspect.sources.rebuilt import RebuiltRecurrentModel

    infos = read_checkpoint(path)
    real = RebuiltRecurrentModel(read_layout(infos), infos)
    shown = {real.checkpoint_names.get(k, k): v for k, v in real.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in shown.items()} == {k: tuple(v.shape) for k, v in sd.items()}
    real.load_state_dict({k: sd[real.checkpoint_names.get(k, k)] for k in real.state_dict()}, strict=True)
    logits = real(torch.zeros(2, 5, dtype=torch.long))
    assert list(logits.shape) == [2, 5, 40]

    result = runner.invoke(app, ["structure", "--json", "--model", str(path), "--batch", "3", "--seq", "7"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tree"]["output_shape"] == [3, 7, 40]
    result = runner.invoke(app, ["params", "--json", "--model", str(path)])
    doc = json.loads(result.stdout)
    assert [t["name"] for t in doc["tensors"]] == list(sd)   # the file's names, in the file's order
    # Closed forms per layer, each with its own widths, written here: layer 1 takes layer 0's output.
    from tests.sources_helpers import direction_params

    d = 2 if bidirectional else 1
    expected = [40 * 12, d * direction_params("lstm", 12, 16, 0, True),
                d * direction_params("lstm", d * 16, 9, 0, True), d * 9 * 40 + 40]
    assert [c["expected"] for c in doc["checks"]] == expected
    assert [c["counted"] for c in doc["checks"]] == expected and doc["checks_ok"] is True


def test_pruned_state_dict_of_the_stack_model_round_trips(tmp_path):
    sd = pruned_state_dict("gru", 15, 4, [6, 3])
    path = tmp_path / "p.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    first = resolve_source(str(path))
    path2 = tmp_path / "again.pt"
    real = first.module.to_empty(device="cpu")
    torch.save(real.state_dict(), path2)   # the rebuilt model's own module names: rnn.<k>.weight_ih_l0
    again = resolve_source(str(path2))
    widths = [[l["hidden_size"] for l in b["layers"]] for b in again.description["layout"]["recurrent"]]
    assert widths == [[6], [3]]
    assert count_params(again).total == count_params(first).total == stack_total("gru", 15, 4, [6, 3])


def test_malicious_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "MARKER"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"embed.weight": torch.zeros(2, 2), "payload": Evil()}, path)
    assert not marker.exists()
    result = runner.invoke(app, ["params", "--model", str(path)])
    assert result.exit_code == 3
    assert "refused" in result.stderr and "not executed" in result.stderr
    assert "system" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_truncated_checkpoints_fail_with_exit_3(tmp_path):
    spec = ModelSpec(vocab_size=10, embed_dim=4, hidden_dim=4, num_layers=1)
    for fmt, name in (("torch", "a.pt"), ("safetensors", "a.safetensors")):
        full = tmp_path / name
        save_builtin(spec, full, fmt)
        cut = tmp_path / ("cut_" + name)
        data = full.read_bytes()
        cut.write_bytes(data[: len(data) // 2])
        result = runner.invoke(app, ["params", "--model", str(cut)])
        assert result.exit_code == 3, result.output
        assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
        assert "truncated or corrupt" in result.stderr


def test_state_dict_of_an_unrelated_model_is_counted_and_the_rest_explained(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3))
    path = tmp_path / "conv.pt"
    torch.save(net.state_dict(), path)
    result = runner.invoke(app, ["params", "--json", "--model", str(path)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["total_params"] == sum(p.numel() for p in net.parameters())
    assert [t["name"] for t in doc["tensors"]] == list(net.state_dict())
    for command in ("structure", "flops", "memory"):
        result = runner.invoke(app, [command, "--model", str(path)])
        assert result.exit_code == 3, result.output
        line = result.stderr.strip()
        assert len(line.splitlines()) == 1
        assert "Recognised:" in line and "0.weight [8, 3, 3, 3]" in line and "package.module:factory" in line


def test_a_pickled_whole_module_is_refused(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(AnalysisFailed, match="refused"):
        resolve_source(str(path))


def test_nested_state_dict_and_wrapper_prefix(tmp_path):
    from lstm_inspect.model import RecurrentLanguageModel

    spec = ModelSpec(vocab_size=9, embed_dim=3, hidden_dim=4, num_layers=2, cell="gru")
    sd = {"module." + k: v for k, v in RecurrentLanguageModel(spec).state_dict().items()}
    path = tmp_path / "nested.ckpt"
    torch.save({"epoch": 3, "state_dict": sd}, path)
    assert resolve_source(str(path)).spec == spec


@pytest.mark.parametrize("source, code", [
    ("{tmp}/missing.pt", 2),
    ("{tmp}/model.onnx", 2),        # exists, unsupported extension
    ("{tmp}/garbage.pt", 3),        # exists, not a checkpoint
    ("{tmp}/bad.json", 3),          # exists, not JSON
    ("hf:no_such_type", 2),
    ("nosuchpkg_xyz.mod:make", 2),
    ("hidden_dim=abc", 2),
    ("warp_factor=9", 2),
    ("what is this", 2),
])
def test_loading_errors_are_one_line_with_the_documented_code(tmp_path, source, code):
    (tmp_path / "model.onnx").write_bytes(b"\x00")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    (tmp_path / "bad.json").write_text("{ nope")
    result = runner.invoke(app, ["params", "--model", source.format(tmp=tmp_path)])
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_spec_files_json_and_toml_and_flags_override_them(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"hidden_dim": 10, "embed_dim": 6, "vocab_size": 50, "cell": "gru"}))
    (tmp_path / "m.toml").write_text('[model]\nhidden_dim = 10\nembed_dim = 6\nvocab_size = 50\ncell = "gru"\n')
    for name in ("m.json", "m.toml"):
        loaded = resolve_source(str(tmp_path / name))
        assert loaded.spec == ModelSpec(cell="gru", hidden_dim=10, embed_dim=6, vocab_size=50)
        result = runner.invoke(app, ["params", "--json", "--model", str(tmp_path / name), "--num-layers", "3"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["total_params"] == stack_total("gru", 50, 6, [10, 10, 10])
    (tmp_path / "bad.toml").write_text("hidden_dim = 10\nwarp = 1\n")
    result = runner.invoke(app, ["params", "--model", str(tmp_path / "bad.toml")])
    assert result.exit_code == 2 and "warp" in result.stderr


def test_overrides_source_and_flags():
    result = runner.invoke(app, ["params", "--json", "--model", "hidden_dim=7,num_layers=3,vocab_size=11,embed_dim=5",
                                 "--cell", "rnn"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["model"]["spec"]["cell"] == "rnn"
    assert doc["total_params"] == stack_total("rnn", 11, 5, [7, 7, 7])
    assert resolve_source("builtin").spec == ModelSpec()


def test_checkpoint_refuses_architecture_flags_but_takes_layout_ones(tmp_path):
    save_builtin(ModelSpec(vocab_size=10, embed_dim=4, hidden_dim=4, num_layers=1), tmp_path / "a.pt")
    result = runner.invoke(app, ["params", "--model", str(tmp_path / "a.pt"), "--hidden-dim", "9"])
    assert result.exit_code == 2 and "--hidden-dim" in result.stderr
    result = runner.invoke(app, ["structure", "--json", "--model", str(tmp_path / "a.pt"), "--no-batch-first",
                                 "--batch", "2", "--seq", "5"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["input_shape"] == [5, 2]
    result = runner.invoke(app, ["params", "--model", "hf:gpt2", "--bidirectional"])
    assert result.exit_code == 2 and "--bidirectional" in result.stderr


@settings(max_examples=30, deadline=None)
@given(cell=st.sampled_from(["lstm", "gru", "rnn"]), widths=st.lists(st.integers(1, 9), min_size=1, max_size=4),
       bidirectional=st.booleans(), vocab=st.integers(1, 30), embed=st.integers(1, 9))
def test_pruned_stacks_are_inferred_layer_by_layer(cell, widths, bidirectional, vocab, embed):
    from lstm_inspect.sources.rebuilt import RebuiltRecurrentModel

    sd = pruned_state_dict(cell, vocab, embed, widths, bidirectional=bidirectional)
    infos = {name: TensorInfo(tuple(t.shape), "float32", id(t)) for name, t in sd.items()}
    layout = read_layout(infos)
    d = 2 if bidirectional else 1
    (block,) = layout.blocks
    assert layout.runnable and block.cell == cell and block.bidirectional == bidirectional
    assert layout.embedding.num_embeddings == vocab and layout.head.out_features == vocab
    assert [l.hidden_size for l in block.layers] == widths
    assert [l.input_size for l in block.layers] == [embed] + [d * w for w in widths[:-1]]
    assert block.uniform == (len(set(widths)) == 1)
    with torch.device("meta"):
        model = RebuiltRecurrentModel(layout, infos)
    assert sum(p.numel() for p in model.parameters()) == stack_total(cell, vocab, embed, widths, bidirectional=bidirectional)


def test_inconsistent_shapes_are_explained():
    sd = pruned_state_dict("lstm", 10, 4, [6, 5])
    infos = {name: TensorInfo(tuple(t.shape), "float32", id(t)) for name, t in sd.items()}

    def problems(changed: dict) -> str:
        layout = read_layout(changed)
        assert not layout.runnable
        return " | ".join(layout.problems)

    assert "rnn: layer 1 takes inputs 7 wide, but layer 0 outputs 6" in problems(
        dict(infos, **{"rnn.weight_ih_l1": TensorInfo((20, 7), "float32")}))
    assert "proj.weight [10, 6]" in problems(dict(infos, **{"proj.weight": TensorInfo((10, 6), "float32")}))
    assert "weight_hh_l0 is missing" in problems({k: v for k, v in infos.items() if k != "rnn.weight_hh_l0"})
    gru = pruned_state_dict("gru", 10, 4, [6])
    mixed = dict(infos, **{k.replace("_l0", "_l2"): TensorInfo(tuple(v.shape), "float32")
                           for k, v in gru.items() if k.startswith("rnn.")})
    assert "rnn:" in problems(mixed)
