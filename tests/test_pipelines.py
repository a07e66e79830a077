"""Trustworthy in pipelines and CI (issue 13): real pipes, real devices, real locales, real child processes.

What a shell sees: a closed pipe ends the run with 141 and no message; a stdout that cannot be written
(full device, closed descriptor) and an ``--output`` that cannot be written are one ``error:`` line and
exit 3; ``--output`` never replaces a device node or a FIFO; any encoding gets ASCII, never a traceback;
a factory's prints never reach stdout.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading

import pytest
from typer.testing import CliRunner

from lstm_inspect.cli import app

TINY = ["--embed-dim", "8", "--hidden-dim", "8", "--vocab-size", "50"]
GRID = ["--batch-sizes", "1", "--seq-lens", "4"]
#: One tiny run of every command (each builds a model and prints tables).
COMMANDS = {
    "structure": ["structure", *TINY],
    "params": ["params", *TINY],
    "flops": ["flops", *TINY],
    "memory": ["memory", *TINY, *GRID],
    "compare": ["compare", "hidden_dim=8,embed_dim=8,vocab_size=50", "hidden_dim=4,embed_dim=8,vocab_size=50"],
    "report": ["report", *TINY, *GRID, "--device", "cpu"],
}
CLI = f"{sys.executable} -m lstm_inspect"


def _shell(script: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=180,
                          env={**os.environ, **env})


def _args(argv: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in argv)


# ------------------------------------------------------------------------------------------ closed pipe

def test_a_closed_pipe_ends_every_command_quietly_with_141():
    """``| true`` has closed the pipe before the first write. ``report`` prints what structure, params, flops and
    memory print; compare, --help (Typer's Rich help), --version and a JSON document are the other writers."""
    runs = [("report", COMMANDS["report"]), ("compare", COMMANDS["compare"]), ("help", ["--help"]),
            ("version", ["--version"]), ("json", ["params", *TINY, "--json"])]
    lines = [f"( {CLI} {_args(argv)} | true; echo \"{name} ${{PIPESTATUS[0]}}\" >&2 ) &" for name, argv in runs]
    done = _shell("\n".join(lines) + "\nwait")   # side by side: nine interpreters starting one after another is slow
    codes = dict(line.split() for line in done.stderr.splitlines() if line.split()[-1].isdigit())
    assert codes and all(code == "141" for code in codes.values()), done.stderr
    assert len(codes) == len(runs), done.stderr
    assert "error" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_report_piped_to_head_exits_141_under_pipefail():
    """More than a pipe holds (--width 10000: rules and tables 135 KB), so the writer outlives ``head -1``."""
    done = _shell(f"set -o pipefail; {CLI} report --width 10000 | head -1; echo \"status $?\" >&2")
    assert done.stdout.startswith("lstm-inspect report"), done.stdout
    assert done.stderr.strip().splitlines()[-1] == "status 141", done.stderr
    assert "Traceback" not in done.stderr and "error" not in done.stderr


# ------------------------------------------------------------------------------ stdout full or closed

@pytest.mark.parametrize("redirect, why, tables", [(">/dev/full", "No space left on device", ["params", *TINY]),
                                                   (">&-", "stdout is closed", ["params", *TINY, "--json"])])
def test_stdout_that_cannot_be_written_is_one_line_and_exit_3(redirect, why, tables):
    for argv in (tables, ["--version"]):
        done = _shell(f"{CLI} {_args(argv)} {redirect}")
        assert done.returncode == 3, (argv, done.stderr)
        assert done.stderr.strip().splitlines() == [f"error: cannot write the output to stdout: "
                                                    f"{done.stderr.split(': ', 2)[-1].strip()}"], done.stderr
        assert why in done.stderr, done.stderr


def test_a_closed_stderr_keeps_the_exit_code():
    done = _shell(f"{CLI} params --hidden-dim 0 2>&-")
    assert done.returncode == 2 and done.stdout == ""


# --------------------------------------------------------------------------------------- encodings

def test_a_c_locale_gets_ascii_output():
    """``LC_ALL=C`` without UTF-8 mode: stdout is ASCII; report prints tables, trees and rules in ASCII."""
    env = {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "LANG": "C"}
    env.pop("PYTHONIOENCODING", None)
    done = subprocess.run([sys.executable, "-m", "lstm_inspect", "report"], capture_output=True, timeout=180,
                          env={k: v for k, v in {**os.environ, **env}.items() if k != "PYTHONIOENCODING"})
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    text = done.stdout.decode("ascii")   # fails on any non-ASCII byte
    assert "+--" in text and "batch 1 x seq 32" in text and "G*H*(I + H_r)" in text
    assert b"Traceback" not in done.stderr


@pytest.mark.parametrize("charset", ["ascii", "latin-1"])
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_prints_in_any_encoding(name, charset):
    """In-process (the runner's stdout encodes ``charset``): no UnicodeEncodeError, the characters a
    stream cannot hold come out as ASCII (x, ->, -, ...)."""
    result = CliRunner(charset=charset).invoke(app, COMMANDS[name])
    assert result.exit_code == 0, result.output
    result.stdout_bytes.decode(charset)
    assert "→" not in result.stdout and "…" not in result.stdout


def test_names_that_are_not_utf8_are_escaped_in_json(tmp_path):
    """A spec file whose name is not valid UTF-8: the JSON stays valid UTF-8 (the byte as an escape)."""
    folder = os.fsencode(tmp_path)
    spec = folder + b"/spec-\xff.json"
    with open(spec, "w", encoding="utf-8") as handle:
        handle.write('{"hidden_dim": 8, "embed_dim": 8, "vocab_size": 50}')
    out = folder + b"/out-\xfe.json"
    done = subprocess.run([sys.executable, "-m", "lstm_inspect", "params", "--json", "--model", spec, "--output", out],
                          capture_output=True, timeout=180)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout.decode("utf-8"))          # strict: raw 0xff would fail here
    assert doc["model"]["name"] == "spec-\udcff.json"
    with open(out, "rb") as handle:
        assert json.loads(handle.read().decode("utf-8"))["model"]["name"] == "spec-\udcff.json"


