"""A model to analyse, whatever it came from: the built-in spec today, other sources later."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from lstm_inspect.errors import InvalidInput
from lstm_inspect.spec import ModelSpec

if TYPE_CHECKING:
    from torch import nn


@dataclass
class LoadedModel:
    """A module plus what we know about it.

    Attributes:
        module: the model, on ``meta`` unless a real device was asked for.
        spec: the built-in spec when the model is of that family (enables closed-form checks).
        description: the resolved model description that every JSON report carries.
        sample_input: ``(batch, seq, device, lengths=None) -> tuple of forward args`` for a token
            batch; with ``lengths`` (built-in family only) the batch is packed.
        notes: what every report about this model should say (e.g. that its weights contradict its config).
    """

    module: "nn.Module"
    spec: ModelSpec | None
    description: dict[str, Any]
    sample_input: Callable[..., tuple] = field(repr=False)
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return str(self.description.get("name", "model"))

    def inputs(self, batch: int, seq: int, device: Any = "cpu", lengths: Sequence[int] | None = None) -> tuple:
        """The forward's arguments for a ``batch`` × ``seq`` sample (a packed batch with ``lengths``)."""
        if lengths is None:
            return self.sample_input(batch, seq, device)
        return self.sample_input(batch, seq, device, lengths=list(lengths))


def token_batch_input(spec: ModelSpec | None) -> Callable[..., tuple]:
    """Token ids of shape [batch, seq] (or [seq, batch] when the spec is not batch_first).

    With ``lengths`` (the built-in model only): a padded batch of ``len(lengths)`` sequences of
    ``max(lengths)`` tokens plus the lengths, which the built-in model packs.
    """
    batch_first = True if spec is None else spec.batch_first

    def make(batch: int, seq: int, device: Any = "cpu", lengths: Sequence[int] | None = None) -> tuple:
        import torch

        if lengths is not None:
            if spec is None:
                raise InvalidInput("lengths (packed input) applies to the built-in model family only", fields=("lengths",))
            batch, seq = len(lengths), max(lengths)
        shape = (batch, seq) if batch_first else (seq, batch)
        tokens = torch.zeros(shape, dtype=torch.long, device=device)
        return (tokens,) if lengths is None else (tokens, list(lengths))

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
