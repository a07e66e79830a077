"""``lstm-inspect generation``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from lstm_inspect.cli.app import app
from lstm_inspect.cli.options import (
    ChartFlag, JsonFlag, ModelOptions, OutputFile, PlotFile, model_options, parse_grid_axis,
)
from lstm_inspect.cli.output import emit, output_width

PANEL = "Generation"
DEFAULT_CONTEXTS_TEXT = "1024,4096,16384,32768,65536,131072"
DEFAULT_BATCH_SIZES_TEXT = "1,8,32"
MAX_CONTEXT = 1 << 24


def _opt(*names: str, help: str, **kwargs):
    return typer.Option(*names, help=help, rich_help_panel=PANEL, **kwargs)


@app.command()
@model_options
def generation(
    ctx: typer.Context,
    *,
    model_opts: ModelOptions,
    contexts: Annotated[str, _opt("--contexts", help="Context lengths (tokens held per sequence), e.g. "
                                  "1024,4096,131072.")] = DEFAULT_CONTEXTS_TEXT,
    batch_sizes: Annotated[str, _opt("--batch-sizes", help="Sequences generated at once, e.g. 1,8,32.")]
    = DEFAULT_BATCH_SIZES_TEXT,
    dtype: Annotated[str, _opt("--dtype", help="float32, float16 or bfloat16 (weights and state).")] = "float32",
    budget: Annotated[Optional[str], _opt("--budget", help="Device memory, e.g. 24GiB: the largest batch whose "
                                          "weights + states fit, per context.", show_default=False)] = None,
    chart: ChartFlag = True,
    plot: PlotFile = None,
    json_output: JsonFlag = False,
    output: OutputFile = None,
) -> None:
    """Generation (decoding) memory over context lengths: weights + batch × the state each sequence carries
    (recurrent h/c, Mamba/RWKV/xLSTM states, or a transformer's KV cache), read from what the model returns."""
    from lstm_inspect.analyses.memory_report import DTYPES, check_choice
    from lstm_inspect.quantity import parse_bytes

    dtype = check_choice(dtype, DTYPES, "dtype")
    context_values = parse_grid_axis(contexts, "--contexts", maximum=MAX_CONTEXT)
    batches = parse_grid_axis(batch_sizes, "--batch-sizes")
    budget_bytes = parse_bytes(budget, "--budget") if budget is not None else None
    from lstm_inspect.render.plot import check_plot_path

    plot_path = check_plot_path(plot) if plot is not None else None
    loaded = model_opts.load()
    from lstm_inspect.analyses.generation import generation_memory
    from lstm_inspect.render.generation import generation_json, generation_rich

    report = generation_memory(loaded, contexts=context_values, batch_sizes=batches, dtype=dtype,
                               budget_bytes=budget_bytes)
    emit(report, as_json=json_output, to_json=generation_json, to_rich=lambda r: generation_rich(r, chart=chart),
         output=output, width=output_width(ctx))
    if plot_path is not None:
        import sys

        from lstm_inspect.render.plot import generation_plot

        sys.stderr.write(f"saved the chart to {generation_plot(report, plot_path)}\n")
