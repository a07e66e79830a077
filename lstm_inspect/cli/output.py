"""Printing a report: one JSON document, or Rich renderables; nothing else on stdout. And ``--output``.

``--output`` replaces a regular file (or creates a new one) atomically: a temporary file in the same
folder, then a rename, so no reader ever sees half a report and a failed write leaves the old file
as it was. Anything else the path names (a character device such as ``/dev/null`` or ``/dev/stdout``,
a FIFO, or a link to one) is written in place: a rename would replace the device node or the pipe
with a regular file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from lstm_inspect.errors import InvalidInput


def output_width(ctx: Any) -> int | None:
    """The ``--width`` the root command took (the Typer context carries it), None for the terminal's."""
    return (ctx.obj or {}).get("width") if isinstance(ctx.obj, dict) else None


def emit(report: Any, *, as_json: bool, to_json: Callable[[Any], dict], to_rich: Callable[[Any], Iterable],
         output: str | Path | None = None, default_name: str | None = None, width: int | None = None) -> None:
    """Print ``report`` as JSON or as Rich renderables; with ``output``, also save the JSON there.

    Args:
        output: ``--output`` as given; a directory is accepted when ``default_name`` names the file to
            write in it (``report``).
    """
    import sys

    from lstm_inspect.cli.streams import is_utf, results
    from lstm_inspect.render.common import dumps

    saved = write_output(output, dumps(to_json(report)) + "\n", default_name=default_name) if output is not None else None
    stdout = results()
    if as_json:
        stdout.write(dumps(to_json(report), ascii_only=not is_utf(stdout)) + "\n")
        return
    from lstm_inspect.render.common import make_console
    from lstm_inspect.render.fit import fit_tables

    console = make_console(file=stdout, width=width, warn=True)
    for renderable in to_rich(report):
        console.print(fit_tables(renderable))
    if saved is not None:
        sys.stderr.write(f"saved the JSON report to {saved}\n")


def _stat(path: Path, raw: str) -> os.stat_result | None:
    """``os.stat`` (links followed); None when nothing is there; a path that cannot be used is exit 2."""
    from lstm_inspect.paths import stat_or_none

    return stat_or_none(path, f"--output {raw}")


def write_output(raw: str | Path, text: str, *, default_name: str | None = None) -> Path:
    """Save ``text`` where ``--output`` says; returns the path written.

    A regular file or a new path: atomically (temporary file + rename). A character device, a FIFO (or
    a link to one): written in place. A directory: ``default_name`` inside it, else an input error.
    """
    raw = os.fspath(raw)
    if not raw.strip():
        raise InvalidInput("--output needs a file name, got an empty value")
    path = Path(raw).expanduser()
    wants_dir = raw.endswith(("/", os.sep))
    info = _stat(path, raw)
    if info is not None and stat.S_ISDIR(info.st_mode):
        if default_name is None:
            raise InvalidInput(f"--output {raw}: is a directory; give a file name")
        path = path / default_name
        info = _stat(path, raw)
    elif wants_dir:
        raise InvalidInput(f"--output {raw}: no such directory" if default_name is not None
                           else f"--output {raw}: names a directory; give a file name")
    data = text.encode("utf-8", "lstm_inspect_ascii")
    if info is not None and not stat.S_ISREG(info.st_mode):
        _write_in_place(path, raw, data)
    else:
        _write_atomic(path, raw, data, info)
    return path


def _write_in_place(path: Path, raw: str, data: bytes) -> None:
    """A device or a FIFO: open it for writing (no create, no rename) and write everything."""
    from lstm_inspect.cli.streams import OutputFailed

    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InvalidInput(f"--output {raw}: cannot open it for writing ({exc.strerror})") from None
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError as exc:
        raise OutputFailed(f"--output {raw}: cannot write the report ({exc.strerror})") from None
    finally:
        os.close(fd)


def _write_atomic(path: Path, raw: str, data: bytes, info: os.stat_result | None) -> None:
    """A temporary file in the target's folder, then a rename over the target (a regular file or nothing).

    A link to a regular file is followed: its target is replaced, the link stays.
    """
    from lstm_inspect.cli.streams import OutputFailed

    if path.is_symlink():
        path = Path(os.path.realpath(path))
    folder = path.parent if str(path.parent) else Path(".")
    folder_info = _stat(folder, raw)
    if folder_info is None or not stat.S_ISDIR(folder_info.st_mode):
        raise InvalidInput(f"--output {raw}: folder {folder} does not exist")
    try:
        # A short name of our own: the target's name may already be as long as the system allows.
        fd, tmp = tempfile.mkstemp(prefix=".lstm-inspect-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InvalidInput(f"--output {raw}: cannot write there ({exc.strerror})") from None
    try:
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            # mkstemp makes the file private; a report gets the mode of the file it replaces, or the
            # usual mode of a new file (0666 less the umask).
            os.chmod(tmp, stat.S_IMODE(info.st_mode) if info is not None else 0o666 & ~_umask())
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputFailed(f"--output {raw}: cannot write the report ({exc.strerror})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
