"""``lstm-inspect structure``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from lstm_inspect.cli.app import app
from lstm_inspect.cli.options import (
    OUTPUT_PANEL, JsonFlag, ModelOptions, OutputFile, check_positive, check_sample, model_options,
)
from lstm_inspect.cli.output import emit, output_width



@app.command()
@model_options
def structure(
    ctx: typer.Context,
    *,
    model_opts: ModelOptions,
    batch: Annotated[int, typer.Option("--batch", help="Batch size of the sample input.")] = 1,
    seq: Annotated[int, typer.Option("--seq", help="Sequence length of the sample input.")] = 32,
    depth: Annotated[Optional[int], typer.Option("--depth", help="Show at most this many levels below the root.",
                                                 rich_help_panel=OUTPUT_PANEL, show_default=False)] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Every block of the tree (identical consecutive blocks are "
                                           "one branch by default) and each module's full hyperparameters.",
                                           rich_help_panel=OUTPUT_PANEL)] = False,
    json_output: JsonFlag = False,
    output: OutputFile = None,
) -> None:
    """The module tree with hyperparameters, parameters and output shapes (traced without allocating)."""
    from lstm_inspect.analyses.structure import describe_structure
    from lstm_inspect.render.structure import structure_json, structure_rich

    check_sample(batch, seq)
    if depth is not None:
        check_positive(depth, "--depth")
    report = describe_structure(model_opts.load(), batch=batch, seq=seq)
    emit(report, as_json=json_output, to_json=structure_json, to_rich=lambda r: structure_rich(r, depth=depth, expand=show_all),
         output=output, width=output_width(ctx))
