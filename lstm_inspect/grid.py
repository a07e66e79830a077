"""The batch × sequence grid every sweep uses by default (source document 000's), defined once."""

from __future__ import annotations

from typing import Sequence

#: Source document 000's grid: ``--batch_sizes 1 2 4 8 16 --seq_lens 32 64 128 256``.
DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 2, 4, 8, 16)
DEFAULT_SEQ_LENS: tuple[int, ...] = (32, 64, 128, 256)
#: Largest value of a grid axis (a token tensor's dimension; beyond it is a typo).
MAX_AXIS_VALUE = 2**31 - 1


def as_text(values: Sequence[int]) -> str:
    """``(1, 2, 4)`` -> ``'1,2,4'``: how the grid is written on the command line."""
    return ",".join(str(v) for v in values)
