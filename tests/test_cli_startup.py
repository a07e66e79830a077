"""The command line's start-up (lstm_inspect/cli/startup.py): the cyclic garbage collector waits for the model."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

from lstm_inspect.cli import startup


def test_the_collector_waits_for_the_model_then_what_exists_is_frozen():
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        startup.defer_collection()
        assert not gc.isenabled()
        startup.model_loaded()
        assert gc.isenabled() and gc.get_freeze_count() > frozen
        startup.model_loaded()                      # once only
    finally:
        gc.unfreeze()
        gc.enable()


def test_without_the_entry_point_loading_a_model_leaves_the_collector_alone():
    frozen = gc.get_freeze_count()
    startup.model_loaded()
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_the_console_entry_point_turns_it_back_on_once_the_model_is_loaded():
    # In a fresh process, through entry() (what ``python -m lstm_inspect`` and the console script run): off at the
    # start, on and frozen once the model is loaded.
    code = """
import gc, sys
from lstm_inspect.cli import options
load = options.ModelOptions.load
def spy(self):
    before = gc.isenabled()
    out = load(self)
    print([before, gc.isenabled(), gc.get_freeze_count() > 0], file=sys.stderr, flush=True)
    return out
options.ModelOptions.load = spy
sys.argv = ["lstm-inspect", "params", "--json"]
from lstm_inspect.cli import entry
entry()
"""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[False, True, True]", done.stderr
    assert json.loads(done.stdout)["schema"] == "lstm-inspect.params/1"