# -------------------------------------------------------------------------------------------- --output

def test_output_onto_a_fifo_delivers_the_json_and_leaves_a_fifo(tmp_path):
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = CliRunner().invoke(app, ["params", *TINY, "--output", str(fifo)])
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert json.loads(received[0])["schema"] == "lstm-inspect.params/1"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.fifo"]    # no temporary file beside it


def test_output_onto_a_character_device_writes_in_place():
    before = os.stat("/dev/null")
    result = CliRunner().invoke(app, ["params", *TINY, "--output", "/dev/null"])
    assert result.exit_code == 0, result.output
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino


def test_output_onto_a_full_device_fails_and_keeps_the_device():
    result = CliRunner().invoke(app, ["params", *TINY, "--json", "--output", "/dev/full"])
    assert result.exit_code == 3 and result.stdout == ""
    assert result.stderr.strip() == "error: --output /dev/full: cannot write the report (No space left on device)"
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_output_through_a_link_to_a_device_keeps_the_link(tmp_path):
    link = tmp_path / "out.json"
    link.symlink_to("/dev/null")
    result = CliRunner().invoke(app, ["params", *TINY, "--output", str(link)])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == "/dev/null"


def test_output_through_a_link_to_a_file_replaces_the_file_and_keeps_the_link(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "out.json"
    link.symlink_to(target)
    result = CliRunner().invoke(app, ["params", *TINY, "--output", str(link)])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and json.loads(target.read_text())["schema"] == "lstm-inspect.params/1"


def test_a_failed_output_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    target.write_text("old report")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    result = CliRunner().invoke(app, ["params", *TINY, "--output", str(target)])
    assert result.exit_code == 3 and "No space left on device" in result.stderr
    assert target.read_text() == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_new_output_file_gets_the_usual_mode(tmp_path):
    target = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["params", *TINY, "--output", str(target)])
    assert result.exit_code == 0, result.output
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_report_output_into_a_missing_folder_writes_nothing(tmp_path):
    result = CliRunner().invoke(app, ["report", *TINY, *GRID, "--output", f"{tmp_path}/newdir/"])
    assert result.exit_code == 2 and "--output" in result.stderr
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ user code

