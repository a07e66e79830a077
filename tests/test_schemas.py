"""Every command's --json output validates against the schema file shipped for it."""

from __future__ import annotations

import json

import jsonschema
import pytest
from typer.testing import CliRunner

from lstm_inspect.cli import app
from tests.schema_helpers import validate

runner = CliRunner()
SMALL = ["--embed-dim", "16", "--hidden-dim", "16", "--vocab-size", "100"]

CASES = [
    ["params", "--json", *SMALL],
    ["params", "--json", *SMALL, "--tie-weights", "--cell", "gru"],
    ["structure", "--json", *SMALL, "--bidirectional"],
    ["structure", "--json", *SMALL, "--proj-size", "8"],
    ["flops", "--json", *SMALL],
    ["flops", "--json", *SMALL, "--lengths", "5,3,1", "--hardware", "t4", "--dtype", "float16"],
    ["flops", "--json", *SMALL, "--batch-sizes", "1,2", "--seq-lens", "4,8"],
    ["memory", "--json", *SMALL, "--batch-sizes", "1,2", "--seq-lens", "4", "--method", "both"],
    ["memory", "--json", *SMALL, "--batch-sizes", "1", "--seq-lens", "4,8", "--budget", "64MiB", "--mode", "train",
     "--optimizer", "adam"],
    ["memory", "--json", *SMALL, "--lengths", "6,2"],
    # a 25 TB logits cell: the CPU allocator refuses at once, the cell is "oom", the other cell stays
    ["memory", "--json", "--embed-dim", "8", "--hidden-dim", "8", "--vocab-size", "1000000", "--batch-sizes", "1,100000",
     "--seq-lens", "64", "--method", "measure", "--device", "cpu"],
    ["generation", "--json", *SMALL, "--contexts", "1,4096", "--budget", "1GiB"],
    ["compare", "--json", "builtin", "hidden_dim=12,embed_dim=16,vocab_size=100"],
    ["report", "--json", *SMALL, "--batch-sizes", "1", "--seq-lens", "4"],
]


def test_every_command_has_a_schema_and_a_case():
    import typer

    from tests.schema_helpers import schema_names

    commands = set(typer.main.get_command(app).commands)
    assert commands <= schema_names()
    assert commands == {case[0] for case in CASES}


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a))
def test_output_matches_schema(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate(doc)
    if "1000000" in args:
        assert [c["status"] for c in doc["cells"]] == ["ok", "oom"]


def test_schema_rejects_a_wrong_document():
    """The schema can fail: a float count is not a count."""
    result = runner.invoke(app, ["params", "--json", *SMALL])
    doc = json.loads(result.stdout)
    doc["total_params"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)
