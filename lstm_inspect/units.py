"""Human-readable numbers. Decimal prefixes for counts, binary for bytes."""

from __future__ import annotations

_DECIMAL = ((10**18, "E"), (10**15, "P"), (10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K"))
_BINARY = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def human_count(n: int | float, unit: str = "") -> str:
    """``86_700_000 -> '86.70 M'``; ``1_537_130_496, 'MACs' -> '1.54 GMACs'``."""
    sep = " "
    for factor, prefix in _DECIMAL:
        if abs(n) >= factor:
            return f"{n / factor:.2f}{sep}{prefix}{unit}"
    if isinstance(n, float) and not n.is_integer():
        return f"{n:.2f}{sep}{unit}".rstrip()
    return f"{int(n)}{sep}{unit}".rstrip()


def human_bytes(n: int | float) -> str:
    """``346_755_072 -> '330.7 MiB'``."""
    for factor, suffix in _BINARY:
        if abs(n) >= factor:
            return f"{n / factor:.1f} {suffix}"
    return f"{int(n)} B"


def mib(n: int | float) -> str:
    """Bytes as MiB with one decimal, for table columns that share one unit."""
    return f"{n / 2**20:,.1f}"


def scientific(n: int | float) -> str:
    return f"{n:.3e}"


def percent(ratio: float) -> str:
    return f"{100 * ratio:.2f}%"


def grouped(n: int) -> str:
    """``1537130496 -> '1,537,130,496'``."""
    return f"{n:,}"
