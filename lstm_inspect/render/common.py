"""What every renderer shares: the JSON envelope, consoles, small table helpers."""

from __future__ import annotations

import json
import os
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


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False)


_default_width: int | None = None


def set_default_width(width: int | None) -> None:
    """The ``--width`` the user gave; None = the terminal's (or COLUMNS, or 80 when not a terminal)."""
    global _default_width
    _default_width = width


def make_console(*, stderr: bool = False, width: int | None = None):
    """A Rich console on stdout (results) or stderr (notes, progress).

    Rich drops colour and styling when the stream is not a terminal; NO_COLOR is honoured too.
    """
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    plain = bool(os.environ.get("NO_COLOR"))
    extra = {"color_system": None} if plain else {}  # NO_COLOR: no escape codes at all, bold included
    return Console(file=stream, width=width or _default_width, highlight=False, soft_wrap=False,
                   no_color=plain or None, **extra)


def shape_text(shape: Any) -> str:
    """``[1, 32, 768] -> '[1, 32, 768]'``; nested outputs (LSTM's) joined readably."""
    if shape is None:
        return ""
    if isinstance(shape, dict):
        return ", ".join(f"{k}={shape_text(v)}" for k, v in shape.items())
    if isinstance(shape, list) and all(isinstance(s, int) for s in shape):
        return "[" + ", ".join(str(s) for s in shape) + "]"
    if isinstance(shape, list):
        return "(" + ", ".join(shape_text(s) for s in shape) + ")"
    return str(shape)
