"""A spec held in a JSON or TOML file (the same field names as the model flags)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lstm_inspect.errors import AnalysisFailed, InvalidInput
from lstm_inspect.spec import ModelSpec


def read_mapping(path: Path) -> dict[str, Any]:
    """The top-level table of a ``.json`` or ``.toml`` file (a corrupt file is an unreadable model: exit 3)."""
    from lstm_inspect.paths import SPEC_LIMIT, read_text_bounded

    # Bounded, and never blocking: a link to /dev/zero or a FIFO named .json is refused, not read.
    text = read_text_bounded(path, SPEC_LIMIT, f"--model {path}")
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except RecursionError:  # "[[[[..." nested beyond Python's stack: corrupt, not a crash
        raise AnalysisFailed(f"--model {path}: not valid {path.suffix.lstrip('.').upper()}: nested too deeply") from None
    except ValueError as exc:
        raise AnalysisFailed(f"--model {path}: not valid {path.suffix.lstrip('.').upper()}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise AnalysisFailed(f"--model {path}: expected a table of model fields at the top level, found {type(data).__name__}")
    return data


def spec_from_file(path: Path, data: dict[str, Any] | None = None) -> ModelSpec:
    """The spec in ``path``: its fields, or those under a ``model`` table; unknown fields are an error."""
    data = read_mapping(path) if data is None else data
    if isinstance(data.get("model"), dict):
        data = data["model"]
    try:
        return ModelSpec.from_mapping(data)
    except InvalidInput as exc:
        raise InvalidInput(f"--model {path}: {exc}") from None
