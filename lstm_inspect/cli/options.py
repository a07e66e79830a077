"""Options shared by commands: the model-building flags (one definition, injected everywhere)."""

from __future__ import annotations

import functools
from pathlib import Path
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer

from lstm_inspect.errors import InvalidInput, LstmInspectError

if TYPE_CHECKING:
    from lstm_inspect.source import LoadedModel

MODEL_PANEL = "Model"
OUTPUT_PANEL = "Output"

OutputFile = Annotated[Optional[str], typer.Option(
    "--output", help="Also save the JSON report to this file (a regular file is replaced atomically; a device "
                     "or FIFO is written in place).",
    rich_help_panel=OUTPUT_PANEL, show_default=False)]

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.",
                                        rich_help_panel=OUTPUT_PANEL)]


def _opt(*names: str, help: str, **kwargs: Any) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=MODEL_PANEL, **kwargs)


TrustPickle = Annotated[bool, _opt(
    "--trust-pickle", help="Load a whole pickled model (torch.save(model)) with full unpickling: code in the file "
    "RUNS. Only for files you trust; without it such a file is refused and nothing in it runs.")]


@dataclass(frozen=True)
class ModelOptions:
    """The model-building flags as the user gave them (None = not given)."""

    cell: str = "lstm"
    vocab_size: int | None = None
    embed_dim: int = 768
    hidden_dim: int = 768
    num_layers: int = 2
    bidirectional: bool = False
    proj_size: int = 0
    no_bias: bool = False
    dropout: float = 0.0
    batch_first: bool = True
    tie_weights: bool = False
    tokenizer: str | None = None
    model: str | None = None
    trust_pickle: bool = False

    def spec(self):
        """The validated ModelSpec these flags describe (resolving ``--tokenizer`` for the vocabulary)."""
        from lstm_inspect.spec import DEFAULT_VOCAB_SIZE, ModelSpec

        vocab = self.vocab_size if self.vocab_size is not None else DEFAULT_VOCAB_SIZE
        if self.tokenizer is not None:
            if self.vocab_size is not None:
                raise InvalidInput("give --vocab-size or --tokenizer, not both")
            from lstm_inspect.vocab import vocab_from_tokenizer

            vocab = vocab_from_tokenizer(self.tokenizer).vocab_size
        return ModelSpec(
            cell=self.cell.strip().lower(), vocab_size=vocab, embed_dim=self.embed_dim, hidden_dim=self.hidden_dim,
            num_layers=self.num_layers, bidirectional=self.bidirectional, proj_size=self.proj_size,
            bias=not self.no_bias, dropout=self.dropout, batch_first=self.batch_first, tie_weights=self.tie_weights,
        )

    def load(self) -> "LoadedModel":
        """The model these flags describe, on meta (nothing allocated).

        With ``--model SOURCE`` the source decides; the other model flags that differ from their
        defaults are passed to it as overrides (see :func:`lstm_inspect.sources.resolve_source`).
        """
        if self.model is not None:
            from lstm_inspect.sources import resolve_source

            return resolve_source(self.model, overrides=self.changed_fields(), trust_pickle=self.trust_pickle)
        from lstm_inspect.source import load_builtin

        return load_builtin(self.spec(), vocab_from=self.tokenizer)

    def changed_fields(self) -> dict[str, Any]:
        """Spec fields whose flags differ from their defaults (a flag given with its default value is not seen)."""
        defaults = ModelOptions()
        changed: dict[str, Any] = {}
        for name in ("cell", "vocab_size", "embed_dim", "hidden_dim", "num_layers", "bidirectional", "proj_size",
                     "dropout", "batch_first", "tie_weights"):
            if getattr(self, name) != getattr(defaults, name):
                changed[name] = getattr(self, name)
        if self.no_bias:
            changed["bias"] = False
        if self.tokenizer is not None:
            changed["vocab_size"] = self.spec().vocab_size
        return changed


_MODEL_PARAMS = [
    ("cell", Annotated[str, _opt("--cell", help="Recurrent cell: lstm, gru or rnn.")], "lstm"),
    ("vocab_size", Annotated[Optional[int], _opt("--vocab-size",
        help="Vocabulary size (default 50258: GPT-2's 50257 + 1 pad token).", show_default=False)], None),
    ("embed_dim", Annotated[int, _opt("--embed-dim", help="Embedding width E.")], 768),
    ("hidden_dim", Annotated[int, _opt("--hidden-dim", help="Recurrent state width H.")], 768),
    ("num_layers", Annotated[int, _opt("--num-layers", help="Stacked recurrent layers.")], 2),
    ("bidirectional", Annotated[bool, _opt("--bidirectional", help="Run each layer both ways (doubles the output width).")], False),
    ("proj_size", Annotated[int, _opt("--proj-size", help="LSTM projection of h (0 = off; must be < hidden).")], 0),
    ("no_bias", Annotated[bool, _opt("--no-bias", help="Drop every bias vector.")], False),
    ("dropout", Annotated[float, _opt("--dropout", help="Dropout between recurrent layers, in [0, 1).")], 0.0),
    ("batch_first", Annotated[bool, _opt("--batch-first/--no-batch-first", help="Input laid out [B, T] (else [T, B]).")], True),
    ("tie_weights", Annotated[bool, _opt("--tie-weights", help="Projection shares the embedding matrix (widths must match).")], False),
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


def user_code_quiet(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command with ``print`` sent to stderr (a factory or a model's forward may print); the
    report itself is written to the real stdout (:func:`lstm_inspect.cli.streams.results`). Cache
    variables that name a file are refused first (torch and transformers would fail deep inside)."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        from lstm_inspect.cli.streams import user_code_prints_to_stderr
        from lstm_inspect.paths import check_cache_variables

        check_cache_variables()
        with user_code_prints_to_stderr():
            return func(*args, **kwargs)

    return run


def model_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command every model flag; the command receives them as ``model_opts: ModelOptions``."""
    own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "model_opts"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
              for name, annotation, default in _MODEL_PARAMS]

    @functools.wraps(func)
    @user_code_quiet
    def wrapper(**kwargs: Any) -> Any:
        opts = ModelOptions(**{name: kwargs.pop(name) for name, _, _ in _MODEL_PARAMS})
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


def parse_grid_axis(text: str, option: str, *, maximum: int = 2**31 - 1) -> list[int]:
    """A sweep axis (``--batch-sizes``, ``--seq-lens``): positive, bounded, no value twice."""
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