def test_a_factory_that_prints_leaves_stdout_to_the_json(tmp_path, monkeypatch):
    (tmp_path / "loud_factories.py").write_text(
        "import torch\nfrom torch import nn\nprint('importing')\n"
        "class Loud(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.embed = nn.Embedding(10, 4)\n"
        "        self.head = nn.Linear(4, 3)\n"
        "    def forward(self, x):\n        print('forward')\n        return self.head(self.embed(x))\n"
        "def loud():\n    print('building')\n    return Loud()\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for argv in (["report", "--json", *GRID], ["memory", "--json", *GRID], ["structure", "--json"],
                 ["compare", "loud_factories:loud", "loud_factories:loud", "--json"]):
        if argv[0] != "compare":
            argv = [*argv, "--model", "loud_factories:loud"]
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, result.output
        json.loads(result.stdout)
        assert "forward" in result.stderr or "building" in result.stderr


# ----------------------------------------------------------------------------------- bounds and widths

def test_every_cpu_cell_is_checked_against_host_memory(monkeypatch):
    """Small cells too (issue 13: a 50,000-token training step at batch 1 asked for 10 GB)."""
    import lstm_inspect.cli.sweep_policy as memory

    monkeypatch.setattr(memory, "available_host_bytes", lambda: 1024)
    result = CliRunner().invoke(app, ["memory", *TINY, "--batch-sizes", "1", "--seq-lens", "4,8", "--method", "both",
                                      "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    cells = json.loads(result.stdout)["cells"]
    assert [c["status"] for c in cells] == ["oom", "oom"] and all("not run" in c["reason"] for c in cells)
    assert all("measured_bytes" not in c and c["estimated_bytes"] > 1024 for c in cells)


def test_numbers_are_never_cut_at_a_narrow_width():
    import re

    for argv in (["params"], ["memory", "--batch-sizes", "1,2,4,8,16,32,64,128", "--seq-lens", "32,64,128,256,512"],
                 ["flops"]):
        result = CliRunner().invoke(app, [*argv, "--width", "40"])
        assert result.exit_code == 0, result.output
        assert not re.search(r"\d…", result.stdout), result.stdout
        assert max(len(line) for line in result.stdout.splitlines()) <= 40
    params = CliRunner().invoke(app, ["params", "--width", "40"]).stdout
    assert "86,696,018" in params and "not shown at this width: scientific" in params


def test_a_huge_columns_value_is_clamped():
    result = CliRunner(env={"COLUMNS": "99999999"}).invoke(app, ["report", *TINY, *GRID])
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 10_000
    assert "warning: a width of 99999999 columns" in result.stderr


def test_a_cache_variable_naming_a_file_is_one_line(tmp_path):
    afile = tmp_path / "not-a-dir"
    afile.write_text("")
    for name in ("TORCHINDUCTOR_CACHE_DIR", "HF_HOME"):
        result = CliRunner(env={name: str(afile)}).invoke(app, ["params", *TINY])
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == f"error: {name}={afile}: is a regular file, not a directory; point it at a " \
                                        "folder or unset it"


@pytest.mark.parametrize("body, said", [("import sys; sys.exit(0)", "sys.exit(0)"),
                                        ("raise Bail('stop')", "Bail: stop")])
def test_a_forward_that_exits_or_raises_a_base_exception_is_exit_3(tmp_path, monkeypatch, body, said):
    """Not only the factory: a model's forward that calls sys.exit or raises a BaseException subclass."""
    name = f"exiting_models_{abs(hash(body))}"   # a module name per case: imports are cached
    (tmp_path / f"{name}.py").write_text(
        "import torch\n"
        "class Bail(BaseException):\n    pass\n"
        "class M(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__(); self.l = torch.nn.Linear(4, 4)\n"
        f"    def forward(self, x):\n        {body}\n"
        "def make():\n    return M()\n")
    monkeypatch.chdir(tmp_path)
    for command in ("flops", "structure"):
        result = CliRunner().invoke(app, [command, "--model", f"{name}:make"])
        assert result.exit_code == 3, (command, result.output)
        assert result.stderr.strip().startswith("error: ") and said in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
