"""What every report can do for a Python user: ``to_dict()`` (its JSON document) and Rich rendering.

Reports are data (frozen dataclasses in :mod:`lstm_inspect.analyses`); how to show one lives in
:mod:`lstm_inspect.render`. The :class:`Rendered` mixin bridges the two through a registry that
:mod:`lstm_inspect.render.registry` fills on first use, so the analyses never import a renderer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

_REGISTRY: dict[type, tuple[Callable[[Any], dict[str, Any]], Callable[[Any], Iterable[Any]]]] = {}


def register(cls: type, to_json: Callable[[Any], dict[str, Any]], to_rich: Callable[[Any], Iterable[Any]]) -> None:
    """How reports of type ``cls`` become a JSON document and Rich renderables."""
    _REGISTRY[cls] = (to_json, to_rich)


def _renderers(cls: type) -> tuple[Callable[[Any], dict[str, Any]], Callable[[Any], Iterable[Any]]]:
    import lstm_inspect.render.registry  # noqa: F401  (registers every report type)

    for klass in cls.__mro__:
        if klass in _REGISTRY:
            return _REGISTRY[klass]
    raise TypeError(f"no renderer is registered for {cls.__name__}")


class Rendered:
    """Mixin for report dataclasses: ``report.to_dict()`` and ``rich.print(report)``."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON document, as ``--json`` prints it."""
        return _renderers(type(self))[0](self)

    def __rich_console__(self, console: "Console", options: "ConsoleOptions") -> "RenderResult":
        yield from _renderers(type(self))[1](self)
