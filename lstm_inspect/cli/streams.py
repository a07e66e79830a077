"""The standard streams of one CLI run: what a shell and CI may rely on whatever stdout and stderr are.

* A closed pipe on stdout (``lstm-inspect report | head -1``) ends the run quietly with 141, as a
  process killed by SIGPIPE would (128 + 13): :class:`StdoutBroken`.
* Any other failure to write stdout (a full device, a closed descriptor) is one ``error: ...`` line
  and exit 3: :class:`OutputFailed`.
* stderr never fails a run: a closed or full stderr loses the message, not the exit code.
* A stream that cannot encode a character (``LC_ALL=C``, ``PYTHONIOENCODING=ascii``) gets an ASCII
  equivalent (``x`` for ``×``, ``->`` for ``→``...) instead of a UnicodeEncodeError; a lone
  surrogate (a file name that is not valid UTF-8) is written as its escape, never as raw bytes.
* While a user's code runs (a factory, a model's forward), its ``print`` goes to stderr: stdout
  holds the report only (:func:`user_code_prints_to_stderr`, :func:`results`).
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import os
import sys
import unicodedata
from typing import Any, Iterator, TextIO

from lstm_inspect.errors import AnalysisFailed

#: Exit status of a run whose stdout reader went away (128 + SIGPIPE), as ``yes | head -1`` gives.
EXIT_BROKEN_PIPE = 141

#: ASCII for the typographic characters the renderers use (box drawing is handled by Rich itself
#: when the stream is not UTF-8, and by :func:`_ascii_for` otherwise).
ASCII = {
    "×": "x", "→": "->", "←": "<-", "·": "-", "…": "...", "•": "*", "≈": "~", "≤": "<=", "≥": ">=", "−": "-",
    "–": "-", "—": "--", "‘": "'", "’": "'", "“": '"', "”": '"', "±": "+/-", "µ": "u", "÷": "/", "\u00a0": " ",
    # charts (render/charts.py): a stacked bar's second part, and the heat-map's levels as an ink ramp ending
    # in "#" (the top level, "█", like every block element)
    "▒": "=", **dict(zip("▁▂▃▄▅▆▇", ".:~o+*%")),
}
ERRORS = "lstm_inspect_ascii"


class StdoutBroken(Exception):
    """The reader of stdout went away (EPIPE): end quietly with :data:`EXIT_BROKEN_PIPE`.

    Not an OSError on purpose: Rich and Click catch BrokenPipeError/OSError on their own and exit 1.
    """


class OutputFailed(AnalysisFailed):
    """stdout or ``--output`` could not be written (full device, closed descriptor...): exit 3."""


def _ascii_for(char: str) -> str:
    if char in ASCII:
        return ASCII[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:          # a byte that was not UTF-8 (surrogateescape): show the byte
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:
        return f"\\u{code:04x}"
    if 0x2500 <= code <= 0x257F or 0x2580 <= code <= 0x259F:   # box drawing, block elements
        name = unicodedata.name(char, "")
        return "-" if "HORIZONTAL" in name else "|" if "VERTICAL" in name else "+" if 0x2500 <= code <= 0x257F else "#"
    decomposed = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode("ascii")
    return decomposed or "?"


def _fallback(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object
    out = []
    for i in range(error.start, error.end):
        char = text[i]
        # "·" between two symbols is a product (G·H -> G*H); with spaces around it, a separator (" - ").
        if char == "·" and 0 < i < len(text) - 1 and not text[i - 1].isspace() and not text[i + 1].isspace():
            out.append("*")
        else:
            out.append(_ascii_for(char))
    return "".join(out), error.end


codecs.register_error(ERRORS, _fallback)


def encodable(text: str, encoding: str | None) -> str:
    """``text`` with every character ``encoding`` cannot hold replaced by its ASCII equivalent."""
    try:
        text.encode(encoding or "utf-8")
        return text
    except (UnicodeEncodeError, LookupError):
        return text.encode(encoding or "utf-8", ERRORS).decode(encoding or "utf-8", "replace")


def is_utf(stream: Any) -> bool:
    """Whether ``stream`` encodes UTF-8 (so any character but a lone surrogate can be written)."""
    encoding = (getattr(stream, "encoding", None) or "utf-8").lower().replace("-", "").replace("_", "")
    return encoding.startswith("utf")


class _Stream:
    """A proxy for sys.stdout / sys.stderr that encodes what the stream cannot, and maps write failures."""

    def __init__(self, wrapped: TextIO, name: str) -> None:
        self._wrapped = wrapped
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._wrapped, attr)

    def _failed(self, exc: OSError) -> None:
        if self._name == "stderr":
            return  # nowhere left to say it; the exit code still tells
        if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
            raise StdoutBroken() from None
        raise OutputFailed(f"cannot write the output to stdout: {exc.strerror or exc}") from None

    def write(self, text: str) -> int:
        try:
            try:
                return self._wrapped.write(text)
            except UnicodeEncodeError:
                return self._wrapped.write(encodable(text, getattr(self._wrapped, "encoding", None)))
        except (OSError, ValueError) as exc:    # ValueError: a closed file object
            self._failed(exc if isinstance(exc, OSError) else OSError(errno.EBADF, "stdout is closed"))
            return 0

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._wrapped.flush()
        except (OSError, ValueError) as exc:
            self._failed(exc if isinstance(exc, OSError) else OSError(errno.EBADF, "stdout is closed"))


class _Closed:
    """What stdout is when its descriptor was closed (``>&-``): every write fails with EBADF."""

    encoding = "utf-8"
    errors = "strict"

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "Bad file descriptor (stdout is closed)")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "stdout is closed")


def _occupy_closed_descriptors() -> None:
    """A closed 0, 1 or 2 gets /dev/null, so that no file this run opens takes its number (a report
    opened as descriptor 1 would receive whatever a library prints)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_RDWR)
            except OSError:
                return
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


_results: TextIO | None = None


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """sys.stdout and sys.stderr wrapped for one run (restored afterwards: the CLI may run in-process)."""
    saved = sys.stdout, sys.stderr
    if sys.stdout is None or sys.stderr is None:
        _occupy_closed_descriptors()
    out = sys.stdout if sys.stdout is not None else _Closed()
    err = sys.stderr if sys.stderr is not None else open(os.devnull, "w", encoding="utf-8")
    sys.stdout = _Stream(out, "stdout")  # type: ignore[arg-type]
    sys.stderr = _Stream(err, "stderr")
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def silence_stdout() -> None:
    """After stdout failed: point descriptor 1 at /dev/null so that the interpreter's last flush of
    what is still buffered cannot fail again (and print 'Exception ignored' or exit 120)."""
    stream = sys.stdout
    while isinstance(stream, _Stream):
        stream = stream._wrapped
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return  # not a real descriptor (tests run in-process): nothing will be flushed at exit
    if fd != 1:
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass


def results() -> TextIO:
    """The stream results go to: stdout, even while :func:`user_code_prints_to_stderr` is in force."""
    return _results if _results is not None else sys.stdout


@contextlib.contextmanager
def user_code_prints_to_stderr() -> Iterator[None]:
    """While a command computes (a factory, a model's forward), ``print`` goes to stderr: with ``--json``
    stdout must hold one JSON document and nothing else. :func:`results` still names stdout."""
    global _results
    previous = _results
    _results = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _results = previous
