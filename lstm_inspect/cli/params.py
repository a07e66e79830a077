"""``lstm-inspect params``."""

from __future__ import annotations

from typing import Annotated

import typer

from lstm_inspect.cli.app import app
from lstm_inspect.cli.budget_options import Limits, MaxParams
from lstm_inspect.cli.options import OUTPUT_PANEL, JsonFlag, ModelOptions, OutputFile, check_positive, model_options
from lstm_inspect.cli.output import emit, output_width


@app.command()
@model_options
def params(
    ctx: typer.Context,
    *,
    model_opts: ModelOptions,
    top: Annotated[int, typer.Option("--top", help="Show the first N tensors.", rich_help_panel=OUTPUT_PANEL)] = 30,
    all_tensors: Annotated[bool, typer.Option("--all", help="Show every tensor.", rich_help_panel=OUTPUT_PANEL)] = False,
    json_output: JsonFlag = False,
    output: OutputFile = None,
    max_params: MaxParams = None,
) -> None:
    """Parameter counts: totals, sizes per dtype, per tensor, per component and layer type, closed-form checks."""
    from lstm_inspect.analyses.params import count_params
    from lstm_inspect.render.params import params_json, params_rich

    check_positive(top, "--top")
    limits = Limits.parse(max_params=max_params)
    report = count_params(model_opts.load())
    emit(report, as_json=json_output, to_json=params_json,
         to_rich=lambda r: params_rich(r, top=None if all_tensors else top), output=output, width=output_width(ctx))
    limits.enforce(params=report.total)
