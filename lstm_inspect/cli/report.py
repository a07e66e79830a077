"""``lstm-inspect report``: the all-in-one run."""

from __future__ import annotations

import datetime as _dt
from typing import Annotated, Optional

import typer

from lstm_inspect.cli.app import app
from lstm_inspect.cli.budget_options import Limits, MaxMacs, MaxMemory, MaxParams
from lstm_inspect.cli.options import (
    DEFAULT_BATCH_SIZES_TEXT, DEFAULT_SEQ_LENS_TEXT,
    MAX_MEMORY_CELLS, OUTPUT_PANEL, JsonFlag, ModelOptions, check_grid, check_positive, check_sample, model_options,
    parse_grid_axis,
)
from lstm_inspect.cli.output import emit, output_width
from lstm_inspect.errors import InvalidInput



@app.command()
@model_options
def report(
    ctx: typer.Context,
    *,
    model_opts: ModelOptions,
    batch: Annotated[int, typer.Option("--batch", help="Batch size of the sample input (structure, FLOPs).")] = 1,
    seq: Annotated[int, typer.Option("--seq", help="Sequence length of the sample input (structure, FLOPs).")] = 32,
    batch_sizes: Annotated[str, typer.Option("--batch-sizes", help="Memory grid: batch sizes, e.g. 1,2,4.")] = DEFAULT_BATCH_SIZES_TEXT,
    seq_lens: Annotated[str, typer.Option("--seq-lens", help="Memory grid: sequence lengths, e.g. 32,64.")] = DEFAULT_SEQ_LENS_TEXT,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N: where memory is measured "
                                                         "(the estimate is always given).")] = "auto",
    depth: Annotated[Optional[int], typer.Option("--depth", help="Levels of the module tree shown.",
                                                 rich_help_panel=OUTPUT_PANEL)] = 2,
    top: Annotated[int, typer.Option("--top", help="Tensors shown in the parameter table.",
                                     rich_help_panel=OUTPUT_PANEL)] = 30,
    json_output: JsonFlag = False,
    output: Annotated[Optional[str], typer.Option(
        "--output", help="Also write the JSON report (timestamped) to this file, or into this directory as "
                         "lstm-inspect-report-<UTC time>.json.", rich_help_panel=OUTPUT_PANEL, show_default=False)] = None,
    max_params: MaxParams = None,
    max_macs: MaxMacs = None,
    max_memory: MaxMemory = None,
) -> None:
    """Everything in one go: structure, parameters, FLOPs and memory for one model (source document 000's run)."""
    from lstm_inspect.analyses.report import run_report
    from lstm_inspect.render.report import report_json, report_rich

    check_sample(batch, seq)
    if depth is not None:
        check_positive(depth, "--depth")
    check_positive(top, "--top")
    limits = Limits.parse(max_params=max_params, max_macs=max_macs, max_memory=max_memory)
    sizes = parse_grid_axis(batch_sizes, "--batch-sizes")
    lens = parse_grid_axis(seq_lens, "--seq-lens")
    check_grid(sizes, lens, MAX_MEMORY_CELLS)
    now = _dt.datetime.now(_dt.timezone.utc)
    if output is not None and not output.strip():
        raise InvalidInput("--output needs a file or a directory, got an empty value")
    loaded = model_opts.load()
    result = run_report(loaded, batch=batch, seq=seq, batch_sizes=sizes, seq_lens=lens, device=device,
                        now=now)
    emit(result, as_json=json_output, to_json=report_json,
         to_rich=lambda r: report_rich(r, depth=depth, top=top), output=output,
         default_name=f"lstm-inspect-report-{now.strftime('%Y%m%dT%H%M%SZ')}.json", width=output_width(ctx))
    from lstm_inspect.analyses.flops import nothing_counted

    flops_note = next((n.removeprefix("flops: ") for n in result.notes if n.startswith("flops: ")), "")
    memory_note = next((n.removeprefix("memory: ") for n in result.notes if n.startswith("memory: ")), "")
    flops = result.flops
    empty = nothing_counted(loaded.module, flops.macs, flops.uncounted_ops) if flops is not None else None
    limits.enforce(params=result.params.total, macs=flops.macs if flops is not None and not empty else None,
                   memory=result.memory, missing={"macs": empty or flops_note, "memory": memory_note})
