"""Tables that fit the width without cutting a number.

Rich's last resort for a table wider than the console is to shrink every column evenly, which cuts
numbers (``86,696…``). :class:`FitTable` lays the table out first: a right-aligned (number) column is
never narrower than its widest line, a text column may wrap down to its longest word, and when that
is still too wide, columns are dropped from the right (never the first), with a line saying which.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Iterable


def fit_tables(renderable: Any) -> Any:
    """``renderable`` with every Table in it (top level or in a Group) laid out by :class:`FitTable`."""
    from rich.console import Group
    from rich.table import Table

    if isinstance(renderable, Table):
        return FitTable(renderable)
    if isinstance(renderable, Group):
        return Group(*(fit_tables(r) for r in renderable.renderables))
    return renderable


class FitTable:
    """A Rich Table rendered so that every number in it is whole (see the module docstring)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __rich_console__(self, console: Any, options: Any) -> Iterable[Any]:
        from rich.measure import Measurement
        from rich.text import Text

        table = self.table
        columns = list(table.columns)
        if not columns:
            yield table
            return
        wide = options.update_width(max(options.max_width, 1) * 100)

        def measure(renderable: Any) -> Measurement:
            return Measurement.get(console, wide, renderable)

        lows, highs, numeric = [], [], []
        for column in columns:
            cells = [measure(c) for c in column.cells]
            header = measure(column.header) if table.show_header and column.header != "" else Measurement(0, 0)
            is_number = column.justify == "right"
            high = max([header.maximum] + [m.maximum for m in cells])
            # A number column does not wrap: its lines are whole numbers (and their units).
            low = max([header.minimum] + [(m.maximum if is_number else m.minimum) for m in cells])
            lows.append(low)
            highs.append(high)
            numeric.append(is_number)
        pads = [table._get_padding_width(i) for i in range(len(columns))]

        def extra(count: int) -> int:
            if table.box is None:
                return 0
            return (2 if table.show_edge else 0) + max(count - 1, 0)

        keep = list(range(len(columns)))
        while len(keep) > 1 and sum(lows[i] + pads[i] for i in keep) + extra(len(keep)) > options.max_width:
            keep.pop()
        room = options.max_width - extra(len(keep)) - sum(pads[i] for i in keep)
        widths = {i: highs[i] for i in keep}
        # Text columns give way first, down to their longest word; then number columns whose header is wider
        # than their numbers (the header wraps).
        for give in (lambda i: not numeric[i], lambda i: True):
            while sum(widths.values()) > room:
                shrinkable = [i for i in keep if give(i) and widths[i] > lows[i]]
                if not shrinkable:
                    break
                widest = max(shrinkable, key=lambda i: widths[i] - lows[i])
                widths[widest] -= 1

        fitted = copy.copy(table)
        fitted.columns = [dataclasses.replace(columns[i], _index=n, width=widths[i], min_width=None, max_width=None,
                                              # a number column is as wide as its widest line, so its numbers
                                              # stay whole; only its header may wrap (no_wrap would crop it)
                                              no_wrap=columns[i].no_wrap,
                                              overflow="fold" if not numeric[i] else columns[i].overflow)
                          for n, i in enumerate(keep)]
        yield fitted
        dropped = [_name(columns[i]) for i in range(len(columns)) if i not in keep]
        if dropped:
            yield Text(f"(not shown at this width: {', '.join(dropped)}; widen the terminal, give --width, or use --json)",
                       style="dim")


def _name(column: Any) -> str:
    header = column.header
    text = header.plain if hasattr(header, "plain") else str(header)
    return " ".join(text.split()) or f"column {column._index + 1}"
