"""The Typer app, and the one place where errors become one-line messages and exit codes."""

from __future__ import annotations

import os
import re
import sys
import warnings
from typing import Annotated, Any, Optional, Sequence

import typer
from typer.core import TyperGroup

from lstm_inspect import __version__
from lstm_inspect.errors import EXIT_INTERRUPTED, EXIT_USAGE, BudgetExceeded, InvalidInput, LstmInspectError, as_flags

#: Options that take a list. ``--batch-sizes 1,2,4`` is the native form; the source script's
#: ``--batch_sizes 1 2 4`` (argparse nargs='+') is rewritten to it before parsing.
LIST_OPTIONS = frozenset({"--batch-sizes", "--seq-lens", "--lengths"})
_NUMBER_LIST = re.compile(r"^\d+(,\d+)*,?$")


def normalize_args(args: Sequence[str]) -> list[str]:
    """Accept the source script's spellings: ``--seq_lens 16 32 64`` -> ``--seq-lens 16,32,64``.

    Every option name is spelled with dashes, so an underscore in an option name (before any
    ``=``) is always the source script's spelling and becomes a dash.
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and "_" in arg.split("=", 1)[0]:
            name, eq, value = arg.partition("=")
            arg = name.replace("_", "-") + eq + value
        out.append(arg)
        i += 1
        if arg in LIST_OPTIONS:
            values: list[str] = []
            while i < len(args) and _NUMBER_LIST.match(args[i]):
                values.append(args[i].rstrip(","))
                i += 1
            if values:
                out.append(",".join(values))
    return _hoist_global_options(out)


#: Options of the root command that users naturally type after the subcommand.
GLOBAL_OPTIONS = frozenset({"--width"})


def _hoist_global_options(args: list[str]) -> list[str]:
    """``params --width 100`` -> ``--width 100 params``: root options must come first for the parser."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        name = args[i].split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            if "=" in args[i] or i + 1 == len(args):
                front.append(args[i])
                i += 1
            else:
                front.extend(args[i:i + 2])
                i += 2
            continue
        rest.append(args[i])
        i += 1
    return front + rest


def print_error(message: str) -> None:
    """``error: <what and how to fix it>`` on one line of stderr."""
    text = " ".join(str(message).split())
    sys.stderr.write(f"error: {text}\n")
    sys.stderr.flush()


#: Library chatter that says nothing about the user's model (fake tensors trigger it).
_QUIET = ("oneDNN",)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, DeprecationWarning) or any(q in str(message) for q in _QUIET):
        return
    sys.stderr.write(f"warning: {' '.join(str(message).split())}\n")


class LstmInspectGroup(TyperGroup):
    """Runs a command; maps every expected failure to ``error: ...`` and its exit code."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        from lstm_inspect.cli import streams

        argv = normalize_args(list(sys.argv[1:] if args is None else args))
        previous = warnings.showwarning
        warnings.showwarning = _show_warning
        try:
            with streams.guarded():
                try:
                    code = self._run(argv, prog_name, complete_var, **extra)
                    sys.stdout.flush()  # what is still buffered fails here, not at the interpreter's exit
                except streams.StdoutBroken:
                    streams.silence_stdout()
                    code = streams.EXIT_BROKEN_PIPE
                except streams.OutputFailed as exc:
                    streams.silence_stdout()
                    print_error(str(exc))
                    code = exc.exit_code
        finally:
            warnings.showwarning = previous
        sys.exit(code)

    def _run(self, argv: list[str], prog_name: str | None, complete_var: str | None, **extra: Any) -> int:
        """Run the command; return its exit code (expected failures printed as one line)."""
        from lstm_inspect.cli.streams import OutputFailed, StdoutBroken

        try:
            rv = super().main(args=argv, prog_name=prog_name or "lstm-inspect", complete_var=complete_var,
                              standalone_mode=False, **extra)
        except typer.TyperException as exc:  # Typer's usage errors (bad option, bad value...)
            if type(exc).__name__ == "NoArgsIsHelpError":
                exc.show()  # type: ignore[attr-defined]  # no arguments: the help text, as with --help
                return 0
            message = exc.format_message()
            ctx = getattr(exc, "ctx", None)
            if ctx is not None and exc.exit_code == EXIT_USAGE:
                message += f" (see '{ctx.command_path} --help')"
            print_error(message)
            return exc.exit_code
        except (StdoutBroken, OutputFailed):
            raise
        except BudgetExceeded as exc:
            sys.stderr.write(f"budget exceeded: {' '.join(str(exc).split())}\n")
            return exc.exit_code
        except LstmInspectError as exc:
            print_error(as_flags(str(exc), getattr(exc, "fields", ())))
            return exc.exit_code
        except (KeyboardInterrupt, typer.Abort):
            print_error("interrupted")
            return EXIT_INTERRUPTED
        return rv if isinstance(rv, int) else 0


app = typer.Typer(
    cls=LstmInspectGroup,
    name="lstm-inspect",
    help="What a recurrent language model costs before you train or ship it: "
    "structure, parameters, FLOPs, memory (training and generation). Exit codes: 0 ok, 1 budget exceeded, "
    "2 invalid input, 3 the analysis failed.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"lstm-inspect {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.",
                                          callback=_version, is_eager=True)] = False,
    width: Annotated[Optional[int], typer.Option(
        "--width", help="Width of tables and trees in columns (default: the terminal's; may follow the command).",
        show_default=False)] = None,
) -> None:
    """What a recurrent language model costs before you train or ship it."""
    from lstm_inspect.render import common

    if width is not None and not common.MIN_WIDTH <= width <= common.MAX_WIDTH:
        raise InvalidInput(f"--width must be between {common.MIN_WIDTH} and {common.MAX_WIDTH} columns, got {width}")
    ctx.obj = {"width": width}   # each command passes it to its console: no process-wide state


def main() -> None:
    """Run the command line; ends with ``SystemExit`` (Click's standalone mode), as any Typer app."""
    typer.main.get_command(app)()


def entry() -> None:
    """Console-script and ``python -m lstm_inspect`` entry point: :func:`main`, then the process ends at once.

    Python's teardown after a command that imported torch and transformers (finalising thousands of modules
    and their objects) took about 1 s, a quarter of ``flops --model hf:gpt2``. Every command has written and
    closed what it writes by the time it returns, so after flushing the standard streams the process exits with
    ``os._exit`` and the same status. Not under coverage (its data is saved at exit). The cyclic garbage collector
    waits until the model is loaded (:mod:`~lstm_inspect.cli.startup`)."""
    from lstm_inspect.cli.startup import defer_collection

    defer_collection()
    try:
        main()
        code: Any = 0
    except SystemExit as done:
        code = done.code
    if "coverage" in sys.modules:
        raise SystemExit(code)
    if isinstance(code, str):
        if sys.stderr is not None:
            print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:   # None: the stream was closed when the process started (``2>&-``)
                stream.flush()
        except (ValueError, OSError):
            pass                     # a closed pipe (``| head``): nothing more can be written anyway
    os._exit(code if isinstance(code, int) else 0)
