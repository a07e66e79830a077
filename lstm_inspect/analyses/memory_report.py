"""What ``memory`` reports: one cell per (batch, seq), the budget search, and what the sweep covered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from lstm_inspect.errors import InvalidInput
from lstm_inspect.reporting import Rendered

MODES = ("infer", "train")
OPTIMIZERS = ("none", "sgd", "adam")
DTYPES = ("float32", "float16", "bfloat16")
METHODS = ("measure", "estimate", "both")

#: Largest batch the budget search tries (token ids are indexed with int64; beyond this is a typo).
MAX_SEARCH_BATCH = 2**40


@dataclass(frozen=True)
class MemoryCell:
    """One (batch, seq) point. Bytes are the step's increment (plus optimizer state in train mode)."""

    batch_size: int
    seq_len: int
    status: str                       # "ok", "oom", "error"
    measured_bytes: int | None = None
    estimated_bytes: int | None = None
    reason: str | None = None         # why the status is not ok
    extrapolated: bool = False        # the estimate comes from the law fitted to a few traces, not a trace

    @property
    def error_ratio(self) -> float | None:
        """|estimate − measured| / measured, when both exist."""
        if self.measured_bytes is None or self.estimated_bytes is None or self.measured_bytes <= 0:
            return None
        return abs(self.estimated_bytes - self.measured_bytes) / self.measured_bytes

    @property
    def signed_error(self) -> float | None:
        """(estimate − measured) / measured, when both exist."""
        if self.error_ratio is None:
            return None
        return (self.estimated_bytes - self.measured_bytes) / self.measured_bytes  # type: ignore[operator]

    @property
    def bytes(self) -> int | None:
        """The figure a budget checks: measured where there is one, else estimated."""
        return self.measured_bytes if self.measured_bytes is not None else self.estimated_bytes


@dataclass(frozen=True)
class BudgetFit:
    """For one sequence length: the largest batch whose weights + increment fit in the budget."""

    seq_len: int
    max_batch_size: int               # 0: not even a batch of one fits
    estimated_bytes: int | None       # its increment (None when max_batch_size is 0)
    total_bytes: int | None = None    # weights + that increment: what the budget holds


@dataclass(frozen=True)
class MemoryReport(Rendered):
    model: dict[str, Any]
    mode: str
    optimizer: str
    train_loop: str | None            # "usual" or "lean" in train mode; None in infer mode
    dtype: str
    device: str
    method: str
    batch_sizes: tuple[int, ...]
    seq_lens: tuple[int, ...]
    lengths: tuple[int, ...] | None
    weights_bytes: int
    optimizer_state_bytes: int
    cells: tuple[MemoryCell, ...]
    interrupted: bool = False
    budget_bytes: int | None = None
    budget_fits: tuple[BudgetFit, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def total_cells(self) -> int:
        return len(self.batch_sizes) * len(self.seq_lens)

    def cell(self, batch_size: int, seq_len: int) -> MemoryCell | None:
        for c in self.cells:
            if c.batch_size == batch_size and c.seq_len == seq_len:
                return c
        return None

    @property
    def complete(self) -> bool:
        """Every cell of the grid ran and none failed (an ``oom`` cell is an answer, an ``error`` is not)."""
        return (not self.interrupted and len(self.cells) == self.total_cells
                and all(c.status != "error" for c in self.cells))

    @property
    def has_figures(self) -> bool:
        """At least one cell has a figure (measured or estimated)."""
        return any(c.bytes is not None for c in self.cells)

    def failures(self, cells: Sequence[MemoryCell] | None = None) -> str:
        """``'20 of 20 cells failed: <reason>'``, each distinct reason once, with how many cells gave it."""
        cells = [c for c in (self.cells if cells is None else cells) if c.reason]
        reasons = grouped_reasons(cells)
        text = "; ".join(f"{reason} ({len(group)} cells)" if len(group) > 1 and len(reasons) > 1 else reason
                         for reason, group in reasons.items())
        return f"{len(cells)} of {self.total_cells} cells failed: {text}"

    @property
    def max_error_ratio(self) -> float | None:
        ratios = [c.error_ratio for c in self.cells if c.error_ratio is not None]
        return max(ratios) if ratios else None


def grouped_reasons(cells: Sequence[MemoryCell]) -> dict[str, list[MemoryCell]]:
    """Cells by the reason they give, in grid order (a model that fails fails the same way in every cell)."""
    groups: dict[str, list[MemoryCell]] = {}
    for c in cells:
        if c.reason:
            groups.setdefault(c.reason, []).append(c)
    return groups


def check_choice(value: str, choices: Sequence[str], field: str) -> str:
    """``value`` (lower-cased) when it is one of ``choices``; else an input error naming ``field``."""
    text = str(value).strip().lower()
    if text not in choices:
        raise InvalidInput(f"{field} must be one of {', '.join(choices)}, got {value!r}", fields=(field,))
    return text
