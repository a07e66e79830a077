"""Forwards that only make outputs of the right shapes, for the modules whose output shape is known in
closed form (nn.LSTM/GRU/RNN, nn.Linear): structure and FLOPs need shapes, not values, and a recurrent
module on fake or meta tensors would otherwise run one small op per time step. The recurrent stand-in
checks what PyTorch checks first, so it refuses what PyTorch would refuse.
"""

from __future__ import annotations

from typing import Any

def closed_form_leaves() -> tuple[type, ...]:
    from torch import nn

    return (nn.Embedding, nn.RNNBase, nn.Linear, nn.Dropout, nn.Identity)


def embedding_shapes(self, input):
    """nn.Embedding's output, shape only (after PyTorch's own check of the index type). A lookup runs no
    kernel here, so the first meta op (whose Python meta kernels import sympy, ~0.5 s) never happens."""
    import torch

    if input.dtype not in (torch.long, torch.int):
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           f"Long, Int; but got {input.dtype} instead (usually this means you are calling this "
                           "method with a float tensor: give the model token ids, or a sample_input)")
    return graft(self, (input,), input.new_empty((*input.shape, self.embedding_dim), dtype=self.weight.dtype))


def linear_shapes(self, input):
    """nn.Linear's output, shape only."""
    return graft(self, (input,), input.new_empty((*input.shape[:-1], self.out_features)))


def recurrent_shapes(self, input, hx=None):
    """nn.LSTM/GRU/RNN's outputs, shapes only: (output, h_n) or (output, (h_n, c_n))."""
    from torch.nn.utils.rnn import PackedSequence

    directions = 2 if self.bidirectional else 1
    state_dim = self.proj_size or self.hidden_size
    layers = directions * self.num_layers
    _check_recurrent_input(self, input, hx)
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
        return graft(self, (input, hx), (output, (h_n, like.new_empty((*state_lead, self.hidden_size)))))
    return graft(self, (input, hx), (output, h_n))


def graft(module: Any, inputs: tuple, outputs: Any) -> Any:
    """``outputs`` joined to the autograd graph of ``inputs`` and ``module``'s trainable parameters.

    A shape-only output has no ``grad_fn``; a training step's backward must still reach what comes before
    the module (an embedding) and know that the module's output needs a gradient. The join's backward
    returns empty gradients (no arithmetic): the module's own backward is given by its closed form
    (``thop_ops``). Without grad mode (a plain forward count), the outputs are returned as they are.
    """
    import torch

    if not torch.is_grad_enabled():
        return outputs
    sources = [t for t in _tensors(inputs) if t.requires_grad]
    sources += [p for p in module.parameters() if p.requires_grad]
    if not sources:
        return outputs
    flat = _tensors(outputs)
    joined = iter(_Join.apply(len(flat), *flat, *sources))
    return _rebuild(outputs, joined)


def _tensors(value: Any) -> list:
    import torch
    from torch.nn.utils.rnn import PackedSequence

    if isinstance(value, PackedSequence):
        return [value.data]
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def _rebuild(value: Any, joined: Any) -> Any:
    import torch
    from torch.nn.utils.rnn import PackedSequence

    if isinstance(value, PackedSequence):
        return PackedSequence(next(joined), value.batch_sizes, value.sorted_indices, value.unsorted_indices)
    if isinstance(value, torch.Tensor):
        return next(joined) if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_rebuild(v, joined) for v in value)
    return value


def _join_class() -> type:
    import torch

    class Join(torch.autograd.Function):
        """Outputs (the first ``count`` arguments, passed through) that depend on the sources (the rest)."""

        @staticmethod
        def forward(ctx, count, *tensors):
            ctx.count = count
            ctx.sources = [(t.shape, t.dtype, t.device) for t in tensors[count:]]
            return tuple(t.view_as(t) for t in tensors[:count])

        @staticmethod
        def backward(ctx, *grads):
            return (None, *(None for _ in range(ctx.count)),
                    *(torch.empty(shape, dtype=dtype, device=device) for shape, dtype, device in ctx.sources))

    return Join


class _LazyJoin:
    """The autograd Function, made on first use (this module is imported without torch)."""

    _cls: Any = None

    def apply(self, *args: Any) -> Any:
        if _LazyJoin._cls is None:
            _LazyJoin._cls = _join_class()
        return _LazyJoin._cls.apply(*args)


_Join = _LazyJoin()


SAMPLE_INPUT_HINT = "give the model a sample_input(batch, seq, device) returning what its forward takes"


def _check_recurrent_input(self, input, hx) -> None:
    """What ``nn.LSTM/GRU/RNN.forward`` checks before running (input rank, dtype and width, the hidden state's
    shapes and devices, a packed batch's consistency): the shape-only forward must refuse what PyTorch refuses."""
    import torch
    from torch.nn.utils.rnn import PackedSequence

    kind = type(self).__name__
    directions = 2 if self.bidirectional else 1
    layers = directions * self.num_layers

    def fail(what: str):
        raise RuntimeError(f"{kind}: {what}; {SAMPLE_INPUT_HINT}")

    if isinstance(input, PackedSequence):
        data, sizes = input.data, input.batch_sizes
        if data.dim() != 2:
            fail(f"packed data must have 2 dimensions, got {data.dim()}")
        steps = [int(s) for s in sizes.tolist()]
        if sum(steps) != data.shape[0] or any(b > a for a, b in zip(steps, steps[1:])) or (steps and steps[-1] < 1):
            fail(f"batch_sizes {steps} do not describe packed data of {data.shape[0]} rows")
        batch, x = (steps[0] if steps else 0), data
        batched = True
    else:
        if not isinstance(input, torch.Tensor):
            fail(f"expected a tensor or a PackedSequence, got {type(input).__name__}")
        if input.dim() not in (2, 3):
            fail(f"input must have 2 (unbatched) or 3 dimensions, got {input.dim()} ({list(input.shape)})")
        batched = input.dim() == 3
        batch = (int(input.shape[0] if self.batch_first else input.shape[1]) if batched else None)  # type: ignore[assignment]
        x = input
    if x.shape[-1] != self.input_size:
        fail(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.shape[-1]}")
    if not x.is_floating_point():
        fail(f"input must be floating point got {x.dtype}")
    if hx is None:
        return
    state_dim = self.proj_size or self.hidden_size
    expected = [(layers, batch, state_dim) if batched else (layers, state_dim)]
    states = [hx]
    if self.mode == "LSTM":
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            fail("an LSTM's hidden state is a tuple (h_0, c_0)")
        states = list(hx)
        expected.append((layers, batch, self.hidden_size) if batched else (layers, self.hidden_size))
    for name, state, shape in zip(("h_0", "c_0"), states, expected):
        if not isinstance(state, torch.Tensor):
            fail(f"{name} must be a tensor, got {type(state).__name__}")
        if tuple(state.shape) != tuple(shape):
            fail(f"Expected hidden size {tuple(shape)}, got {tuple(state.shape)} for {name}")
        if state.device != x.device:
            fail(f"Input and hidden tensors are not at the same device, found input tensor at {x.device} "
                 f"and hidden tensor at {state.device}")
