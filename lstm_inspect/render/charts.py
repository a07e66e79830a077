"""Terminal charts: bars of block glyphs with the figure written after each, scaled to the console width.

A chart must read without colour (``NO_COLOR``, a pipe, a log file): the length of a bar is made of
glyphs (``█`` and the eighth blocks ``▏▎▍▌▋▊▉`` for the last cell), a second stacked part is drawn with
``▒``, and every bar carries its figure as text, whole. Colour only adds to that. The memory grid's
heat-map puts a level glyph (``▁`` … ``█``, a log scale) beside each cell's value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

#: The glyph of each stacked part of a bar, and its colour (the glyph alone must tell the parts apart).
PARTS = (("█", "cyan"), ("▒", "magenta"))
#: A bar's last, partial cell: 1/8 … 7/8 of a full block.
EIGHTHS = "▏▎▍▌▋▊▉"
#: The heat-map's levels, low to high.
LEVELS = "▁▂▃▄▅▆▇█"
#: The budget line drawn across the bars.
MARK = "┆"
#: Below this many cells a bar does not share its line with its label.
MIN_BAR = 8


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its stacked parts (values in the chart's unit) and its figure, written after it."""

    label: str
    parts: tuple[float, ...]
    figure: str


class BarChart:
    """Bars under each other: the longest bar (or ``scale``, or the budget ``mark``) fills the room the
    console leaves after the labels and the figures. ``groups`` each have a scale of their own (a chart of
    several quantities) and share the layout. Too narrow for label, bar and figure on one line, the label
    goes on a line of its own (and, narrower still, the figure too); nothing is cut."""

    def __init__(self, bars: Sequence[Bar] = (), *, groups: Sequence[Sequence[Bar]] = (), scale: float | None = None,
                 mark: float | None = None) -> None:
        self.groups = [list(g) for g in groups] or [list(bars)]
        self.mark = mark
        self.scales = [max([scale or 0.0, mark or 0.0] + [sum(b.parts) for b in g]) for g in self.groups]

    def __rich_console__(self, console: Any, options: Any) -> Iterable[Any]:
        from rich.cells import cell_len

        bars = [b for g in self.groups for b in g]
        width = max(options.max_width, 1)
        label_w = max((cell_len(b.label) for b in bars), default=0)
        figure_w = max((cell_len(b.figure) for b in bars), default=0)
        room = width - label_w - figure_w - 2
        for group, scale in zip(self.groups, self.scales):
            for bar in group:
                if room >= MIN_BAR:
                    yield self._line(bar.label + " " * (label_w - cell_len(bar.label) + 1), bar, scale, room, figure_w)
                    continue
                yield _plain(bar.label)
                own = width - figure_w - 3
                if own >= MIN_BAR:
                    yield self._line("  ", bar, scale, own, figure_w)
                else:
                    yield self._line("  ", bar, scale, max(width - 2, 1), 0)
                    yield _plain("  " + bar.figure)

    def _line(self, head: str, bar: Bar, scale: float, room: int, figure_w: int) -> Any:
        from rich.text import Text

        text = Text(head, no_wrap=True, overflow="ignore", end="\n")
        cells: list[tuple[str, str]] = []   # (glyph, style) per cell of the bar's room
        total = 0.0
        for i, value in enumerate(bar.parts):
            glyph, style = PARTS[min(i, len(PARTS) - 1)]
            total += value
            if len(bar.parts) == 1:
                drawn = _cells(value, scale, room)
            else:   # whole cells, placed by the running total so that the parts add up to the whole bar
                end = round(total / scale * room) if scale else 0
                drawn = glyph * max(end - len(cells), 1 if value > 0 else 0)
            cells += [(g, style) for g in drawn[:room - len(cells)]]
        cells += [(" ", "")] * (room - len(cells))
        if self.mark is not None and scale:   # the budget, over the bar or past its end
            cells[min(room - 1, int(self.mark / scale * room))] = (MARK, "bold red")
        for glyph, style in cells:
            text.append(glyph, style=style)
        if figure_w:
            text.append(" " + bar.figure)
        return text


def _cells(value: float, scale: float, room: int) -> str:
    """``value`` of ``scale`` as ``room`` cells: full blocks and an eighth block; a value above zero always
    shows at least a sliver."""
    if scale <= 0 or value <= 0:
        return ""
    eighths = min(max(1, round(value / scale * room * 8)), room * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[rest - 1] if rest else "")


def _plain(text: str) -> Any:
    from rich.text import Text

    return Text(text, end="\n")


def level(value: int | None, low: int, high: int) -> str:
    """The heat-map glyph of ``value`` between ``low`` and ``high`` on a log scale (the memory grid grows
    geometrically); a blank when there is no value."""
    if value is None or value <= 0:
        return " "
    if high <= low or low <= 0:
        return LEVELS[-1]
    position = (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return LEVELS[min(len(LEVELS) - 1, max(0, int(position * len(LEVELS))))]


def legend(parts: Sequence[str], *, mark: str | None = None) -> Any:
    """The key under a stacked chart: each part's glyph and what it is, and the budget line."""
    from rich.text import Text

    text = Text(style="dim")
    for i, what in enumerate(parts):
        glyph, style = PARTS[min(i, len(PARTS) - 1)]
        text.append(("  " if i else "") + glyph * 2, style=style)
        text.append(f" {what}")
    if mark:
        text.append(f"  {MARK} {mark}")
    return text
