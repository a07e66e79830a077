"""Parsing the sizes users type for budgets: ``90M``, ``1.5G``, ``24GiB``, ``512MiB``."""

from __future__ import annotations

import math
import re

from lstm_inspect.errors import InvalidInput

_COUNT_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9, "T": 10**12}
_BYTE_SUFFIX = {
    "": 1, "B": 1,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
    "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40,
}
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_count(text: str, option: str) -> int:
    """``'90M' -> 90_000_000``; decimal prefixes K, M, G (or B, billions), T."""
    return _parse(text, option, _COUNT_SUFFIX, "a count like 90M, 1.5G or 1537130496", "K, M, G or T (e.g. 1.5G)")


def parse_bytes(text: str, option: str) -> int:
    """``'24GiB' -> 24 * 2**30``; KiB/MiB/GiB/TiB binary, KB/MB/GB/TB decimal, bare K/M/G binary."""
    return _parse(text, option, _BYTE_SUFFIX, "a size like 24GiB, 512MiB or 1.5GB",
                  "B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)")


def _parse(text: str, option: str, units: dict[str, int], example: str, known: str) -> int:
    number, suffix = _split(text, option, example)
    factor = units.get(suffix.upper())
    if factor is None:
        raise InvalidInput(f"{option}: unknown unit {suffix!r} in {text!r}; use {known}")
    return int(round(number * factor))


def _split(text: str, option: str, example: str) -> tuple[float, str]:
    match = _NUMBER.match(str(text))
    if not match:
        raise InvalidInput(f"{option} needs {example}; got {text!r}")
    number = float(match.group(1))
    if not math.isfinite(number) or number > 1e30:  # 1e400 reads as inf; int(inf) would crash
        raise InvalidInput(f"{option}: {text!r} is too large")
    if number <= 0:
        raise InvalidInput(f"{option} must be positive, got {text!r}")
    return number, match.group(2)
