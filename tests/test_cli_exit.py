"""The console entry (``lstm-inspect``, ``python -m lstm_inspect``) ends the process as soon as the command is done
(``os._exit`` after flushing; Python's teardown of torch and transformers took about 1 s): the same exit status,
nothing it wrote lost, and the teardown really skipped."""

from __future__ import annotations

import json
import subprocess
import sys

ENTRY = ("import atexit, sys\n"
         "atexit.register(lambda: print('TEARDOWN RAN', file=sys.stderr))\n"
         "sys.argv = ['lstm-inspect', *sys.argv[1:]]\n"
         "from lstm_inspect.cli import entry\n"
         "entry()\n")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", ENTRY, *args], capture_output=True, text=True, timeout=300)


def test_a_finished_command_exits_at_once_with_all_its_output():
    done = _run("params", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)                       # the whole document arrived (flushed before the exit)
    assert doc["total_params"] == doc["trainable_params"] + doc["frozen_params"] > 0
    assert doc["total_params"] == sum(t["count"] for t in doc["tensors"])
    assert "TEARDOWN RAN" not in done.stderr           # atexit handlers (Python's teardown) were skipped


def test_the_exit_status_and_message_of_bad_input_are_kept():
    done = _run("params", "--hidden-dim", "-3")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: --hidden-dim must be at least 1, got -3"]
    assert "Traceback" not in done.stderr


def test_python_dash_m_uses_the_entry():
    done = subprocess.run([sys.executable, "-m", "lstm_inspect", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip()
    from lstm_inspect.cli import app, entry

    assert callable(entry) and app is not None
