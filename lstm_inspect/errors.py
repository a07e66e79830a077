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
    """The user asked for something that cannot be: fix the input and run again.

    The library names its own fields (``batch``, ``seq``, ``hidden_dim``); ``fields`` lists those the message
    names, so that the CLI can print them as the flags the user typed (``--batch``, ``--hidden-dim``).
    """

    exit_code = EXIT_USAGE

    def __init__(self, message: str = "", *, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fields = tuple(fields)


def as_flags(message: str, fields: tuple[str, ...]) -> str:
    """``message`` with each of ``fields`` spelled as its command-line flag (``hidden_dim`` -> ``--hidden-dim``).

    A name with an underscore is unambiguous and replaced wherever it stands; a plain word (``tokenizer``,
    ``batch``) only where it names the field: at the start of the message or of a clause, not in prose
    ("could not load a tokenizer").
    """
    import re

    clause = r"(?:^|(?<=; )|(?<=× )|(?<=\()|(?<=than )|(?<= and )|(?<= or )|(?<=use )|(?<=give )|(?<= to ))"
    for name in sorted(fields, key=len, reverse=True):
        if name.startswith("-"):   # already a flag
            continue
        flag = "--" + name.replace("_", "-")
        lead = r"(?<![\w-])" if "_" in name else clause
        message = re.sub(lead + re.escape(name) + r"(?![\w-])", flag, message)
    return message


class AnalysisFailed(LstmInspectError):
    """The input was valid but the work failed (device error, unreadable model...)."""

    exit_code = EXIT_FAILED


class BudgetExceeded(LstmInspectError):
    """A ``--max-...`` budget was exceeded; the report itself is still printed."""

    exit_code = EXIT_BUDGET


class LstmInspectWarning(UserWarning):
    """Something the user should know that does not stop the work (e.g. CUDA fallback)."""


def first_line(exc: BaseException, limit: int = 200, *, sentence: bool = False, with_type: bool = False) -> str:
    """The first line of an exception's message (its type name when empty), cut to ``limit`` characters:
    what a one-line ``error: ...`` can quote of a library's multi-line message.

    Args:
        sentence: only the first sentence (torch's unpickling messages run on for sentences).
        with_type: prefix the exception's type (``ValueError: ...``), for errors raised by user code.
    """
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if sentence:
        line = line.split(". ")[0]
    if with_type and text:
        line = f"{type(exc).__name__}: {line}"
    return line if len(line) <= limit else line[: limit - 3] + "..."
