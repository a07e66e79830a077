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
]


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a[:1] + a[2:3]))
def test_output_matches_schema(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    validate(json.loads(result.stdout))


def test_schema_rejects_a_wrong_document():
    """The schema can fail: a float count is not a count."""
    result = runner.invoke(app, ["params", "--json", *SMALL])
    doc = json.loads(result.stdout)
    doc["total_params"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)
