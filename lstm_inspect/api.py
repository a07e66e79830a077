"""One entry point for Python users: your own ``nn.Module`` (or any ``--model`` source) in, reports out.

    from lstm_inspect import inspect_model
    model = inspect_model(my_lstm)            # nothing is copied or allocated yet
    print(model.flops(batch=4, seq=64).macs)  # every report has .to_dict() and renders with rich.print

Each method runs the same analysis the CLI command of that name runs and returns its report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from lstm_inspect.errors import InvalidInput
from lstm_inspect.grid import DEFAULT_BATCH_SIZES, DEFAULT_SEQ_LENS

if TYPE_CHECKING:
    from torch import nn

    from lstm_inspect.analyses.flops import FlopsGrid, FlopsReport
    from lstm_inspect.analyses.memory import MemoryReport
    from lstm_inspect.analyses.params import ParamReport
    from lstm_inspect.analyses.structure import StructureReport
    from lstm_inspect.source import LoadedModel



@dataclass(frozen=True)
class Inspection:
    """A model ready to analyse; each method returns a report (``.to_dict()``, ``rich.print(report)``)."""

    loaded: "LoadedModel"

    def params(self) -> "ParamReport":
        """Totals, sizes per dtype, per tensor, per component, per layer, closed-form checks."""
        from lstm_inspect.analyses.params import count_params

        return count_params(self.loaded)

    def structure(self, batch: int = 1, seq: int = 32) -> "StructureReport":
        """The module tree with output shapes for a ``batch`` × ``seq`` sample input (nothing allocated)."""
        from lstm_inspect.analyses.structure import describe_structure

        return describe_structure(self.loaded, batch=batch, seq=seq)

    def flops(self, batch: int = 1, seq: int = 32, lengths: Sequence[int] | None = None) -> "FlopsReport":
        """MACs and FLOPs of one forward pass (a packed batch with ``lengths``)."""
        from lstm_inspect.analyses.flops import count_flops

        return count_flops(self.loaded, batch=batch, seq=seq, lengths=lengths)

    def flops_grid(self, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
                   seq_lens: Sequence[int] = DEFAULT_SEQ_LENS) -> "FlopsGrid":
        """MACs and FLOPs of one forward for every (batch, seq) cell."""
        from lstm_inspect.analyses.flops import count_grid

        return count_grid(self.loaded, batch_sizes, seq_lens)

    def memory(self, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, seq_lens: Sequence[int] = DEFAULT_SEQ_LENS,
               *, method: str = "estimate", mode: str = "infer", **options: Any) -> "MemoryReport":
        """The memory increment of one step over a grid (estimated without allocating, by default)."""
        from lstm_inspect.analyses.memory import sweep_memory

        return sweep_memory(self.loaded, batch_sizes=list(batch_sizes), seq_lens=list(seq_lens), method=method,
                            mode=mode, **options)


def inspect_model(model: "nn.Module | str", *, sample_input: Callable[..., Any] | None = None,
                  trust_pickle: bool = False) -> Inspection:
    """Get ``model`` ready to analyse.

    Args:
        model: an ``nn.Module`` (yours, on any device, meta included: it is analysed on meta and fake copies,
            never changed), or a source string as ``--model`` takes it (a checkpoint, ``hf:gpt2``, ...).
        sample_input: ``(batch, seq, device) -> tensor or tuple of forward arguments``; default token ids
            ``[batch, seq]``.
        trust_pickle: for a source string naming a whole pickled model: unpickle it (its code runs).
    """
    from torch import nn

    from lstm_inspect.source import LoadedModel, token_batch_input

    if isinstance(model, str):
        if sample_input is not None:
            raise InvalidInput("sample_input applies to an nn.Module; a source brings its own input", fields=("sample_input",))
        from lstm_inspect.sources import resolve_source

        return Inspection(resolve_source(model, trust_pickle=trust_pickle))
    if not isinstance(model, nn.Module):
        raise InvalidInput(f"model must be a torch.nn.Module or a source string, got {type(model).__name__}",
                           fields=("model",))
    spec = getattr(model, "spec", None)
    from lstm_inspect.spec import ModelSpec

    spec = spec if isinstance(spec, ModelSpec) and type(model).__name__ == "RecurrentLanguageModel" else None
    cls = type(model)
    description = {"source": "module", "name": cls.__name__, "architecture": f"{cls.__module__}.{cls.__qualname__}"}
    from lstm_inspect.sources.factory import as_input_maker

    maker = token_batch_input(spec) if sample_input is None else as_input_maker(sample_input)
    return Inspection(LoadedModel(module=model, spec=spec, description=description, sample_input=maker))
