"""Forward passes that allocate nothing: a fake copy of a model, run under FakeTensorMode."""

from __future__ import annotations

import contextlib
import copy
from typing import TYPE_CHECKING, Any, Callable, Iterator

from lstm_inspect.errors import AnalysisFailed, first_line

if TYPE_CHECKING:
    import torch
    from torch import nn

    from lstm_inspect.source import LoadedModel


@contextlib.contextmanager
def fake_copy(loaded: "LoadedModel", *, shape_only_recurrent: bool = False) -> Iterator[tuple["nn.Module", Any]]:
    """Yield ``(module, mode)``: a copy of ``loaded.module`` whose tensors are fakes on cpu.

    The caller's module is left as it is. Enter ``mode`` around the forward pass.

    Args:
        shape_only_recurrent: give every recurrent module a forward that only makes outputs of the
            right shapes. For analyses that need shapes, not allocations (structure, FLOPs): GRU, RNN
            and projected LSTM run one op per time step even on fake tensors (seconds for T=2048),
            while the shapes are known in closed form. Forward hooks still fire with real shapes.
    """
    from lstm_inspect.building import fake_mode, quiet_fake_tensor_log, to_fake

    require_runnable(loaded)
    module = meta_copy(loaded.module)
    with quiet_fake_tensor_log():
        with fake_mode() as mode:
            to_fake(module, mode)
        if shape_only_recurrent:
            import types

            from torch import nn

            for sub in module.modules():
                if isinstance(sub, nn.RNNBase):
                    sub.forward = types.MethodType(_recurrent_shapes, sub)
        yield module, mode


@contextlib.contextmanager
def shape_copy(loaded: "LoadedModel") -> Iterator[tuple["nn.Module", Any, str]]:
    """Yield ``(module, mode, device)`` for an analysis that needs output shapes, not allocations.

    When every leaf module's output shape is known in closed form (Embedding, LSTM/GRU/RNN, Linear,
    Dropout, Identity: the built-in family), the copy stays on ``meta`` with shape-only forwards for
    the recurrent and linear modules: no kernel runs and FakeTensorMode (whose first use imports
    ``torch._dynamo``, about one more ``import torch``) is never needed. Any other model gets
    :func:`fake_copy` with shape-only recurrent modules. Create inputs on ``device`` inside ``mode``.
    """
    import types

    from torch import nn

    require_runnable(loaded)
    module = meta_copy(loaded.module)
    leaves = [m for m in module.modules() if not list(m.children())]
    if all(isinstance(m, _closed_form_leaves()) for m in leaves):
        for sub in leaves:
            if isinstance(sub, nn.RNNBase):
                sub.forward = types.MethodType(_recurrent_shapes, sub)
            elif isinstance(sub, nn.Linear):
                sub.forward = types.MethodType(_linear_shapes, sub)
        yield module, contextlib.nullcontext(), "meta"
        return
    with fake_copy(loaded, shape_only_recurrent=True) as (fake, mode):
        yield fake, mode, "cpu"


def require_runnable(loaded: "LoadedModel") -> None:
    """Stop, with the model's own reason, when its forward pass cannot be rebuilt (a checkpoint whose
    architecture was only partly recognised: its parameters count, nothing else runs)."""
    reason = getattr(loaded.module, "unrunnable", None)
    if reason:
        raise AnalysisFailed(reason)


def _closed_form_leaves() -> tuple[type, ...]:
    from torch import nn

    return (nn.Embedding, nn.RNNBase, nn.Linear, nn.Dropout, nn.Identity)


def _linear_shapes(self, input):
    """nn.Linear's output, shape only."""
    return input.new_empty((*input.shape[:-1], self.out_features))


def _recurrent_shapes(self, input, hx=None):
    """nn.LSTM/GRU/RNN's outputs, shapes only: (output, h_n) or (output, (h_n, c_n))."""
    from torch.nn.utils.rnn import PackedSequence

    directions = 2 if self.bidirectional else 1
    state_dim = self.proj_size or self.hidden_size
    layers = directions * self.num_layers
    if isinstance(input, PackedSequence):
        data = input.data.new_empty((input.data.shape[0], directions * state_dim))
        output = PackedSequence(data, input.batch_sizes, input.sorted_indices, input.unsorted_indices)
        state_lead: tuple = (layers, int(input.batch_sizes[0]))
        like = input.data
    else:
        output = input.new_empty((*input.shape[:-1], directions * state_dim))
        if input.dim() == 3:
            state_lead = (layers, input.shape[0] if self.batch_first else input.shape[1])
        else:  # unbatched [T, I]
            state_lead = (layers,)
        like = input
    h_n = like.new_empty((*state_lead, state_dim))
    if self.mode == "LSTM":
        return output, (h_n, like.new_empty((*state_lead, self.hidden_size)))
    return output, h_n


def meta_copy(module: "nn.Module", dtype: "torch.dtype | None" = None) -> "nn.Module":
    """A deep copy whose parameters and buffers are on meta (floating ones at ``dtype`` when given): a
    model loaded with real weights (a checkpoint) is copied without copying its storage; tied tensors
    stay tied through the memo."""
    import torch
    from torch import nn

    memo: dict[int, Any] = {}
    for tensor in list(module.parameters()) + list(module.buffers()):
        if id(tensor) in memo or (tensor.device.type == "meta" and dtype is None):
            continue
        empty = torch.empty_like(tensor, device="meta")
        memo[id(tensor)] = nn.Parameter(empty, requires_grad=tensor.requires_grad) if isinstance(tensor, nn.Parameter) else empty
    clone = copy.deepcopy(module, memo)
    return clone.to(dtype=dtype) if dtype is not None else clone


def shape_of(value: Any) -> Any:
    """Nested shapes of a forward's output: tensors -> lists of ints, tuples stay tuples."""
    import torch
    from torch.nn.utils.rnn import PackedSequence

    if isinstance(value, PackedSequence):
        return {"packed": list(value.data.shape)}
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(value, (tuple, list)):
        return [shape_of(v) for v in value]
    if isinstance(value, dict):
        return {k: shape_of(v) for k, v in value.items()}
    if hasattr(value, "to_tuple"):  # transformers ModelOutput
        return shape_of(value.to_tuple())
    return None


def output_shapes(loaded: "LoadedModel", batch: int, seq: int) -> dict[str, Any]:
    """Qualified module name ("" for the root) -> nested output shape, for a token batch."""
    shapes: dict[str, Any] = {}
    with shape_copy(loaded) as (module, mode, device):
        handles = []
        for name, sub in module.named_modules():
            handles.append(sub.register_forward_hook(_recorder(shapes, name)))
        try:
            with mode:
                inputs = loaded.sample_input(batch, seq, device)
                module.eval()
                import torch

                with torch.no_grad():
                    module(*inputs)
        except Exception as exc:  # a user's model may fail in any way; say so, don't crash
            raise AnalysisFailed(f"tracing a forward pass of {loaded.name} failed: {first_line(exc)}") from None
        finally:
            for handle in handles:
                handle.remove()
    return shapes


def _recorder(shapes: dict[str, Any], name: str) -> Callable:
    def hook(_module, _inputs, output):
        shapes.setdefault(name, shape_of(output))

    return hook
