"""Options shared by commands: the model-building flags (one definition, injected everywhere)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Mapping, Optional

import typer

from lstm_inspect.errors import AnalysisFailed, InvalidInput, LstmInspectError, first_line
from lstm_inspect.grid import DEFAULT_BATCH_SIZES, DEFAULT_SEQ_LENS, MAX_AXIS_VALUE, as_text

if TYPE_CHECKING:
    from lstm_inspect.source import LoadedModel
    from lstm_inspect.spec import ModelSpec

MODEL_PANEL = "Model"
OUTPUT_PANEL = "Output"

#: The grid options' defaults as the command line writes them.
DEFAULT_BATCH_SIZES_TEXT = as_text(DEFAULT_BATCH_SIZES)
DEFAULT_SEQ_LENS_TEXT = as_text(DEFAULT_SEQ_LENS)

OutputFile = Annotated[Optional[str], typer.Option(
    "--output", help="Also save the JSON report to this file (a regular file is replaced atomically; a device "
                     "or FIFO is written in place).",
    rich_help_panel=OUTPUT_PANEL, show_default=False)]

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.",
                                        rich_help_panel=OUTPUT_PANEL)]
ChartFlag = Annotated[bool, typer.Option("--chart/--no-chart", help="Draw the terminal chart (bars of block glyphs, "
                                         "each with its figure) with the tables.", rich_help_panel=OUTPUT_PANEL)]
PlotFile = Annotated[Optional[str], typer.Option("--plot", help="Also draw the chart to this PNG or SVG file (needs "
                                                 'the plot extra: pip install "lstm-inspect[plot]").',
                                                 rich_help_panel=OUTPUT_PANEL, show_default=False)]


def _opt(*names: str, help: str, **kwargs: Any) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=MODEL_PANEL, **kwargs)


TrustPickle = Annotated[bool, _opt(
    "--trust-pickle", help="Load a whole pickled model (torch.save(model)) with full unpickling: code in the file "
    "RUNS. Only for files you trust; without it such a file is refused and nothing in it runs.")]


@dataclass(frozen=True)
class ModelOptions:
    """The model-building flags as the user gave them: only the given ones, by ModelSpec field name."""

    given: Mapping[str, Any] = field(default_factory=dict)
    tokenizer: str | None = None
    model: str | None = None
    trust_pickle: bool = False

    def spec(self) -> "ModelSpec":
        """The validated ModelSpec these flags describe (resolving ``--tokenizer`` for the vocabulary)."""
        from lstm_inspect.spec import ModelSpec

        return ModelSpec.from_mapping(self.changed_fields())

    def load(self) -> "LoadedModel":
        """The model these flags describe, on meta (nothing allocated).

        With ``--model SOURCE`` the source decides; the model flags given beside it are passed to it as
        overrides (see :func:`lstm_inspect.sources.resolve_source`).
        """
        from lstm_inspect.cli.startup import model_loaded

        if self.model is not None:
            from lstm_inspect.sources import resolve_source

            loaded = resolve_source(self.model, overrides=self.changed_fields(), trust_pickle=self.trust_pickle,
                                    origin="--model")
        else:
            from lstm_inspect.source import load_builtin

            loaded = load_builtin(self.spec(), vocab_from=self.tokenizer)
        model_loaded()
        return loaded

    def changed_fields(self) -> dict[str, Any]:
        """The spec fields the user set, a flag given with its default value included."""
        changed = dict(self.given)
        if self.tokenizer is not None:
            if "vocab_size" in changed:
                raise InvalidInput("give --vocab-size or --tokenizer, not both")
            from lstm_inspect.vocab import vocab_from_tokenizer

            changed["vocab_size"] = vocab_from_tokenizer(self.tokenizer).vocab_size
        return changed


#: Each ModelSpec field's flag and help; the type and the default shown come from ModelSpec itself.
_SPEC_FLAGS: dict[str, tuple[str, str]] = {
    "cell": ("--cell", "Recurrent cell: lstm, gru or rnn."),
    "vocab_size": ("--vocab-size", "Vocabulary size (the default is GPT-2's 50257 tokens + 1 pad token)."),
    "embed_dim": ("--embed-dim", "Embedding width E."),
    "hidden_dim": ("--hidden-dim", "Recurrent state width H."),
    "num_layers": ("--num-layers", "Stacked recurrent layers."),
    "bidirectional": ("--bidirectional", "Run each layer both ways (doubles the output width)."),
    "proj_size": ("--proj-size", "LSTM projection of h (0 = off; must be < hidden)."),
    "bias": ("--no-bias", "Drop every bias vector."),
    "dropout": ("--dropout", "Dropout between recurrent layers, in [0, 1)."),
    "batch_first": ("--batch-first/--no-batch-first", "Input laid out [B, T] (else [T, B])."),
    "tie_weights": ("--tie-weights", "Projection shares the embedding matrix (widths must match)."),
}
#: ``--no-bias`` is the flag of the ``bias`` field: given, it sets bias to False.
_NEGATED = {"bias": "no_bias"}


def _spec_params() -> list[tuple[str, Any, Any]]:
    """(parameter name, annotation, default None) for every ModelSpec field: None means "not given"."""
    from lstm_inspect.spec import ModelSpec

    defaults = ModelSpec()
    out = []
    for f in dataclasses.fields(ModelSpec):
        decl, text = _SPEC_FLAGS[f.name]
        default = getattr(defaults, f.name)
        shown = "off (biases kept)" if f.name in _NEGATED else (str(default).lower() if isinstance(default, bool) else str(default))
        kind = bool if f.name in _NEGATED else type(default)
        option = _opt(decl, help=f"{text} Default: {shown}.", show_default=False)
        out.append((_NEGATED.get(f.name, f.name), Annotated[Optional[kind], option], None))
    return out


_MODEL_PARAMS = [
    *_spec_params(),
    ("tokenizer", Annotated[Optional[str], _opt("--tokenizer",
        help="Take the vocabulary size from a tokenizer: a local directory or a name in the Hugging Face "
             "cache (never downloaded).", show_default=False)], None),
    ("model", Annotated[Optional[str], _opt("--model",
        help="Model source: key=value overrides of the built-in spec (hidden_dim=512,num_layers=3), a spec "
             ".json/.toml, a checkpoint .pt/.pth/.bin/.ckpt/.safetensors (architecture inferred from the shapes), "
             "a transformers config.json or hf:<model_type> (built without weights), or package.module:factory. "
             "Other model flags override a built-in spec source.", show_default=False)], None),
    ("trust_pickle", TrustPickle, False),
]
_OWN = ("tokenizer", "model", "trust_pickle")


def _model_options(values: dict[str, Any]) -> ModelOptions:
    """The flags' values as ModelOptions: spec fields that were given, by field name."""
    given = {}
    for name, value in values.items():
        if name in _OWN or value is None:
            continue
        field_name = next((f for f, flag in _NEGATED.items() if flag == name), name)
        given[field_name] = (not value) if field_name in _NEGATED else value
    return ModelOptions(given=given, **{name: values[name] for name in _OWN})


