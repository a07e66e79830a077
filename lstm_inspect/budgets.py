"""CI budgets (``--max-params``, ``--max-macs``, ``--max-memory``): every one that failed is reported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from lstm_inspect.errors import AnalysisFailed, BudgetExceeded


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


def enforce(budgets: Iterable[Budget], unchecked: Sequence[str] = ()) -> None:
    """Raise BudgetExceeded naming every figure over its budget (call after the report is printed).

    Args:
        unchecked: budgets that were given but whose figure is missing, each as ``'--max-macs: why'``. A
            budget is never reported as met without its figure: with nothing exceeded they fail the run
            (AnalysisFailed, exit 3); with something exceeded they are named after it.
    """
    failed = [b for b in budgets if b.exceeded]
    missing = [f"{text} (not checked)" for text in unchecked]
    if failed:
        raise BudgetExceeded("; ".join(
            [f"{b.what} {b.fmt(b.actual)} ({b.actual:,}) exceeds {b.option} {b.fmt(b.limit)} ({b.limit:,})"
             for b in failed] + missing
        ))
    if missing:
        raise AnalysisFailed("no figure to check a budget against: " + "; ".join(missing))
