"""``lstm-inspect memory``."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from lstm_inspect.cli.app import app
from lstm_inspect.cli.budget_options import Limits, MaxMemory
from lstm_inspect.cli.options import (
    DEFAULT_BATCH_SIZES_TEXT, DEFAULT_SEQ_LENS_TEXT,
    MAX_MEMORY_CELLS, ChartFlag, JsonFlag, ModelOptions, OutputFile, PlotFile, check_grid, model_options, parse_grid_axis,
    parse_lengths,
)
from lstm_inspect.cli.output import emit, output_width
from lstm_inspect.errors import EXIT_INTERRUPTED, AnalysisFailed, InvalidInput

SWEEP_PANEL = "Sweep"
#: Beyond these a grid value is a typo (the estimate would still answer; the measurement could not).


def _opt(*names: str, help: str, **kwargs):
    return typer.Option(*names, help=help, rich_help_panel=SWEEP_PANEL, **kwargs)


@app.command()
@model_options
def memory(
    ctx: typer.Context,
    *,
    model_opts: ModelOptions,
    batch_sizes: Annotated[str, _opt("--batch-sizes", help="Batch sizes (rows), e.g. 1,2,4,8,16.")] = DEFAULT_BATCH_SIZES_TEXT,
    seq_lens: Annotated[str, _opt("--seq-lens", help="Sequence lengths (columns), e.g. 32,64,128,256.")] = DEFAULT_SEQ_LENS_TEXT,
    lengths: Annotated[Optional[str], _opt("--lengths", help="One packed batch of these sequence lengths (32,17,5 or a "
                                           "file of one length per line) instead of the grid.", show_default=False)] = None,
    method: Annotated[str, _opt("--method", help="measure, estimate (fake tensors, nothing allocated) or both. Default "
                                "auto: both on CUDA, estimate on the CPU (measuring there runs the real forwards).")] = "auto",
    mode: Annotated[str, _opt("--mode", help="infer (forward under no_grad) or train (forward + loss + backward "
                              "[+ optimizer.step()]).")] = "infer",
    optimizer: Annotated[str, _opt("--optimizer", help="train mode: none, sgd (no momentum: no state) or adam "
                                   "(two moments per parameter); its step really runs.")] = "none",
    train_loop: Annotated[str, _opt("--train-loop", help="train mode: usual (logits referenced through backward, as "
                                    "users write it) or lean (logits freed before backward).")] = "usual",
    dtype: Annotated[str, _opt("--dtype", help="float32, float16 or bfloat16 (weights and activations).")] = "float32",
    device: Annotated[str, _opt("--device", help="Where to measure, and whose kernels the estimate models: auto, cpu, cuda or cuda:N. "
                                                      "An estimate for cuda needs no GPU; measuring without one: warning, CPU.")] = "auto",
    budget: Annotated[Optional[str], _opt("--budget", help="Device memory, e.g. 24GiB: per sequence length, the largest "
                                          "batch whose weights + estimated increment fit.", show_default=False)] = None,
    trace_every_cell: Annotated[bool, _opt("--trace-every-cell", help="Estimate: trace every cell, even where a "
                                           "law fitted to a few traces gives the rest (cells marked ~).")] = False,
    max_memory: MaxMemory = None,
    chart: ChartFlag = True,
    plot: PlotFile = None,
    json_output: JsonFlag = False,
    output: OutputFile = None,
) -> None:
    """Memory increment of one forward (or training step) over a batch × seq grid: measured and/or estimated."""
    from lstm_inspect.analyses.memory import DTYPES, METHODS, MODES, OPTIMIZERS, check_choice

    mode = check_choice(mode, MODES, "mode")
    optimizer = check_choice(optimizer, OPTIMIZERS, "optimizer")
    if optimizer != "none" and mode != "train":
        raise InvalidInput(f"--optimizer {optimizer} applies to --mode train only")
    from lstm_inspect.analyses.memory import TRAIN_LOOPS

    train_loop = check_choice(train_loop, TRAIN_LOOPS, "--train-loop")
    if train_loop != "usual" and mode != "train":
        raise InvalidInput(f"--train-loop {train_loop} applies to --mode train only")
    dtype = check_choice(dtype, DTYPES, "dtype")
    method = check_choice(method, ("auto", *METHODS), "method")
    batches = parse_grid_axis(batch_sizes, "--batch-sizes")
    seqs = parse_grid_axis(seq_lens, "--seq-lens")
    check_grid(batches, seqs, MAX_MEMORY_CELLS)
    packed = parse_lengths(lengths) if lengths is not None else None
    from lstm_inspect.quantity import parse_bytes

    budget_bytes = parse_bytes(budget, "--budget") if budget is not None else None
    limits = Limits.parse(max_memory=max_memory)
    from lstm_inspect.render.plot import check_plot_path

    plot_path = check_plot_path(plot) if plot is not None else None

    loaded = model_opts.load()
    if packed is not None and budget_bytes is not None:
        raise InvalidInput("--budget searches the batch size of the grid; it does not apply to --lengths (one batch)")
    if packed is not None and loaded.spec is None:
        raise InvalidInput("--lengths (packed input) applies to the built-in model family only")
    from lstm_inspect.analyses.memory import sweep_memory
    from lstm_inspect.building import resolve_device
    from lstm_inspect.render.memory import memory_json, memory_rich

    from lstm_inspect.cli import sweep_policy

    import torch

    # An estimate runs nothing on the device: --device cuda without a GPU still models CUDA's kernels.
    target = resolve_device(device, measuring=method in ("measure", "both"))
    if method == "auto":
        method = "both" if target.type == "cuda" and torch.cuda.is_available() else "estimate"
    guarded = target.type == "cpu" and sweep_policy.available_host_bytes() is not None
    with _progress() as on_cell, sweep_policy.interruptible() as stop:
        report = sweep_memory(loaded, batch_sizes=batches, seq_lens=seqs, method=method, mode=mode, optimizer=optimizer,
                              train_loop=train_loop, dtype=dtype, device=target, lengths=packed, budget_bytes=budget_bytes, on_cell=on_cell,
                              should_stop=stop.is_set, admit=sweep_policy.host_admit if guarded else None,
                              trace_every_cell=trace_every_cell)
    emit(report, as_json=json_output, to_json=memory_json, to_rich=lambda r: memory_rich(r, chart=chart),
         output=output, width=output_width(ctx))
    if plot_path is not None and report.has_figures:
        from lstm_inspect.render.plot import memory_plot

        sys.stderr.write(f"saved the chart to {memory_plot(report, plot_path)}\n")
    if report.interrupted:
        sys.stderr.write(f"interrupted: {len(report.cells)} of {report.total_cells} cells finished (shown above)\n")
        raise typer.Exit(EXIT_INTERRUPTED)
    if report.cells and not report.has_figures:  # CI must not pass on a table of errors
        raise AnalysisFailed(report.failures())
    limits.enforce(memory=report)


class _progress:
    """A Rich progress bar on stderr while the sweep runs, only when stderr is a terminal."""

    def __enter__(self):
        self._bar = None
        if not sys.stderr.isatty():
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from lstm_inspect.render.common import make_console

        self._bar = Progress(TextColumn("memory"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                             TextColumn("{task.description}"), console=make_console(stderr=True), transient=True)
        self._bar.start()
        self._task = self._bar.add_task("", total=None)

        def on_cell(cell, done: int, total: int) -> None:
            self._bar.update(self._task, completed=done, total=total,
                             description=f"batch {cell.batch_size} × seq {cell.seq_len}: {cell.status}")

        return on_cell

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
