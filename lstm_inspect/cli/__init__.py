"""The ``lstm-inspect`` command line: thin Typer commands over the service layer and analyses."""

from __future__ import annotations

from lstm_inspect.cli.app import app, entry, main

# Each module registers its command on ``app`` when imported (order = order in --help).
from lstm_inspect.cli import structure as _structure  # noqa: E402,F401
from lstm_inspect.cli import params as _params  # noqa: E402,F401
from lstm_inspect.cli import flops as _flops  # noqa: E402,F401
from lstm_inspect.cli import memory as _memory  # noqa: E402,F401
from lstm_inspect.cli import generation as _generation  # noqa: E402,F401
from lstm_inspect.cli import compare as _compare  # noqa: E402,F401
from lstm_inspect.cli import report as _report  # noqa: E402,F401

__all__ = ["app", "entry", "main"]
