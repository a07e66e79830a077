"""Checkpoints of models written the way their authors write them (``tests/user_models.py``), saved as they
save them: every command analyses the model on disk, under the file's own names.

Each count is checked against ``sum(p.numel())`` of the real model and each MAC figure against a closed
form written here: per recurrent layer, direction and cell step ``G·H·(I + H)``; a head ``in × out`` per
row it runs on (every step for a vocabulary head, the last step for source document 001's regression head).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_model
from typer.testing import CliRunner

from lstm_inspect.cli import app
from tests import user_models as um

runner = CliRunner()
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def direction_params(cell: str, inp: int, hidden: int, bias: bool = True) -> int:
    g = GATES[cell]
    return g * hidden * (inp + hidden) + (2 * g * hidden if bias else 0)


def layer_macs(cell: str, inp: int, hidden: int, steps: int, directions: int = 1) -> int:
    return directions * steps * GATES[cell] * hidden * (inp + hidden)


def run_json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def save(model: torch.nn.Module, path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_model(model, str(path))
    else:
        torch.save(model.state_dict(), path)
    return path


# ---- source document 000's SimpleLSTMModel and a pruned copy --------------------------------------------


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_source_script_state_dict_is_the_builtin_model_names_included(tmp_path, suffix):
    model = um.SimpleLSTMModel(vocab_size=60, embed_dim=8, hidden_dim=6, num_layers=2)
    path = save(model, tmp_path / f"simple{suffix}")
    doc = run_json("params", "--model", str(path))
    assert doc["total_params"] == um.unique_params(model)
    assert [t["name"] for t in doc["tensors"]] == list(model.state_dict())
    assert doc["model"]["spec"]["cell"] == "lstm" and doc["checks_ok"] is True
    assert doc["embedding_params"] == 60 * 8 and doc["lm_head_params"] == 6 * 60 + 60
    layers = doc["layers"]
    assert layers["embedding_params"] == 60 * 8 and layers["lm_head_params"] == 6 * 60 + 60
    assert [(l["layer_idx"], l["direction"], l["input_size"], l["hidden_size"], l["proj_size"], l["total"],
             l["is_zero_layer"]) for l in layers["layers"]] == [
        (0, "forward", 8, 6, 0, direction_params("lstm", 8, 6), False),
        (1, "forward", 6, 6, 0, direction_params("lstm", 6, 6), False)]
    flops = run_json("flops", "--model", str(path), "--batch", "3", "--seq", "5")
    steps = 3 * 5
    assert flops["macs"] == layer_macs("lstm", 8, 6, steps) + layer_macs("lstm", 6, 6, steps) + steps * 6 * 60
    tree = run_json("structure", "--model", str(path), "--seq", "5")["tree"]
    assert [c["name"] for c in tree["children"]] == ["embed", "lstm", "proj"]

    # the built-in model's own state_dict is the same file, so it round-trips both ways
    from lstm_inspect.model import RecurrentLanguageModel
    from lstm_inspect.spec import ModelSpec

    builtin = RecurrentLanguageModel(ModelSpec(vocab_size=60, embed_dim=8, hidden_dim=6, num_layers=2))
    builtin.load_state_dict(model.state_dict(), strict=True)


def test_pruned_module_list_copy_and_compare(tmp_path):
    original = um.SimpleLSTMModel(vocab_size=40, embed_dim=8, hidden_dim=8, num_layers=2)
    pruned = um.PrunedSimpleLSTM(vocab_size=40, embed_dim=8, widths=(8, 5))
    a, b = save(original, tmp_path / "original.pt"), save(pruned, tmp_path / "pruned.safetensors")
    doc = run_json("params", "--model", str(b))
    assert doc["total_params"] == um.unique_params(pruned)
    assert {t["name"] for t in doc["tensors"]} == set(pruned.state_dict())
    assert doc["checks_ok"] is True
    assert [(l["layer_idx"], l["hidden_size"]) for l in doc["layers"]["layers"]] == [(0, 8), (1, 5)]
    flops = run_json("flops", "--model", str(b), "--batch", "2", "--seq", "7")
    n = 2 * 7
    assert flops["macs"] == layer_macs("lstm", 8, 8, n) + layer_macs("lstm", 8, 5, n) + n * 5 * 40
    assert flops["checks_ok"] is True

    cmp = run_json("compare", str(a), str(b), "--batch", "2", "--seq", "7")
    total_a, total_b = um.unique_params(original), um.unique_params(pruned)
    assert cmp["total_params"] == {"original": total_a, "pruned": total_b, "reduced": total_a - total_b,
                                   "reduction_ratio": (total_a - total_b) / total_a}
    layer1 = direction_params("lstm", 8, 8), direction_params("lstm", 8, 5)
    (changed,) = [l for l in cmp["layers"] if l["total"]["original"] != l["total"]["pruned"]]
    assert changed["layer_idx"] == 1 and (changed["total"]["original"], changed["total"]["pruned"]) == layer1
    macs_a = layer_macs("lstm", 8, 8, n) * 2 + n * 8 * 40
    assert cmp["macs"]["original"] == macs_a and cmp["macs"]["pruned"] == flops["macs"]


# ---- source document 001: no embedding, a regression head on the last step -------------------------------


def test_single_step_lstm_on_float_features(tmp_path):
    model = um.SingleStepLSTM(batch_size=2, input_size=1, hidden_size=4, output_size=1)
    path = save(model, tmp_path / "single.pt")
    doc = run_json("params", "--model", str(path))
    assert doc["total_params"] == um.unique_params(model) == direction_params("lstm", 1, 4) + 4 + 1
    assert [t["name"] for t in doc["tensors"]] == list(model.state_dict())
    assert doc["model"]["layout"]["head_on"] == "last step" and doc["model"]["layout"]["embedding"] is None
    flops = run_json("flops", "--model", str(path), "--batch", "2", "--seq", "100", "--no-batch-first")
    assert flops["macs"] == layer_macs("lstm", 1, 4, 2 * 100) + 2 * 4 * 1
    assert flops["checks_ok"] is True
    structure = run_json("structure", "--model", str(path), "--batch", "2", "--seq", "100", "--no-batch-first")
    assert structure["tree"]["output_shape"] == [2, 1]   # linear(lstm_out[-1]) as the document writes it
    real = model(torch.zeros(100, 2, 1))
    assert list(real.shape) == structure["tree"]["output_shape"]


# ---- PyTorch's word_language_model -------------------------------------------------------------------


@pytest.mark.parametrize("rnn_type, cell", [("LSTM", "lstm"), ("GRU", "gru"), ("RNN_TANH", "rnn")])
@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_word_language_model(tmp_path, rnn_type, cell, tied, suffix):
    model = um.RNNModel(rnn_type, ntoken=33, ninp=6, nhid=6, nlayers=2, tie_weights=tied)
    path = save(model, tmp_path / f"wlm{suffix}")
    doc = run_json("params", "--model", str(path))
    assert doc["total_params"] == um.unique_params(model)
    names = {t["name"] for t in doc["tensors"]}
    assert {"encoder.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l1", "decoder.bias"} <= names
    assert ("decoder.weight" in names) != tied
    assert doc["checks_ok"] is True
    assert doc["layers"]["lm_head_params"] == (33 if tied else 6 * 33 + 33)
    batch, seq = 4, 9   # seq-first, as the example feeds it
    flops = run_json("flops", "--model", str(path), "--batch", str(batch), "--seq", str(seq), "--no-batch-first")
    n = batch * seq
    assert flops["macs"] == 2 * layer_macs(cell, 6, 6, n) + n * 6 * 33
    mem = run_json("memory", "--model", str(path), "--batch-sizes", "1,2", "--seq-lens", "4", "--no-batch-first")
    assert [c["status"] for c in mem["cells"]] == ["ok", "ok"]


# ---- AWD-LSTM's weight drop, DataParallel prefixes -------------------------------------------------------


def test_awd_lstm_with_raw_weights(tmp_path):
    model = um.AWDLSTM(ntoken=25, ninp=6, nhid=10, nlayers=3)
    sd = model.state_dict()
    assert "rnns.0.module.weight_hh_l0_raw" in sd and "rnns.0.module.weight_hh_l0" not in sd
    path = tmp_path / "awd.pt"
    torch.save(sd, path)
    doc = run_json("params", "--model", str(path))
    assert doc["total_params"] == um.unique_params(model)
    assert {t["name"] for t in doc["tensors"]} == set(sd) - {"decoder.weight"}   # tied to encoder.weight
    assert doc["checks_ok"] is True
    widths = [(6, 10), (10, 10), (10, 6)]
    assert [(l["input_size"], l["hidden_size"], l["total"]) for l in doc["layers"]["layers"]] == \
        [(i, h, direction_params("lstm", i, h)) for i, h in widths]
    flops = run_json("flops", "--model", str(path), "--batch", "2", "--seq", "3")
    assert flops["macs"] == sum(layer_macs("lstm", i, h, 6) for i, h in widths) + 6 * 6 * 25
    mem = run_json("memory", "--model", str(path), "--batch-sizes", "2", "--seq-lens", "3", "--mode", "train")
    assert mem["cells"][0]["status"] == "ok"


def test_data_parallel_prefix_and_nesting(tmp_path):
    model = um.SimpleLSTMModel(vocab_size=20, embed_dim=4, hidden_dim=4, num_layers=1)
    path = tmp_path / "dp.ckpt"
    torch.save({"epoch": 7, "model_state_dict": {"module." + k: v for k, v in model.state_dict().items()}}, path)
    doc = run_json("params", "--model", str(path))
    assert doc["total_params"] == um.unique_params(model)
    assert [t["name"] for t in doc["tensors"]] == list(model.state_dict())


# ---- whole pickled models ------------------------------------------------------------------------------


def test_whole_pickled_model_is_refused_naming_its_class_and_loads_when_trusted(tmp_path):
    model = um.SimpleLSTMModel(vocab_size=30, embed_dim=4, hidden_dim=5, num_layers=2)
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    refused = runner.invoke(app, ["params", "--model", str(path)])
    assert refused.exit_code == 3
    assert "tests.user_models.SimpleLSTMModel" in refused.stderr and "--trust-pickle" in refused.stderr
    trusted = runner.invoke(app, ["params", "--model", str(path), "--trust-pickle", "--json"])
    assert trusted.exit_code == 0, trusted.output
    assert json.loads(trusted.stdout)["total_params"] == um.unique_params(model)
    assert "code" in trusted.stderr and trusted.stderr.startswith("warning: --trust-pickle")
    flops = run_json("flops", "--model", str(path), "--trust-pickle", "--batch", "1", "--seq", "4")
    assert flops["macs"] == layer_macs("lstm", 4, 5, 4) + layer_macs("lstm", 5, 5, 4) + 4 * 5 * 30

    bundle = tmp_path / "bundle.pt"   # what pruning tools write
    torch.save({"model": model, "pruning_ratio": 0.2}, bundle)
    refused = runner.invoke(app, ["compare", str(path), str(bundle)])
    assert refused.exit_code == 3 and "compare's model 1" in refused.stderr
    cmp = runner.invoke(app, ["compare", str(path), str(bundle), "--trust-pickle", "--json"])
    assert cmp.exit_code == 0, cmp.output
    assert json.loads(cmp.stdout)["total_params"]["reduced"] == 0


def test_a_malicious_pickle_never_runs_without_the_flag(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pt"
    torch.save({"model": um.malicious_payload(str(marker))}, path)
    for command in ("params", "structure", "flops", "memory", "report"):
        result = runner.invoke(app, [command, "--model", str(path)])
        assert result.exit_code == 3 and "not executed" in result.stderr
    result = runner.invoke(app, ["compare", "builtin", str(path)])
    assert result.exit_code == 3 and "compare's model 2" in result.stderr
    assert not marker.exists()


# ---- never a blind refusal ----------------------------------------------------------------------------


def test_an_unrecognised_architecture_is_counted_and_the_rest_says_what_was_found(tmp_path):
    class Tagger(torch.nn.Module):   # an LSTM with a norm and a two-layer head: not embedding -> rnn -> head
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(30, 8)
            self.lstm = torch.nn.LSTM(8, 8, batch_first=True)
            self.norm = torch.nn.LayerNorm(8)
            self.hidden = torch.nn.Linear(8, 16)
            self.out = torch.nn.Linear(16, 5)

    model = Tagger()
    path = save(model, tmp_path / "tagger.safetensors")
    doc = run_json("params", "--model", str(path))
    assert doc["total_params"] == um.unique_params(model)
    assert any("only partly recognised" in n and "package.module:factory" in n for n in doc["notes"])
    stored = doc["model"]["stored"]["f32"]
    assert stored["params"] == um.unique_params(model) and stored["bytes"] == 4 * um.unique_params(model)
    result = runner.invoke(app, ["flops", "--model", str(path)])
    assert result.exit_code == 3
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "Recognised: embedding embed [30, 8]; LSTM lstm" in message
    assert "norm.weight [8]" in message and "package.module:factory" in message
