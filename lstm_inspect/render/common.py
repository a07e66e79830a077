"""What every renderer shares: the JSON envelope, consoles, small table helpers."""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

from lstm_inspect import __version__

SCHEMA_VERSION = 1


def envelope(command: str, model: dict[str, Any] | None, body: dict[str, Any]) -> dict[str, Any]:
    """Every JSON document: its schema tag, the tool version, the resolved model, then the body."""
    doc: dict[str, Any] = {
        "schema": f"lstm-inspect.{command}/{SCHEMA_VERSION}",
        "tool_version": __version__,
    }
    if model is not None:
        doc["model"] = model
    doc.update(body)
    return doc


#: A lone surrogate: what Python makes of a file name that is not valid UTF-8 (``b"\\xff.pt"``).
_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(doc: dict[str, Any], *, ascii_only: bool = False) -> str:
    """The JSON text of ``doc``: UTF-8 characters as they are (``\\uXXXX`` escapes with ``ascii_only``),
    and a lone surrogate always as its escape, so the document is valid UTF-8 whatever names it holds."""
    text = json.dumps(doc, indent=2, ensure_ascii=ascii_only)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) if not ascii_only else text


#: The widths a table or tree may take (``--width`` is checked against these; ``COLUMNS`` is clamped).
MIN_WIDTH, MAX_WIDTH = 20, 10_000


def make_console(*, stderr: bool = False, width: int | None = None, file: Any = None, warn: bool = False):
    """A Rich console on stdout (results) or stderr (notes, progress), or on ``file``.

    Rich drops colour and styling when the stream is not a terminal; NO_COLOR is honoured too. A width
    taken from the terminal or ``COLUMNS`` is kept within [MIN_WIDTH, MAX_WIDTH] (``COLUMNS=99999999``
    would otherwise print rules and tables for minutes).
    """
    from rich.console import Console

    stream = file if file is not None else sys.stderr if stderr else sys.stdout
    plain = bool(os.environ.get("NO_COLOR"))
    extra: dict[str, Any] = {"color_system": None} if plain else {}  # NO_COLOR: no escape codes at all, bold included
    console = Console(file=stream, width=width, highlight=False, soft_wrap=False, no_color=plain or None, **extra)
    if width is None and not MIN_WIDTH <= console.width <= MAX_WIDTH:
        clamped = min(max(console.width, MIN_WIDTH), MAX_WIDTH)
        if warn:
            sys.stderr.write(f"warning: a width of {console.width} columns (the terminal's or COLUMNS) is outside "
                             f"{MIN_WIDTH}..{MAX_WIDTH}; using {clamped} (or give --width)\n")
        console.width = clamped
    return console


def shape_text(shape: Any, *, compact: bool = False) -> str:
    """``[1, 32, 768] -> '[1, 32, 768]'``; nested outputs (LSTM's) joined readably.

    ``compact``: each shape one unbreakable token for wrapped text (``[1,32,768]``, no space to wrap at);
    nested outputs keep ``", "`` between their shapes, where a line may break.
    """
    if shape is None:
        return "None" if compact else ""
    if isinstance(shape, dict):
        return ", ".join(f"{k}={shape_text(v, compact=compact)}" for k, v in shape.items())
    if isinstance(shape, list) and all(isinstance(s, int) for s in shape):
        return "[" + ("," if compact else ", ").join(str(s) for s in shape) + "]"
    if isinstance(shape, list):
        return "(" + ", ".join(shape_text(s, compact=compact) for s in shape) + ")"
    return str(shape)


def compact_shape(shape: Any) -> str:
    """:func:`shape_text` as one unbreakable token per shape."""
    return shape_text(shape, compact=True)
