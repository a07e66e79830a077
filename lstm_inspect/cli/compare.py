"""``lstm-inspect compare A B [C...]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from lstm_inspect.cli.app import app
from lstm_inspect.cli.options import (
    OUTPUT_PANEL, ChartFlag, JsonFlag, OutputFile, PlotFile, TrustPickle, check_sample, user_code_quiet,
)
from lstm_inspect.cli.output import emit, output_width
from lstm_inspect.errors import InvalidInput



@app.command()
@user_code_quiet
def compare(
    ctx: typer.Context,
    sources: Annotated[List[str], typer.Argument(
        help="Two or more model sources (as --model takes them: builtin, key=value overrides, a checkpoint, "
             "a spec or config file, hf:<type>, package.module:factory). Each is compared with the first.",
        show_default=False)],
    *,
    name_a: Annotated[Optional[str], typer.Option("--name-a", help="Label of the first model (default: its source).",
                                                  show_default=False)] = None,
    name_b: Annotated[Optional[str], typer.Option("--name-b", help="Label of the second model (default: its source).",
                                                  show_default=False)] = None,
    batch: Annotated[int, typer.Option("--batch", help="Batch size for the FLOPs and memory estimates.")] = 1,
    seq: Annotated[int, typer.Option("--seq", help="Sequence length for the FLOPs and memory estimates.")] = 32,
    verbose: Annotated[bool, typer.Option("--verbose", help="List every layer, not only the changed ones.",
                                          rich_help_panel=OUTPUT_PANEL)] = False,
    trust_pickle: TrustPickle = False,
    chart: ChartFlag = True,
    plot: PlotFile = None,
    json_output: JsonFlag = False,
    output: OutputFile = None,
) -> None:
    """Models side by side: totals with reduced and reduction ratio, per component, per layer, changed
    hyperparameters and layers removed entirely (original = the first model)."""
    from lstm_inspect.analyses.compare import compare_models
    from lstm_inspect.render.compare import compare_json, compare_rich
    from lstm_inspect.cli.startup import model_loaded
    from lstm_inspect.sources import resolve_source

    if len(sources) < 2:
        raise InvalidInput("compare needs at least two model sources, e.g. lstm-inspect compare builtin hidden_dim=614")
    check_sample(batch, seq)
    from lstm_inspect.render.plot import check_plot_path

    plot_path = check_plot_path(plot) if plot is not None else None
    names = [default_label(s) for s in sources]
    if name_a is not None:
        names[0] = name_a
    if name_b is not None:
        names[1] = name_b
    if len(set(names)) < len(names):
        names = [f"{n} ({chr(ord('A') + i)})" if names.count(n) > 1 else n for i, n in enumerate(names)]
    models = [resolve_source(s, trust_pickle=trust_pickle, origin=f"compare's model {i + 1} ({s})")
              for i, s in enumerate(sources)]
    model_loaded()
    report = compare_models(models, names, batch=batch, seq=seq)
    emit(report, as_json=json_output, to_json=compare_json, to_rich=lambda r: compare_rich(r, verbose=verbose, chart=chart),
         output=output, width=output_width(ctx))
    if plot_path is not None:
        import sys

        from lstm_inspect.render.plot import compare_plot

        sys.stderr.write(f"saved the chart to {compare_plot(report, plot_path)}\n")


def default_label(source: str) -> str:
    """A file's name, else the source as written."""
    text = source.strip()
    return Path(text).name if ("/" in text or "\\" in text) and Path(text).name else text
