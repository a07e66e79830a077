"""The CI budget options (``--max-params``, ``--max-macs``, ``--max-memory``), defined once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Mapping, Optional

import typer

from lstm_inspect.budgets import Budget, enforce

if TYPE_CHECKING:
    from lstm_inspect.analyses.memory import MemoryReport

BUDGET_PANEL = "Budgets (CI)"

MaxParams = Annotated[Optional[str], typer.Option(
    "--max-params", help="Exit 1 when the parameter total exceeds this (e.g. 90M, 1.5G).",
    rich_help_panel=BUDGET_PANEL, show_default=False)]
MaxMacs = Annotated[Optional[str], typer.Option(
    "--max-macs", help="Exit 1 when forward MACs exceed this (e.g. 2G, 1.5e9).",
    rich_help_panel=BUDGET_PANEL, show_default=False)]
MaxMemory = Annotated[Optional[str], typer.Option(
    "--max-memory", help="Exit 1 when a cell's memory increment exceeds this (e.g. 512MiB, 24GiB).",
    rich_help_panel=BUDGET_PANEL, show_default=False)]


@dataclass(frozen=True)
class Limits:
    """Budgets parsed before any work is done (a bad budget is an input error, exit 2)."""

    params: int | None = None
    macs: int | None = None
    memory: int | None = None

    @classmethod
    def parse(cls, *, max_params: str | None = None, max_macs: str | None = None,
              max_memory: str | None = None) -> "Limits":
        from lstm_inspect.quantity import parse_bytes, parse_count

        return cls(
            params=parse_count(max_params, "--max-params") if max_params is not None else None,
            macs=parse_count(max_macs, "--max-macs") if max_macs is not None else None,
            memory=parse_bytes(max_memory, "--max-memory") if max_memory is not None else None,
        )

    def enforce(self, *, params: int | None = None, macs: int | None = None,
                memory: "MemoryReport | None" = None, missing: Mapping[str, str] | None = None) -> None:
        """Check every budget that was given; report all that failed.

        A budget whose figure is missing (``None``; a memory cell without a figure) is never met: it
        fails the run (exit 3) with the reason from ``missing`` (keys ``params``, ``macs``, ``memory``),
        or is named beside the budgets that were exceeded (exit 1).
        """
        from lstm_inspect.units import human_bytes, human_count

        missing = dict(missing or {})
        budgets = []
        unchecked = []
        if self.params is not None:
            if params is None:
                unchecked.append(f"--max-params: {missing.get('params', 'no parameter count')}")
            else:
                budgets.append(Budget("--max-params", "parameters", self.params, params, human_count))
        if self.macs is not None:
            if macs is None:
                unchecked.append(f"--max-macs: {missing.get('macs', 'no MACs figure')}")
            else:
                budgets.append(Budget("--max-macs", "MACs", self.macs, macs, lambda n: human_count(n, "MACs")))
        if self.memory is not None:
            if memory is None:
                unchecked.append(f"--max-memory: {missing.get('memory', 'no memory figure')}")
            else:
                figures = [(c.bytes, c) for c in memory.cells if c.bytes is not None]
                if figures:
                    size, worst = max(figures, key=lambda pair: pair[0])
                    budgets.append(Budget("--max-memory",
                                          f"memory increment of batch {worst.batch_size} × seq {worst.seq_len}",
                                          self.memory, size, human_bytes))
                lacking = [c for c in memory.cells if c.bytes is None]
                if lacking or worst is None:
                    unchecked.append(f"--max-memory: {memory.failures(lacking)}")
        enforce(budgets, unchecked)
