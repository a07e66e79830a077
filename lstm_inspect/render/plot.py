"""``--plot FILE``: a real image (PNG or SVG) through matplotlib, the optional ``plot`` extra.

Two chart shapes cover the views: series over an axis (memory over sequence length, one line per batch
size; the generation-memory curves, recurrent state vs KV cache over context) and grouped
bars (compare's models side by side). matplotlib is imported only when a chart is drawn.
"""

from __future__ import annotations

from pathlib import Path
import operator
from typing import Any, Callable, Sequence

from lstm_inspect.errors import InvalidInput

FORMATS = (".png", ".svg")
EXTRA = 'pip install "lstm-inspect[plot]"'


def check_plot_path(raw: str) -> Path:
    """The ``--plot`` path, checked before any work: a PNG or SVG name, and matplotlib installed."""
    path = Path(raw).expanduser()
    if path.suffix.lower() not in FORMATS:
        raise InvalidInput(f"--plot {raw}: give a .png or .svg file name")
    _pyplot()
    return path


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise InvalidInput(f"--plot needs matplotlib, which is not installed: {EXTRA}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def series_chart(path: Path, x: Sequence[float], series: dict[str, Sequence[float | None]], *, title: str,
                 xlabel: str, ylabel: str, log: bool = True) -> Path:
    """Lines over one axis (``series``: a label and one value per x, None where there is none)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for label, ys in series.items():
        points = [(a, b) for a, b in zip(x, ys) if b is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    if log:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def bar_chart(path: Path, groups: Sequence[str], series: dict[str, Sequence[float]], *, title: str,
              ylabel: str) -> Path:
    """Grouped bars: one group per quantity, one bar per series (a model) in each."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    width = 0.8 / max(len(series), 1)
    for i, (label, values) in enumerate(series.items()):
        ax.bar([g + i * width for g in range(len(groups))], values, width, label=label)
    ax.set_xticks([g + width * (len(series) - 1) / 2 for g in range(len(groups))], groups)
    ax.set(title=title, ylabel=ylabel)
    ax.legend(fontsize="small")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    try:
        fig.tight_layout()
        fig.savefig(path)
    except OSError as exc:
        raise InvalidInput(f"--plot {path}: cannot write the image ({exc.strerror})") from None
    finally:
        plt.close(fig)
    return path


def memory_plot(report, path: Path) -> Path:
    """The memory grid as lines: MiB over sequence length, one line per batch size."""
    series: dict[str, Sequence[float | None]] = {f"batch {b}": [None if (c := report.cell(b, s)) is None or c.bytes is None else c.bytes / 2**20
                             for s in report.seq_lens] for b in report.batch_sizes}
    step = "forward (no_grad)" if report.mode == "infer" else "training step"
    return series_chart(path, list(report.seq_lens), series, title=f"Memory increment of one {step}",
                        xlabel="sequence length", ylabel="MiB")


def compare_plot(report, path: Path) -> Path:
    """Each model's parameters, MACs and memory as a share of the first model's (100%)."""
    first = report.comparisons[0]
    quantities: list[tuple[str, Callable[[Any], Any]]] = [("params", lambda p: p.total)]
    quantities += [(q, operator.attrgetter(a)) for q, a in (("MACs", "macs"), ("memory", "memory_bytes"))
                   if getattr(first, a) is not None and getattr(first, a).original]
    series: dict[str, Sequence[float]] = {report.names[0]: [100.0] * len(quantities)}
    for p in report.comparisons:
        series[p.pruned_name] = [100.0 * get(p).pruned / get(p).original if get(p).original else 0.0
                                 for _, get in quantities]
    return bar_chart(path, [q for q, _ in quantities], series, title="Each model against the first",
                     ylabel="% of the first model")


def generation_plot(report, path: Path) -> Path:
    """The generation-memory curves over context: the weights, and each batch size's state (recurrent state
    or KV cache, with one decoding step's output), in MiB."""
    series: dict[str, Sequence[float | None]] = {"weights": [report.weights_bytes / 2**20] * len(report.rows)}
    for column, batch in enumerate(report.batch_sizes):
        series[f"{report.kind}, batch {batch}"] = [
            (row.total_bytes[column] - report.weights_bytes) / 2**20 or None for row in report.rows]
    return series_chart(path, [row.context for row in report.rows], series, xlabel="context (tokens)", ylabel="MiB",
                        title=f"Generation memory ({report.dtype}): {report.kind} vs weights")
