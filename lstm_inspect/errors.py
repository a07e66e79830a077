"""The one domain exception family, and the exit codes the CLI maps it to.

Exit codes (documented in the README):
    0  ok
    1  a budget (``--max-...``) was exceeded
    2  invalid input or usage
    3  the work itself failed (device error, unreadable model)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BUDGET = 1
EXIT_USAGE = 2
EXIT_FAILED = 3
EXIT_INTERRUPTED = 130


class LstmInspectError(Exception):
    """Base class: a message meant for the user, and the exit code that goes with it."""

    exit_code = EXIT_FAILED


class InvalidInput(LstmInspectError):
    """The user asked for something that cannot be: fix the input and run again."""

    exit_code = EXIT_USAGE


class AnalysisFailed(LstmInspectError):
    """The input was valid but the work failed (device error, unreadable model...)."""

    exit_code = EXIT_FAILED


class BudgetExceeded(LstmInspectError):
    """A ``--max-...`` budget was exceeded; the report itself is still printed."""

    exit_code = EXIT_BUDGET


class LstmInspectWarning(UserWarning):
    """Something the user should know that does not stop the work (e.g. CUDA fallback)."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name when empty), cut to ``limit`` characters:
    what a one-line ``error: ...`` can quote of a library's multi-line message."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
