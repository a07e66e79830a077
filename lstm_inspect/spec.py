"""``ModelSpec``: the built-in recurrent language model, validated. No torch here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from lstm_inspect.errors import InvalidInput
from lstm_inspect.recurrence import CELLS, GATES

__all__ = ["CELLS", "GATES", "ModelSpec", "DEFAULT_VOCAB_SIZE"]

#: GPT-2's 50257 tokens plus the one pad token the source script adds.
DEFAULT_VOCAB_SIZE = 50258

# Beyond these a size is a typo, not a model: 2**20 wide, 2**24 tokens, 1024 layers.
MAX_DIM = 2**20
MAX_VOCAB = 2**24
MAX_LAYERS = 1024


@dataclass(frozen=True)
class ModelSpec:
    """Embedding -> recurrent stack (LSTM/GRU/RNN) -> Linear projection to the vocabulary.

    Defaults are the source script's: embed 768, hidden 768, 2 layers, unidirectional LSTM,
    vocabulary 50258, batch_first.
    """

    cell: str = "lstm"
    vocab_size: int = DEFAULT_VOCAB_SIZE
    embed_dim: int = 768
    hidden_dim: int = 768
    num_layers: int = 2
    bidirectional: bool = False
    proj_size: int = 0
    bias: bool = True
    dropout: float = 0.0
    batch_first: bool = True
    tie_weights: bool = False

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def state_dim(self) -> int:
        """Width of h (the layer output per direction): proj_size when set, else hidden."""
        return self.proj_size or self.hidden_dim

    @property
    def output_dim(self) -> int:
        """Width of the recurrent stack's output, the projection's input."""
        return self.state_dim * self.num_directions

    def layer_input_dim(self, layer: int) -> int:
        return self.embed_dim if layer == 0 else self.output_dim

    def replace(self, **changes: Any) -> "ModelSpec":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base: "ModelSpec | None" = None) -> "ModelSpec":
        """A spec from plain values (a config file, ``key=value`` overrides), checked by name and type."""
        base = base or cls()
        known = {f.name: f for f in dataclasses.fields(cls)}
        changes: dict[str, Any] = {}
        for key, raw in values.items():
            name = key.replace("-", "_")
            if name not in known:
                raise InvalidInput(
                    f"unknown model field {key!r}; known fields: {', '.join(known)}"
                )
            changes[name] = _coerce(name, raw, type(getattr(base, name)))
        return dataclasses.replace(base, **changes)


def _coerce(name: str, raw: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise _invalid(f"{name} must be true or false, got {raw!r}", name)
    if kind is int:
        if isinstance(raw, bool):
            raise _invalid(f"{name} must be an integer, got {raw!r}", name)
        if isinstance(raw, int):
            return raw
        try:
            return int(str(raw).strip())
        except ValueError:
            raise _invalid(f"{name} must be an integer, got {raw!r}", name) from None
    if kind is float:
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise _invalid(f"{name} must be a number, got {raw!r}", name) from None
    return str(raw).strip().lower() if name == "cell" else raw


def _invalid(message: str, *fields: str) -> InvalidInput:
    """A spec error in field names (the CLI shows them as its flags)."""
    return InvalidInput(message, fields=fields)


def _validate(spec: ModelSpec) -> None:
    if spec.cell not in CELLS:
        raise _invalid(f"cell must be one of {', '.join(CELLS)}, got {spec.cell!r}", "cell")
    for name, upper in (
        ("vocab_size", MAX_VOCAB),
        ("embed_dim", MAX_DIM),
        ("hidden_dim", MAX_DIM),
        ("num_layers", MAX_LAYERS),
    ):
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(f"{name} must be an integer, got {value!r}", name)
        if value < 1:
            raise _invalid(f"{name} must be at least 1, got {value}", name)
        if value > upper:
            raise _invalid(f"{name} must be at most {upper:,}, got {value:,}", name)
    if isinstance(spec.proj_size, bool) or not isinstance(spec.proj_size, int) or spec.proj_size < 0:
        raise _invalid(f"proj_size must be 0 (off) or a positive integer, got {spec.proj_size!r}", "proj_size")
    if spec.proj_size:
        if spec.cell != "lstm":
            raise _invalid(f"proj_size only applies to cell lstm, not {spec.cell}; drop it", "proj_size", "cell")
        if spec.proj_size >= spec.hidden_dim:
            raise _invalid(f"proj_size must be smaller than hidden_dim ({spec.hidden_dim}), got {spec.proj_size}",
                           "proj_size", "hidden_dim")
    if not (0.0 <= spec.dropout < 1.0):
        raise _invalid(f"dropout must be in [0, 1), got {spec.dropout}", "dropout")
    if spec.tie_weights and spec.output_dim != spec.embed_dim:
        raise _invalid(
            "tie_weights needs the recurrent output width to equal embed_dim: "
            f"{spec.output_dim} (= {'2 x ' if spec.bidirectional else ''}"
            f"{'proj_size' if spec.proj_size else 'hidden_dim'} {spec.state_dim}) != {spec.embed_dim}",
            "tie_weights", "embed_dim",
        )
