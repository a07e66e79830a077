"""Printing a report: one JSON document, or Rich renderables; nothing else on stdout."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from lstm_inspect.errors import InvalidInput


def emit(report: Any, *, as_json: bool, to_json: Callable[[Any], dict], to_rich: Callable[[Any], Iterable],
         output: Path | None = None) -> None:
    """Print ``report`` as JSON or as Rich renderables; with ``output``, also save the JSON there."""
    from lstm_inspect.render.common import dumps

    if output is not None:
        write_atomic(output, dumps(to_json(report)) + "\n")
    if as_json:
        sys.stdout.write(dumps(to_json(report)) + "\n")
        return
    from lstm_inspect.render.common import make_console

    console = make_console()
    for renderable in to_rich(report):
        console.print(renderable)
    if output is not None:
        sys.stderr.write(f"saved the JSON report to {output}\n")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename.

    A reader (or a crash) never sees a half-written report.
    """
    path = Path(path).expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidInput(f"--output {path}: folder {folder} does not exist")
    if path.is_dir():
        raise InvalidInput(f"--output {path}: is a directory; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InvalidInput(f"--output {path}: cannot write there ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
