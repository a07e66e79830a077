"""The Python API: your own nn.Module in three lines, reports that render themselves, exported names."""

from __future__ import annotations

import io

import pytest
import torch
from rich.console import Console

import lstm_inspect
from lstm_inspect import InvalidInput, inspect_model
from tests import user_models as um


def test_your_own_module_in_three_lines():
    model = um.SimpleLSTMModel(vocab_size=100, embed_dim=16, hidden_dim=12, num_layers=2)
    inspection = inspect_model(model)
    report = inspection.flops(batch=2, seq=8)
    steps = 2 * 8
    expected = steps * 4 * 12 * (16 + 12) + steps * 4 * 12 * (12 + 12) + steps * 12 * 100
    assert report.macs == expected
    assert report.to_dict()["macs"] == expected and report.to_dict()["schema"] == "lstm-inspect.flops/1"
    assert inspection.params().total == um.unique_params(model)
    assert inspection.structure(batch=3, seq=5).root.output_shape == [3, 5, 100]
    memory = inspection.memory(batch_sizes=[1], seq_lens=[4])
    assert memory.cells[0].status == "ok"
    # the caller's module is analysed on copies: its weights stay real and untouched
    assert next(model.parameters()).device.type == "cpu"


def test_a_custom_sample_input_runs_the_model_as_written():
    model = um.SingleStepLSTM(batch_size=2, input_size=3, hidden_size=4, output_size=1)
    report = inspect_model(model, sample_input=lambda b, t, device: torch.zeros(t, b, 3, device=device)).flops(
        batch=2, seq=10)
    assert report.macs == 2 * 10 * 4 * 4 * (3 + 4) + 2 * 4 * 1   # linear(lstm_out[-1]): the last step only


def test_every_report_renders_with_rich_and_to_dict():
    inspection = inspect_model("hidden_dim=8,embed_dim=8,vocab_size=10,num_layers=1")
    for report in (inspection.params(), inspection.structure(), inspection.flops(), inspection.flops_grid([1], [4]),
                   inspection.memory([1], [4])):
        doc = report.to_dict()
        assert doc["schema"].startswith("lstm-inspect.")
        out = io.StringIO()
        Console(file=out, width=100).print(report)
        assert out.getvalue().strip()


def test_bad_arguments_name_the_field():
    with pytest.raises(InvalidInput, match="model must be a torch.nn.Module"):
        inspect_model(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="batch must be a whole number"):
        inspect_model("builtin").flops(batch=0)


def test_exports_are_listed_and_typed():
    assert "inspect_model" in dir(lstm_inspect) and "sweep_memory" in lstm_inspect.__all__
    from importlib.resources import files

    assert files("lstm_inspect").joinpath("py.typed").is_file()


def test_loading_a_factory_leaves_the_import_path_as_it_was(tmp_path, monkeypatch):
    import sys

    (tmp_path / "path_probe_models.py").write_text("import torch\ndef make():\n    return torch.nn.Linear(2, 3)\n")
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    assert inspect_model("path_probe_models:make").params().total == 2 * 3 + 3
    assert sys.path == before
