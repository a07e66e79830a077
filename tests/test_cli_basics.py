"""The CLI as a whole: help everywhere, version, no torch on --help, one-line errors, devices."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from lstm_inspect import __version__
from lstm_inspect.cli import app
from lstm_inspect.cli.app import normalize_args

runner = CliRunner()


def _commands() -> list[str]:
    import typer

    group = typer.main.get_command(app)
    return sorted(group.commands)


def test_every_command_has_help_text():
    commands = _commands()
    assert {"structure", "params"} <= set(commands)
    for name in commands:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.stdout
        group_help = runner.invoke(app, ["--help"]).stdout
        assert name in group_help
    import typer

    for name, command in typer.main.get_command(app).commands.items():
        assert command.help and len(command.help.strip()) > 20, f"{name} has no real help text"


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"lstm-inspect {__version__}"


def test_help_does_not_import_torch():
    code = "import sys; sys.argv=['lstm-inspect','--help']\nfrom lstm_inspect.cli import main\ntry:\n main()\nexcept SystemExit:\n pass\nprint('torch' in sys.modules, 'transformers' in sys.modules, file=sys.stderr)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stderr.strip().splitlines()[-1] == "False False", proc.stderr


def test_python_dash_m_works():
    proc = subprocess.run([sys.executable, "-m", "lstm_inspect", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("lstm-inspect ")


def test_normalize_args_accepts_source_spellings():
    assert normalize_args(["--batch_sizes", "1", "2", "4", "--seq_lens", "16", "32", "--embed_dim=512"]) == [
        "--batch-sizes", "1,2,4", "--seq-lens", "16,32", "--embed-dim=512"]
    assert normalize_args(["--lengths", "lengths.txt", "--seq-lens", "8,16"]) == ["--lengths", "lengths.txt", "--seq-lens", "8,16"]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["params", "--embed-dim", "abc"], "'--embed-dim'"),
        (["params", "--hidden-dim", "1.5"], "'--hidden-dim'"),
        (["params", "--dropout", "lots"], "'--dropout'"),
        (["params", "--no-such-flag"], "No such option: --no-such-flag"),
        (["params", "--top", "0"], "--top must be at least 1"),
        (["params", "--cell", "lstmx"], "--cell must be one of lstm, gru, rnn"),
        (["params", "--vocab-size", "10", "--tokenizer", "x"], "give --vocab-size or --tokenizer, not both"),
        (["structure", "--tokenizer", "/nonexistent/dir"], "--tokenizer '/nonexistent/dir': no such directory"),
        (["no-such-command"], "No such command"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, fragment):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.output and result.stdout == ""


def test_cuda_request_without_cuda_warns_and_falls_back(recwarn):
    import torch

    from lstm_inspect.building import resolve_device
    from lstm_inspect.errors import InvalidInput

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the fallback cannot be observed")
    assert resolve_device("cuda").type == "cpu"
    assert resolve_device("cuda:1").type == "cpu"
    assert any("CUDA is not available" in str(w.message) for w in recwarn)
    assert resolve_device("auto").type == "cpu"
    for bad in ("tpu", "cuda:x", ""):
        if bad:
            with pytest.raises(InvalidInput, match="^device must be") as info:   # the library names its field
                resolve_device(bad)
            from lstm_inspect.errors import as_flags

            assert as_flags(str(info.value), info.value.fields).startswith("--device must be")   # the CLI, its flag


def test_a_flag_given_with_its_default_value_still_overrides_the_model_source():
    """None means "not given": --hidden-dim 768 is seen even though 768 is the default."""
    import json

    base = ["params", "--json", "--model", "hidden_dim=512,embed_dim=8,vocab_size=10"]
    for hidden in ("768", "769"):
        result = runner.invoke(app, [*base, "--hidden-dim", hidden])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["model"]["spec"]["hidden_dim"] == int(hidden)
    untouched = runner.invoke(app, base)
    assert json.loads(untouched.stdout)["model"]["spec"]["hidden_dim"] == 512


def test_every_model_spec_field_has_exactly_one_flag():
    import dataclasses

    from lstm_inspect.cli.options import _SPEC_FLAGS
    from lstm_inspect.spec import ModelSpec

    assert set(_SPEC_FLAGS) == {f.name for f in dataclasses.fields(ModelSpec)}


def test_every_grid_takes_the_same_axis_rules():
    for command in ("flops", "memory", "report"):
        repeated = runner.invoke(app, [command, "--batch-sizes", "2,2", "--seq-lens", "4"])
        assert repeated.exit_code == 2 and "repeats a value" in repeated.stderr, (command, repeated.output)
        huge = runner.invoke(app, [command, "--batch-sizes", "1", "--seq-lens", str(2**31)])
        assert huge.exit_code == 2 and "at most 2,147,483,647" in huge.stderr, (command, huge.output)
