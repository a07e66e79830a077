"""Terminal manners: plain text off a terminal or under NO_COLOR, --width, --output written atomically."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from lstm_inspect.cli import app

runner = CliRunner()
SMALL = ["--embed-dim", "16", "--hidden-dim", "16", "--vocab-size", "100"]
ESC = "\x1b["


def _run(args, **env):
    return subprocess.run([sys.executable, "-m", "lstm_inspect", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_forced_colour_has_escape_codes_and_no_color_removes_them():
    coloured = _run(["params", *SMALL], FORCE_COLOR="1", NO_COLOR="")
    assert ESC in coloured.stdout  # the check below can fail
    plain = _run(["params", *SMALL], FORCE_COLOR="1", NO_COLOR="1")
    assert plain.returncode == 0 and ESC not in plain.stdout


def test_not_a_terminal_gives_plain_text():
    result = _run(["structure", *SMALL])
    assert result.returncode == 0 and ESC not in result.stdout and "lstm" in result.stdout


@pytest.mark.parametrize("width", [40, 80, 200])
def test_width_bounds_every_line(width):
    for args in (["params", *SMALL], ["structure", *SMALL], ["flops", *SMALL], ["memory", *SMALL, "--batch-sizes", "1,2",
                                                                                  "--seq-lens", "4"]):
        result = runner.invoke(app, [*args, "--width", str(width)])
        assert result.exit_code == 0, result.output
        assert max(len(line) for line in result.stdout.splitlines()) <= width


@pytest.mark.parametrize("command", [["params"], ["structure"], ["flops"], ["memory", "--batch-sizes", "1", "--seq-lens", "4"],
                                     ["report", "--batch-sizes", "1", "--seq-lens", "4"]])
def test_output_file_holds_the_json_document(tmp_path, command):
    target = tmp_path / "out.json"
    result = runner.invoke(app, [*command, *SMALL, "--output", str(target)])
    assert result.exit_code == 0, result.output
    saved = json.loads(target.read_text())
    assert saved["schema"].startswith(f"lstm-inspect.{command[0]}/")
    as_json = runner.invoke(app, [*command, *SMALL, "--json"])
    assert json.loads(as_json.stdout)["schema"] == saved["schema"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary file left behind


def test_output_into_a_missing_folder_is_an_input_error(tmp_path):
    result = runner.invoke(app, ["params", *SMALL, "--output", str(tmp_path / "nope" / "out.json")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --output") and "does not exist" in result.stderr


def test_several_budgets_report_every_failure():
    result = runner.invoke(app, ["report", *SMALL, "--batch-sizes", "1", "--seq-lens", "4",
                                 "--max-params", "1K", "--max-macs", "1K", "--max-memory", "1KiB"])
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("budget exceeded: ")
    assert "--max-params" in line and "--max-macs" in line and "--max-memory" in line
    ok = runner.invoke(app, ["report", *SMALL, "--batch-sizes", "1", "--seq-lens", "4", "--max-params", "1G"])
    assert ok.exit_code == 0, ok.output
