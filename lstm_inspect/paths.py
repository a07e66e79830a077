"""Paths the user gives (``--model``, spec files, ``--lengths``, ``--tokenizer``, ``--output``): checked
before anything is opened, and read with a size bound.

A path that cannot be used is invalid input (exit 2) with one line naming the option: no permission to
look it up, a name longer than the system allows, a loop of links, or something that is not a regular
file where a file is read (a FIFO would block forever, ``/dev/zero`` would fill memory). A text file
larger than its bound is not a spec or a list of lengths; it is refused without being read in full.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Iterator

from lstm_inspect.errors import AnalysisFailed, InvalidInput

#: Spec and config files (.json/.toml) are a few KB; anything this large is not one.
SPEC_LIMIT = 16 * 2**20

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def kind(mode: int) -> str:
    """What a file of this mode is, in words."""
    for test, words in _KINDS:
        if test(mode):
            return words
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def _why(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (a folder on the way cannot be searched, or the file cannot be read)"
    if exc.errno == errno.ENAMETOOLONG:
        return "the file name is longer than the system allows"
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links"
    if exc.errno == errno.ENOTDIR:
        return "a part of the path is not a directory"
    return exc.strerror or type(exc).__name__


def stat_or_none(path: str | os.PathLike, where: str) -> os.stat_result | None:
    """``os.stat(path)`` (links followed), or None when nothing is there.

    Args:
        where: the option and value as the user gave them, for the message (``--model x.pt``).

    Raises:
        InvalidInput: the path cannot be looked up (permission, name too long, loop of links...).
    """
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            return None  # "file.txt/x": there is no such file
        raise InvalidInput(f"{where}: {_why(exc)}") from None
    except ValueError:  # an embedded NUL
        raise InvalidInput(f"{where}: not a valid path") from None


def regular_file(path: str | os.PathLike, where: str) -> Path:
    """``path`` if it names a regular file (links followed); otherwise one clear input error."""
    info = stat_or_none(path, where)
    if info is None:
        raise InvalidInput(f"{where}: no such file")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"{where}: is {kind(info.st_mode)}, not a regular file")
    return Path(path)


def existing(path: str | os.PathLike, where: str, *, allow_dir: bool = True) -> os.stat_result | None:
    """None when nothing is at ``path``; its stat when it is a regular file (or a directory, when
    ``allow_dir``); an input error for anything else (a FIFO, a device, a socket)."""
    info = stat_or_none(path, where)
    if info is None:
        return None
    if stat.S_ISREG(info.st_mode) or (allow_dir and stat.S_ISDIR(info.st_mode)):
        return info
    raise InvalidInput(f"{where}: is {kind(info.st_mode)}, not a regular file")


def read_bytes_bounded(path: str | os.PathLike, limit: int, where: str) -> bytes:
    """The content of the regular file ``path``, at most ``limit`` bytes.

    Opened without blocking (a FIFO swapped in after the check does not hang the run) and checked again
    on the open descriptor.

    Raises:
        InvalidInput: not a regular file, or it cannot be opened.
        AnalysisFailed: larger than ``limit`` (it cannot be what the option reads), or a read error.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InvalidInput(f"{where}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"{where}: cannot open it: {_why(exc)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(f"{where}: is {kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise AnalysisFailed(f"{where}: the file is {info.st_size:,} bytes; at most {limit:,} are read for this")
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while being read
            raise AnalysisFailed(f"{where}: the file is larger than the {limit:,} bytes read for this")
        return b"".join(chunks)
    except OSError as exc:
        raise AnalysisFailed(f"{where}: cannot read the file ({exc.strerror or type(exc).__name__})") from None
    finally:
        os.close(fd)


def read_text_bounded(path: str | os.PathLike, limit: int, where: str) -> str:
    """:func:`read_bytes_bounded` decoded as UTF-8 (a file that is not is unreadable: exit 3)."""
    data = read_bytes_bounded(path, limit, where)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise AnalysisFailed(f"{where}: not UTF-8 text") from None


def directory_of_regular_files(path: str | os.PathLike, where: str, *, limit: int = 10_000) -> None:
    """Every entry of the directory ``path`` is a regular file or a directory (links followed): a library
    that reads the directory (a tokenizer) must not open a FIFO or a device in it."""
    try:
        with os.scandir(os.fspath(path)) as entries:
            for count, entry in enumerate(entries):
                if count >= limit:
                    return
                existing(entry.path, f"{where}: {entry.name}")
    except InvalidInput:
        raise
    except OSError as exc:
        raise InvalidInput(f"{where}: cannot list the directory: {_why(exc)}") from None


#: Folders that torch and transformers create or read on first use; one that names a file stops them with a
#: FileExistsError deep inside an import.
CACHE_VARIABLES = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE",
                   "TRANSFORMERS_CACHE", "HF_MODULES_CACHE", "HF_DATASETS_CACHE")


def check_cache_variables() -> None:
    """Each cache variable that is set names a directory, or nothing yet (it will be created)."""
    for name in CACHE_VARIABLES:
        value = os.environ.get(name)
        if not value:
            continue
        info = stat_or_none(value, f"{name}={value}")
        if info is not None and not stat.S_ISDIR(info.st_mode):
            raise InvalidInput(f"{name}={value}: is {kind(info.st_mode)}, not a directory; point it at a folder "
                               "or unset it")


@contextlib.contextmanager
def cwd_importable() -> Iterator[None]:
    """The current directory on the import path while the block runs (a user's ``mymodels.py`` beside them),
    and off it again afterwards: loading one model leaves ``sys.path`` as it was."""
    import sys

    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
