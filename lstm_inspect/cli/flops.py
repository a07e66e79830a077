"""``lstm-inspect flops``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from lstm_inspect.cli.app import app
from lstm_inspect.cli.budget_options import Limits, MaxMacs
from lstm_inspect.cli.options import (
    DEFAULT_BATCH_SIZES_TEXT, DEFAULT_SEQ_LENS_TEXT, MAX_FLOPS_CELLS, OUTPUT_PANEL, JsonFlag, OutputFile, ModelOptions, check_grid,
    check_positive, model_options, parse_grid_axis, parse_lengths,
)
from lstm_inspect.cli.output import emit, output_width
from lstm_inspect.errors import AnalysisFailed, InvalidInput

INPUT_PANEL = "Input"
HARDWARE_PANEL = "Time estimate"
MAX_SIZE = 1 << 24


@app.command()
@model_options
def flops(
    ctx: typer.Context,
    *,
    model_opts: ModelOptions,
    batch: Annotated[Optional[int], typer.Option("--batch", help="Batch size for the detailed view (default 1).",
                                                 rich_help_panel=INPUT_PANEL, show_default=False)] = None,
    seq: Annotated[Optional[int], typer.Option("--seq", help="Sequence length for the detailed view (default 32, "
                                               "or max(--lengths)).", rich_help_panel=INPUT_PANEL,
                                               show_default=False)] = None,
    batch_sizes: Annotated[Optional[str], typer.Option("--batch-sizes", help="Grid: batch sizes, e.g. 1,2,4 "
                                                       f"(default in a grid: {DEFAULT_BATCH_SIZES_TEXT}).",
                                                       rich_help_panel=INPUT_PANEL, show_default=False)] = None,
    seq_lens: Annotated[Optional[str], typer.Option("--seq-lens", help="Grid: sequence lengths, e.g. 32,64 "
                                                    f"(default in a grid: {DEFAULT_SEQ_LENS_TEXT}).",
                                                    rich_help_panel=INPUT_PANEL, show_default=False)] = None,
    lengths: Annotated[Optional[str], typer.Option("--lengths", help="Packed batch: one length per sequence "
                                                   "(32,17,5) or a file with one per line; compared with padding.",
                                                   rich_help_panel=INPUT_PANEL, show_default=False)] = None,
    hardware: Annotated[Optional[str], typer.Option("--hardware", help="Estimate time on a named accelerator: "
                                                    "h100-sxm, a100-80gb, rtx-4090, t4, epyc-9654.",
                                                    rich_help_panel=HARDWARE_PANEL, show_default=False)] = None,
    peak_tflops: Annotated[Optional[float], typer.Option("--peak-tflops", help="Peak dense TFLOPS for the "
                                                         "estimate (overrides the accelerator's).",
                                                         rich_help_panel=HARDWARE_PANEL, show_default=False)] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="float32, float16 or bfloat16: bytes moved and which peak.",
                                       rich_help_panel=HARDWARE_PANEL)] = "float32",
    max_macs: MaxMacs = None,
    show_all: Annotated[bool, typer.Option("--all", help="Every module and component on its own row (identical "
                                           "consecutive blocks are one row by default).",
                                           rich_help_panel=OUTPUT_PANEL)] = False,
    output: OutputFile = None,
    json_output: JsonFlag = False,
) -> None:
    """Exact MACs and FLOPs of a forward pass (and a training step), per module and component, with
    closed-form checks, a batch × seq grid, packed vs padded input and time-on-hardware estimates."""
    from lstm_inspect.hardware import check_dtype, find_accelerator

    limits = Limits.parse(max_macs=max_macs)
    dtype = check_dtype(dtype)
    accelerator = find_accelerator(hardware) if hardware is not None else None
    if peak_tflops is not None and not 0 < peak_tflops < float("inf"):
        raise InvalidInput(f"--peak-tflops must be a positive number of TFLOPS, got {peak_tflops}")
    if accelerator is not None and peak_tflops is None:
        accelerator.peak(dtype)  # a dtype the accelerator has no peak for: fail before counting

    if batch_sizes is not None or seq_lens is not None:
        if lengths is not None or batch is not None or seq is not None:
            raise InvalidInput("--batch-sizes/--seq-lens give a grid; drop --batch, --seq and --lengths "
                               "(they are for the detailed view)")
        if accelerator is not None or peak_tflops is not None:
            raise InvalidInput("--hardware/--peak-tflops apply to the detailed view; drop --batch-sizes/--seq-lens")
        bs = parse_grid_axis(batch_sizes if batch_sizes is not None else DEFAULT_BATCH_SIZES_TEXT, "--batch-sizes")
        ss = parse_grid_axis(seq_lens if seq_lens is not None else DEFAULT_SEQ_LENS_TEXT, "--seq-lens")
        check_grid(bs, ss, MAX_FLOPS_CELLS)
        from lstm_inspect.analyses.flops import count_grid
        from lstm_inspect.render.flops import grid_json, grid_rich

        loaded = model_opts.load()
        grid = count_grid(loaded, bs, ss)
        emit(grid, as_json=json_output, to_json=grid_json, to_rich=grid_rich, output=output, width=output_width(ctx))
        actual, uncounted = grid.max_macs, grid.uncounted_ops
    else:
        seq_given = seq is not None
        if lengths is not None and batch is not None:
            raise InvalidInput("--lengths sets the batch (one sequence per length); drop --batch")
        seq = check_positive(seq if seq is not None else 32, "--seq", maximum=MAX_SIZE)
        batch = check_positive(batch if batch is not None else 1, "--batch", maximum=MAX_SIZE)
        lens = None
        if lengths is not None:
            lens = parse_lengths(lengths)
            if max(lens) > MAX_SIZE:
                raise InvalidInput(f"--lengths: every length must be at most {MAX_SIZE:,}")
            if seq_given and max(lens) > seq:
                raise InvalidInput(f"--lengths: a sequence of {max(lens)} is longer than --seq {seq}")
            if not seq_given:
                seq = max(lens)
        from lstm_inspect.analyses.flops import count_flops
        from lstm_inspect.render.flops import flops_json, flops_rich

        loaded = model_opts.load()
        report = count_flops(loaded, batch=batch, seq=seq, lengths=lens, accelerator=accelerator,
                             peak_tflops=peak_tflops, dtype=dtype)
        emit(report, as_json=json_output, to_json=flops_json,
             to_rich=lambda r: flops_rich(r, expand=show_all), output=output, width=output_width(ctx))
        actual, uncounted = report.macs, report.uncounted_ops
    from lstm_inspect.analyses.flops import nothing_counted

    empty = nothing_counted(loaded.module, actual, uncounted)
    limits.enforce(macs=None if empty else actual, missing={"macs": empty or ""})
    if empty:  # "0 MACs" is not a figure CI may pass on
        raise AnalysisFailed(empty)
