"""Terminal charts read without colour: the figures are text, the bars glyphs whose length is the value's share."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

from lstm_inspect.cli import app
from lstm_inspect.render.charts import EIGHTHS, LEVELS, MARK, Bar, BarChart, level
from lstm_inspect.units import human_bytes, human_count, mib

runner = CliRunner()
SMALL = ["--embed-dim", "16", "--hidden-dim", "16", "--vocab-size", "100"]
ESC = "\x1b["
BAR = re.compile(f"[█▒{EIGHTHS}]+")


def _render(renderable, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, no_color=True, color_system=None, highlight=False)
    console.print(renderable)
    return console.file.getvalue()


def _cells(line: str) -> float:
    """The length of the bar on ``line`` in cells, eighth blocks counted as eighths."""
    run = max(BAR.findall(line), key=len, default="")
    return sum(1.0 if g in "█▒" else (EIGHTHS.index(g) + 1) / 8 for g in run)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.integers(1, 10**12), min_size=1, max_size=6), width=st.sampled_from([40, 80, 200]))
def test_bar_lengths_are_the_values_share_of_the_largest(values, width):
    bars = [Bar(f"row {i}", (float(v),), f"{v:,}") for i, v in enumerate(values)]
    lines = _render(BarChart(bars), width).splitlines()
    assert max(len(line) for line in lines) <= width
    # The layout rule: label, bar, figure on one line when the bar gets 8 cells or more; else the label on
    # its own line, then bar and figure (or, narrower still, the bar and the figure each on a line).
    label_w, figure_w = max(len(b.label) for b in bars), max(len(b.figure) for b in bars)
    room = width - label_w - figure_w - 2
    room = room if room >= 8 else width - figure_w - 3 if width - figure_w - 3 >= 8 else width - 2
    for i, v in enumerate(values):
        at = next(n for n, line in enumerate(lines) if line == f"row {i}" or line.startswith(f"row {i} "))
        bar_line = lines[at] if BAR.search(lines[at]) else lines[at + 1]
        assert f"{v:,}" in (bar_line + " " + lines[min(at + 2, len(lines) - 1)]).split()   # the figure, whole
        # eighths of a cell: within half an eighth of the exact share (a sliver at least)
        assert abs(_cells(bar_line) - room * v / max(values)) <= 1 / 16 + 1e-9 or _cells(bar_line) == 1 / 8


def test_a_wider_console_draws_longer_bars():
    bars = [Bar("a", (3.0,), "3"), Bar("b", (1.0,), "1")]
    narrow, wide = (_cells(_render(BarChart(bars), w).splitlines()[0]) for w in (40, 200))
    assert wide > 4 * narrow > 0


def test_stacked_parts_use_two_glyphs_and_the_budget_a_line():
    text = _render(BarChart([Bar("x", (1.0, 3.0), "4 GiB")], mark=2.0), 50)
    line = text.splitlines()[0]
    assert line.count("█") >= 1 and line.count("▒") >= 1 and MARK in line and line.rstrip().endswith("4 GiB")
    # weights : state = 1 : 3 (a cell either way for rounding; the budget line may take one cell)
    assert line.count("▒") + 1 >= 3 * line.count("█") - 3


def test_heat_levels_rise_with_the_value():
    glyphs = [level(v, 10, 10**6) for v in (10, 100, 1_000, 10_000, 100_000, 10**6)]
    assert glyphs[0] == LEVELS[0] and glyphs[-1] == LEVELS[-1]
    assert [LEVELS.index(g) for g in glyphs] == sorted(LEVELS.index(g) for g in glyphs)
    assert level(None, 1, 2) == " "


def _no_color(args):
    result = subprocess.run([sys.executable, "-m", "lstm_inspect", "--width", "80", *args], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "1"})
    assert result.returncode == 0, result.stderr
    assert ESC not in result.stdout
    return result.stdout


def test_memory_heat_map_without_colour_carries_values_and_levels():
    args = ["memory", *SMALL, "--batch-sizes", "1,4", "--seq-lens", "8,64"]
    doc = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    cells = {(c["batch_size"], c["seq_len"]): c["estimated_bytes"] for c in doc["cells"]}
    text = _no_color(args)
    low, high = min(cells.values()), max(cells.values())
    for value in cells.values():
        assert f"{mib(value)} {level(value, low, high)}" in text
    assert f"{mib(high)} {LEVELS[-1]}" in text and f"{mib(low)} {LEVELS[0]}" in text
    biggest = max(cells, key=cells.__getitem__)
    assert f"largest: batch {biggest[0]} × seq {biggest[1]}" in text
    plain = runner.invoke(app, ["--width", "80", *args, "--no-chart"]).stdout
    assert not any(g in plain for g in LEVELS)


def test_generation_chart_without_colour_and_no_chart():
    # The built-in model's state: h and c of 2 layers × 768 floats per sequence (closed form), stacked on
    # the weights at the largest batch size.
    args = ["generation", "--batch-sizes", "1,4", "--contexts", "1024,4096", "--budget", "1GiB"]
    doc = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert doc["state_fixed_bytes"] == 2 * 2 * 768 * 4
    text = _no_color(args)
    chart = text[text.index("Memory at batch 4 by context"):]
    for row in doc["rows"]:
        total = row["totals"][-1]["total_bytes"]
        line = next(line for line in chart.splitlines() if line.startswith(f"{row['context']:,} "))
        assert line.rstrip().endswith(human_bytes(total)) and "█" in line and "▒" in line and MARK in line
    assert "budget 1.0 GiB" in chart
    assert "Memory at batch" not in runner.invoke(app, ["--width", "80", *args, "--no-chart"]).stdout


def test_compare_chart_pairs_the_models_bars_in_proportion():
    # an LSTM layer: 4·H·(I + H) + 8·H; two layers, the first fed 768-wide embeddings
    total = {h: 50258 * 768 + (4 * h * (768 + h) + 8 * h) + (4 * h * (h + h) + 8 * h) + h * 50258 + 50258
             for h in (768, 384)}
    text = _no_color(["compare", "builtin", "hidden_dim=384", "--name-a", "big", "--name-b", "small"])
    chart = text[text.index("Side by side"):].splitlines()
    big = next(line for line in chart if line.startswith("params") and "big" in line)
    small = next(line for line in chart if "small" in line and human_count(total[384]) in line)
    assert big.rstrip().endswith(human_count(total[768]))
    assert _cells(small) / _cells(big) == pytest.approx(total[384] / total[768], abs=1.5 / _cells(big))
    assert "Side by side" not in runner.invoke(app, ["compare", "builtin", "hidden_dim=384", "--no-chart"]).stdout


def test_an_ascii_stream_keeps_the_levels_and_the_parts_apart():
    def run(args):
        result = subprocess.run([sys.executable, "-m", "lstm_inspect", "--width", "80", *args], capture_output=True,
                                timeout=120, env={**os.environ, "PYTHONIOENCODING": "ascii"})
        assert result.returncode == 0, result.stderr
        return result.stdout.decode("ascii")   # fails on any byte outside ASCII

    grid = run(["memory", *SMALL, "--batch-sizes", "1,4,16", "--seq-lens", "8,64,512"])
    ramp = ".:~o+*%#"
    levels = set(re.findall(r"\d \|? ?([.:~o+*%#]) \|", grid))
    assert "#" in levels and len(levels) >= 3 and levels <= set(ramp)
    bars = run(["generation", "--contexts", "8", "--batch-sizes", "1,64"])
    line = next(line for line in bars.splitlines() if line.startswith("8 "))
    assert "#" in line and "=" in line
