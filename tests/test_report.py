"""report: the all-in-one run and its timestamped JSON document."""

from __future__ import annotations

import datetime as dt
import json

import jsonschema
import pytest
from typer.testing import CliRunner

from lstm_inspect.cli import app
from tests.schema_helpers import validate
from tests.sources_helpers import stack_total

runner = CliRunner()
SMALL = ["--vocab-size", "40", "--embed-dim", "6", "--hidden-dim", "5", "--num-layers", "2"]


def test_report_json_holds_every_section_with_consistent_numbers():
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    result = runner.invoke(app, ["report", "--json", *SMALL, "--batch", "2", "--seq", "9"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate(doc)
    assert doc["schema"] == "lstm-inspect.report/1"
    stamp = dt.datetime.fromisoformat(doc["generated_at"].replace("Z", "+00:00"))
    assert before <= stamp <= dt.datetime.now(dt.timezone.utc)
    expected = stack_total("lstm", 40, 6, [5, 5])
    assert doc["params"]["total_params"] == expected
    assert doc["structure"]["total_params"] == expected
    assert doc["structure"]["tree"]["output_shape"] == [2, 9, 40]
    assert doc["params"]["checks_ok"] is True
    assert doc["layers"]["layer_summary"]["total_layer_params"] == expected - 40 * 6 - (5 * 40 + 40)
    assert "schema" not in doc["params"] and "schema" not in doc["structure"]
    for name in ("flops", "memory"):
        assert name in doc


def test_report_output_file_and_directory(tmp_path):
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["report", *SMALL, "--output", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    validate(doc)
    assert "Task 1" in result.stdout and "Task 2" in result.stdout
    result = runner.invoke(app, ["report", *SMALL, "--json", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = [p for p in tmp_path.iterdir() if p.name.startswith("lstm-inspect-report-")]
    assert len(written) == 1
    assert json.loads(written[0].read_text()) == json.loads(result.stdout)
    stamp = json.loads(result.stdout)["generated_at"]
    assert written[0].name == f"lstm-inspect-report-{stamp.replace('-', '').replace(':', '')}.json"


def test_report_with_the_defaults_works():
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    assert "86,696,018" in result.stdout or "86.70 M" in result.stdout


def test_report_on_a_transformers_config_and_a_checkpoint(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=16).to_json_file(tmp_path / "config.json")
    result = runner.invoke(app, ["report", "--json", "--model", str(tmp_path / "config.json"), "--seq", "8"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate(doc)
    assert doc["layers"]["kind"] == "decoder" and doc["model"]["source"] == "transformers"


def test_report_rejects_bad_options_and_the_schema_can_fail():
    result = runner.invoke(app, ["report", "--batch-sizes", "1,x"])
    assert result.exit_code == 2 and "--batch-sizes" in result.stderr
    doc = json.loads(runner.invoke(app, ["report", "--json", *SMALL]).stdout)
    doc["generated_at"] = "yesterday"
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)
