"""``--model "hidden_dim=512,num_layers=3"``: the built-in spec with named overrides."""

from __future__ import annotations

import re
from typing import Any

from lstm_inspect.errors import InvalidInput
from lstm_inspect.spec import ModelSpec

_PAIR = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*=\s*(.*?)\s*$")


def looks_like_overrides(text: str) -> bool:
    """``key=value[,key=value...]`` (and not a path that happens to contain ``=``)."""
    return "=" in text and all(_PAIR.match(part) for part in text.split(","))


def parse_overrides(text: str) -> dict[str, str]:
    """``"hidden_dim=512, num_layers=3"`` -> ``{"hidden_dim": "512", "num_layers": "3"}``."""
    values: dict[str, str] = {}
    for part in text.split(","):
        match = _PAIR.match(part)
        if not match or not match.group(2):
            raise InvalidInput(f"--model {text!r}: expected key=value pairs separated by commas, like hidden_dim=512,num_layers=3")
        key = match.group(1).replace("-", "_")
        if key in values:
            raise InvalidInput(f"--model {text!r}: {key} is given twice")
        values[key] = match.group(2)
    return values


def spec_from_overrides(text: str, base: ModelSpec | None = None) -> ModelSpec:
    """The built-in spec (or ``base``) with the overrides in ``text`` applied, validated."""
    values: dict[str, Any] = parse_overrides(text)
    try:
        return ModelSpec.from_mapping(values, base=base)
    except InvalidInput as exc:
        # The spec names its flags (--hidden-dim); the user typed --model key=value: say both.
        raise InvalidInput(f"--model {text}: {exc}") from None
