"""``lstm-inspect params``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from lstm_inspect.cli.app import app
from lstm_inspect.cli.options import BUDGET_PANEL, OUTPUT_PANEL, JsonFlag, ModelOptions, check_positive, model_options
from lstm_inspect.cli.output import emit


@app.command()
@model_options
def params(
    *,
    model_opts: ModelOptions,
    top: Annotated[int, typer.Option("--top", help="Show the first N tensors.", rich_help_panel=OUTPUT_PANEL)] = 30,
    all_tensors: Annotated[bool, typer.Option("--all", help="Show every tensor.", rich_help_panel=OUTPUT_PANEL)] = False,
    json_output: JsonFlag = False,
    max_params: Annotated[Optional[str], typer.Option(
        "--max-params", help="Budget for CI: exit 1 when the total exceeds it (e.g. 90M, 1.5G).",
        rich_help_panel=BUDGET_PANEL, show_default=False)] = None,
) -> None:
    """Parameter counts: totals, sizes per dtype, per tensor, per component and layer type, closed-form checks."""
    from lstm_inspect.analyses.params import count_params
    from lstm_inspect.render.params import params_json, params_rich

    from lstm_inspect.budgets import Budget, enforce
    from lstm_inspect.quantity import parse_count
    from lstm_inspect.units import human_count

    check_positive(top, "--top")
    limit = parse_count(max_params, "--max-params") if max_params is not None else None
    report = count_params(model_opts.load())
    emit(report, as_json=json_output, to_json=params_json,
         to_rich=lambda r: params_rich(r, top=None if all_tensors else top))
    if limit is not None:
        enforce([Budget("--max-params", "parameters", limit, report.total, human_count)])
