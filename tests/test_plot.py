"""--plot FILE: a real image, read back with matplotlib's reader; a clear error without the extra."""

from __future__ import annotations

import sys

from typer.testing import CliRunner

from lstm_inspect.cli import app

runner = CliRunner()
SMALL = ["--embed-dim", "16", "--hidden-dim", "16", "--vocab-size", "100"]


def _read(path):
    import matplotlib.image

    return matplotlib.image.imread(path)


def test_memory_plot_writes_a_png(tmp_path):
    target = tmp_path / "grid.png"
    result = runner.invoke(app, ["memory", *SMALL, "--batch-sizes", "1,2", "--seq-lens", "4,8", "--plot", str(target)])
    assert result.exit_code == 0, result.output
    image = _read(target)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_compare_plot_writes_a_png_and_an_svg(tmp_path):
    png, svg = tmp_path / "cmp.png", tmp_path / "cmp.svg"
    for target in (png, svg):
        result = runner.invoke(app, ["compare", "hidden_dim=16", "hidden_dim=8", "--plot", str(target)])
        assert result.exit_code == 0, result.output
    assert _read(png).shape[0] > 100
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()


def test_a_plot_name_without_png_or_svg_is_an_input_error(tmp_path):
    result = runner.invoke(app, ["memory", *SMALL, "--plot", str(tmp_path / "chart.gif")])
    assert result.exit_code == 2 and ".png or .svg" in result.stderr


def test_without_matplotlib_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import matplotlib now raises ImportError
    result = runner.invoke(app, ["memory", *SMALL, "--plot", str(tmp_path / "chart.png")])
    assert result.exit_code == 2
    assert 'pip install "lstm-inspect[plot]"' in result.stderr
    assert not (tmp_path / "chart.png").exists()


def test_generation_plot_writes_a_png_and_an_svg(tmp_path):
    png, svg = tmp_path / "gen.png", tmp_path / "gen.svg"
    for target in (png, svg):
        result = runner.invoke(app, ["generation", *SMALL, "--contexts", "16,64,256", "--batch-sizes", "1,4",
                                     "--plot", str(target)])
        assert result.exit_code == 0, result.output
        assert f"saved the chart to {target}" in result.stderr
    image = _read(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    import xml.etree.ElementTree as ET

    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    text = svg.read_text()
    for label in ("weights", "recurrent state, batch 1", "recurrent state, batch 4", "context (tokens)"):
        assert label in text


def test_generation_plot_without_matplotlib_names_the_extra_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = runner.invoke(app, ["generation", *SMALL, "--plot", str(tmp_path / "gen.png")])
    assert result.exit_code == 2 and 'pip install "lstm-inspect[plot]"' in result.stderr
    assert result.stdout == "" and not (tmp_path / "gen.png").exists()