def user_code_quiet(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command with ``print`` sent to stderr (a factory or a model's forward may print); the
    report itself is written to the real stdout (:func:`lstm_inspect.cli.streams.results`). Cache
    variables that name a file are refused first (torch and transformers would fail deep inside)."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        from lstm_inspect.cli.streams import user_code_prints_to_stderr
        from lstm_inspect.paths import check_cache_variables

        check_cache_variables()
        try:
            with user_code_prints_to_stderr():
                return func(*args, **kwargs)
        except SystemExit as exc:   # our commands never call sys.exit: this came from the model's code
            raise AnalysisFailed(f"the model's code called sys.exit({exc.code!r}) during the analysis") from None
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - a BaseException subclass from the model's code
            if isinstance(exc, Exception):
                raise
            raise AnalysisFailed(f"the model's code raised {type(exc).__name__}: {first_line(exc)}") from None

    return run


def model_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command every model flag; the command receives them as ``model_opts: ModelOptions``."""
    own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "model_opts"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
              for name, annotation, default in _MODEL_PARAMS]

    @functools.wraps(func)
    @user_code_quiet
    def wrapper(**kwargs: Any) -> Any:
        opts = _model_options({name: kwargs.pop(name) for name, _, _ in _MODEL_PARAMS})
        return func(model_opts=opts, **kwargs)

    params = own + shared
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # Typer must read the new signature, not the wrapped one
    return wrapper


def parse_int_list(text: str, option: str, *, minimum: int = 1) -> list[int]:
    """``'1,2,4'`` -> ``[1, 2, 4]``, with a message naming ``option`` for anything else."""
    parts = [p.strip() for p in str(text).split(",")]
    if not text or not text.strip() or any(p == "" for p in parts):
        raise InvalidInput(f"{option} needs a comma-separated list of integers, like 1,2,4; got {text!r}")
    values = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise InvalidInput(f"{option}: {part!r} is not an integer (give e.g. 1,2,4)") from None
        if value < minimum:
            raise InvalidInput(f"{option}: every value must be at least {minimum}, got {value}")
        values.append(value)
    return values


def parse_grid_axis(text: str, option: str, *, maximum: int = MAX_AXIS_VALUE) -> list[int]:
    """A sweep axis (``--batch-sizes``, ``--seq-lens``) of flops, memory and report: positive, bounded, no
    value twice."""
    values = parse_int_list(text, option)
    for value in values:
        if value > maximum:
            raise InvalidInput(f"{option}: every value must be at most {maximum:,}, got {value:,}")
    if len(set(values)) != len(values):
        raise InvalidInput(f"{option}: {','.join(map(str, values))} repeats a value")
    return values


#: Most cells a grid may have: a flops cell costs about a millisecond, a memory cell (estimated, or measured)
#: tens of milliseconds to seconds; beyond these a grid is a typo that would run for minutes to hours.
MAX_FLOPS_CELLS = 4096
MAX_MEMORY_CELLS = 1024


def check_grid(batch_sizes: list[int], seq_lens: list[int], maximum: int) -> None:
    """At most ``maximum`` cells in a batch × seq grid."""
    cells = len(batch_sizes) * len(seq_lens)
    if cells > maximum:
        raise InvalidInput(f"--batch-sizes × --seq-lens make {len(batch_sizes):,} × {len(seq_lens):,} = {cells:,} cells; "
                           f"at most {maximum:,} (split the sweep into several runs)")


#: Largest --batch / --seq of a sample input (analyses past it are refused as too large to trace anyway).
MAX_TRACE = 2**31 - 1


def check_sample(batch: int, seq: int) -> None:
    """``--batch`` and ``--seq`` of a sample input: positive and within MAX_TRACE."""
    check_positive(batch, "--batch", maximum=MAX_TRACE)
    check_positive(seq, "--seq", maximum=MAX_TRACE)


def check_positive(value: int, option: str, *, maximum: int | None = None) -> int:
    if value < 1:
        raise InvalidInput(f"{option} must be at least 1, got {value}")
    if maximum is not None and value > maximum:
        raise InvalidInput(f"{option} must be at most {maximum:,}, got {value:,}")
    return value


MAX_LENGTHS = 1_000_000
#: A file of MAX_LENGTHS lengths with comments fits easily.
LENGTHS_FILE_LIMIT = 64 * 2**20


def parse_lengths(text: str, option: str = "--lengths") -> list[int]:
    """Sequence lengths for a packed batch: ``'32,17,5'`` or a file with one length per line."""
    raw = str(text).strip()
    if raw and not raw.replace(",", "").replace(" ", "").isdigit():
        from lstm_inspect.paths import existing, read_text_bounded

        info = existing(Path(raw).expanduser(), f"{option} {raw}", allow_dir=False)
        if info is None:
            raise InvalidInput(f"{option} needs comma-separated integers (e.g. 32,17,5) or a file of one length per line; "
                               f"{raw!r} is neither")
        try:
            content = read_text_bounded(Path(raw).expanduser(), LENGTHS_FILE_LIMIT, f"{option} {raw}")
        except LstmInspectError as exc:  # whatever stops the file being read, it is the option that is wrong
            raise InvalidInput(str(exc)) from None
        lines = [line.strip() for line in content.splitlines() if line.strip() and not line.strip().startswith("#")]
        if not lines:
            raise InvalidInput(f"{option}: {raw!r} holds no lengths (one integer per line)")
        raw = ",".join(lines)
    lengths = parse_int_list(raw, option)
    if len(lengths) > MAX_LENGTHS:
        raise InvalidInput(f"{option}: at most {MAX_LENGTHS:,} sequences, got {len(lengths):,}")
    return lengths
