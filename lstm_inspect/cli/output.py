"""Printing a report: one JSON document, or Rich renderables; nothing else on stdout."""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable


def emit(report: Any, *, as_json: bool, to_json: Callable[[Any], dict], to_rich: Callable[[Any], Iterable]) -> None:
    if as_json:
        from lstm_inspect.render.common import dumps

        sys.stdout.write(dumps(to_json(report)) + "\n")
        return
    from lstm_inspect.render.common import make_console

    console = make_console()
    for renderable in to_rich(report):
        console.print(renderable)
