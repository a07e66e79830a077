"""CI budgets (``--max-params``, ``--max-macs``, ``--max-memory``): every one that failed is reported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from lstm_inspect.errors import BudgetExceeded


@dataclass(frozen=True)
class Budget:
    option: str                    # "--max-macs"
    what: str                      # "MACs"
    limit: int
    actual: int
    fmt: Callable[[int], str]      # how a human reads the figure (human_count, human_bytes)

    @property
    def exceeded(self) -> bool:
        return self.actual > self.limit


def enforce(budgets: Iterable[Budget]) -> None:
    """Raise BudgetExceeded naming every figure over its budget (call after the report is printed)."""
    failed = [b for b in budgets if b.exceeded]
    if failed:
        raise BudgetExceeded("; ".join(
            f"{b.what} {b.fmt(b.actual)} ({b.actual:,}) exceeds {b.option} {b.fmt(b.limit)} ({b.limit:,})" for b in failed
        ))
