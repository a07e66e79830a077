"""A model to analyse, whatever it came from: the built-in spec today, other sources later."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from lstm_inspect.spec import ModelSpec

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass
class LoadedModel:
    """A module plus what we know about it.

    Attributes:
        module: the model, on ``meta`` unless a real device was asked for.
        spec: the built-in spec when the model is of that family (enables closed-form checks).
        description: the resolved model description that every JSON report carries.
        sample_input: ``(batch, seq, device) -> tuple of forward args`` for a token batch.
    """

    module: "nn.Module"
    spec: ModelSpec | None
    description: dict[str, Any]
    sample_input: Callable[[int, int, Any], tuple] = field(repr=False)

    @property
    def name(self) -> str:
        return str(self.description.get("name", "model"))


def token_batch_input(spec: ModelSpec | None) -> Callable[[int, int, Any], tuple]:
    """Token ids of shape [batch, seq] (or [seq, batch] when the spec is not batch_first)."""
    batch_first = True if spec is None else spec.batch_first

    def make(batch: int, seq: int, device: Any = "cpu") -> tuple:
        import torch

        shape = (batch, seq) if batch_first else (seq, batch)
        return (torch.zeros(shape, dtype=torch.long, device=device),)

    return make


def describe_spec(spec: ModelSpec, *, vocab_from: str | None = None) -> dict[str, Any]:
    description: dict[str, Any] = {"source": "builtin", "name": "builtin", "spec": spec.to_dict()}
    if vocab_from:
        description["vocab_from"] = vocab_from
    return description


def load_builtin(spec: ModelSpec, *, vocab_from: str | None = None) -> LoadedModel:
    """The built-in model for ``spec``, on meta (no weights allocated)."""
    from lstm_inspect.building import build_meta

    return LoadedModel(
        module=build_meta(spec),
        spec=spec,
        description=describe_spec(spec, vocab_from=vocab_from),
        sample_input=token_batch_input(spec),
    )
