"""A model or tokenizer directory's own Python code (transformers' ``auto_map``) never runs.

Each directory holds ``.py`` files that write a marker file when imported. Whatever stdin says (``y``,
``n``, closed, a terminal), the marker never appears, no prompt is printed, the run does not wait for
input, and with ``--json`` stdout is one valid JSON document (or empty, on the one-line refusal).
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lstm_inspect.cli import app

runner = CliRunner()

AUTO_MAP_MODEL = {"AutoConfig": "configuration_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.EvilModel"}
TINY_LLAMA = {"model_type": "llama", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 64, "vocab_size": 100}
#: What every command gets so that it runs in well under a second of analysis.
SMALL = {
    "structure": ["--seq", "4"],
    "params": [],
    "flops": ["--seq", "4"],
    "memory": ["--batch-sizes", "1", "--seq-lens", "4", "--method", "estimate"],
    "report": ["--batch-sizes", "1", "--seq-lens", "4", "--seq", "4", "--device", "cpu"],
}


def _evil(directory: Path, marker: Path, modules: tuple[str, ...]) -> None:
    code = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('the directory code ran')\n"
    for name in modules:
        cls = "".join(part.title() for part in name.split("_")[::-1])
        (directory / f"{name}.py").write_text(code + f"class {cls}: pass\nclass EvilModel: pass\n"
                                              "class EvilConfig: pass\nclass EvilTokenizer: pass\n")


@pytest.fixture()
def dirs(tmp_path):
    """(marker, custom-only model dir, built-in type with auto_map, tokenizer dir with auto_map)."""
    marker = tmp_path / "MARKER"
    custom = tmp_path / "custom_model"
    builtin = tmp_path / "llama_with_auto_map"
    tokenizer = tmp_path / "tokenizer"
    for d in (custom, builtin, tokenizer):
        d.mkdir()
        _evil(d, marker, ("modeling_evil", "configuration_evil", "tokenization_evil"))
    # vit has a base model in transformers but no causal LM: the causal LM is the directory's code
    (custom / "config.json").write_text(json.dumps({"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 1,
                                                    "num_attention_heads": 2, "intermediate_size": 64,
                                                    "auto_map": AUTO_MAP_MODEL}))
    (builtin / "config.json").write_text(json.dumps(TINY_LLAMA | {"auto_map": {"AutoModelForCausalLM": "modeling_evil.EvilModel"}}))
    (tokenizer / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "EvilTokenizer", "auto_map": {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}}))
    (tokenizer / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": {"AutoConfig": "configuration_evil.EvilConfig"}}))
    return marker, custom, builtin, tokenizer


@pytest.mark.parametrize("command", sorted(SMALL))
@pytest.mark.parametrize("answer", ["y\n", "n\n", ""])
def test_no_command_runs_a_model_directorys_code(dirs, command, answer):
    marker, custom, builtin, tokenizer = dirs
    refused = runner.invoke(app, [command, "--model", str(custom), "--json", *SMALL[command]], input=answer)
    assert refused.exit_code == 3, refused.output
    assert refused.stdout == ""
    assert "never runs a model directory's code" in refused.stderr
    assert "factory" in refused.stderr.splitlines()[-1]

    analysed = runner.invoke(app, [command, "--model", str(builtin), "--json", *SMALL[command]], input=answer)
    assert analysed.exit_code == 0, analysed.output
    document = json.loads(analysed.stdout)   # one valid document: no prompt text before it
    assert document["model"]["architecture"] == "LlamaForCausalLM"
    assert "custom code" in analysed.stderr and "it was not run" in analysed.stderr

    tok = runner.invoke(app, [command, "--tokenizer", str(tokenizer), "--json", *SMALL[command]], input=answer)
    assert tok.exit_code == 2, tok.output
    assert tok.stdout == ""
    assert "never runs a directory's code" in tok.stderr
    assert not marker.exists(), "a directory's own code ran"


def test_compare_never_runs_either_models_code(dirs):
    marker, custom, builtin, _tokenizer = dirs
    result = runner.invoke(app, ["compare", str(builtin), str(custom), "--json"], input="y\n")
    assert result.exit_code == 3, result.output
    assert result.stdout == ""
    assert not marker.exists()


def _cli(args: list[str], stdin, timeout: float = 120) -> subprocess.CompletedProcess:
    code = "import sys; from lstm_inspect.cli import main; sys.argv[0] = 'lstm-inspect'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], stdin=stdin, capture_output=True, text=True,
                          timeout=timeout, env={k: v for k, v in os.environ.items() if k != "COLUMNS"})


@pytest.mark.parametrize("stdin", ["y", "closed", "pty"])
def test_a_real_process_never_prompts_whatever_stdin_is(dirs, stdin):
    """Closed stdin and a terminal cannot be given to CliRunner: a real process, with the report (every analysis)."""
    marker, custom, builtin, _tokenizer = dirs
    args = ["report", "--model", str(builtin), "--json", *SMALL["report"]]
    if stdin == "y":
        result = subprocess.run([sys.executable, "-c",
                                 "import sys; from lstm_inspect.cli import main; sys.argv[0] = 'lstm-inspect'; main()",
                                 *args], input="y\ny\n", capture_output=True, text=True, timeout=120)
    elif stdin == "closed":
        result = _cli(args, stdin=subprocess.DEVNULL)
        closed = subprocess.run(["bash", "-c", 'exec "$@" <&-', "bash", sys.executable, "-c",
                                 "import sys; from lstm_inspect.cli import main; sys.argv[0] = 'lstm-inspect'; main()",
                                 "params", "--model", str(custom), "--json"],
                                capture_output=True, text=True, timeout=120)
        assert closed.returncode == 3, closed.stderr
        assert closed.stdout == ""
    else:
        controller, terminal = pty.openpty()
        try:
            # On a terminal transformers' prompt would wait 15 s for an answer: the timeout catches a wait.
            result = _cli(args, stdin=terminal, timeout=60)
        finally:
            os.close(controller)
            os.close(terminal)
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)
    assert "[y/N]" not in result.stdout + result.stderr
    assert not marker.exists()
