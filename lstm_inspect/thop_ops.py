"""Our ``thop`` ``custom_ops``: exact MACs (and element-wise FLOPs) for recurrent models.

thop 0.1.1's own hooks ignore ``proj_size``, count bias adds and element-wise work inside one
number, and charge a packed batch ``max(batch_sizes) × len(batch_sizes)`` cell steps. The hooks
here replace them for ``nn.LSTM``/``nn.GRU``/``nn.RNN``, ``nn.Linear`` and ``nn.Embedding``, so the
count is the same whichever ``thop`` distribution is installed:

* ``m.total_ops`` receives MACs only (multiply-accumulates of the matrix products), so the figure
  ``thop.profile`` returns is MACs;
* a :class:`Recorder` keeps, per module and per recurrent layer × direction, the MACs, the
  element-wise FLOPs (bias adds, activations, cell update) and the cell steps, for the report.

Every hook adds (``+=``): a module called several times (the built-in model's packed forward under
fake tensors runs one call per distinct sequence length) is charged for every call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from torch import nn

from lstm_inspect.recurrence import (  # noqa: E402, F401  (re-exported)
    GATES, cell_kind, recurrent_backward, step_elementwise, step_macs,
)


@dataclass
class DirectionCount:
    """What one layer × direction of one recurrent module did, summed over calls."""

    module: str
    layer: int
    direction: int          # 0 forward, 1 reverse
    cell: str
    hidden: int
    layer_input: int
    proj_size: int
    bias: bool
    cell_steps: int = 0     # sequences × time steps actually run
    macs: int = 0
    elementwise: int = 0


@dataclass
class ModuleCount:
    """One leaf module's totals, summed over calls."""

    name: str
    type: str
    macs: int = 0
    elementwise: int = 0
    calls: int = 0
    output_elements: int = 0       # elements written (each read once by the next module)
    sequential_steps: int = 0      # recurrent modules: time steps run one after the other
    backward_macs: int = 0         # the closed form of its backward (dX, dW), for a training step
    backward_elementwise: int = 0
    shape_only: bool = False       # ran a shape-only forward: its backward exists only as the closed form


@dataclass
class Recorder:
    """Collects exact counts from the hooks; keyed by qualified module name."""

    names: dict[int, str] = field(default_factory=dict)
    modules: dict[str, ModuleCount] = field(default_factory=dict)
    directions: dict[tuple[str, int, int], DirectionCount] = field(default_factory=dict)

    def module(self, m: "nn.Module") -> ModuleCount:
        name = self.names.get(id(m), type(m).__name__)
        if name not in self.modules:
            self.modules[name] = ModuleCount(name=name, type=type(m).__name__)
        return self.modules[name]


def _steps(m: "nn.Module", x: tuple) -> tuple[int, int]:
    """(cell steps per layer and direction, sequential time steps) for a recurrent module's input."""
    from torch.nn.utils.rnn import PackedSequence

    inp = x[0]
    if isinstance(inp, PackedSequence):
        sizes = inp.batch_sizes
        return int(sizes.sum()), int(sizes.numel())
    if inp.dim() == 2:  # unbatched [T, I]
        return int(inp.shape[0]), int(inp.shape[0])
    batch, time = (inp.shape[0], inp.shape[1]) if m.batch_first else (inp.shape[1], inp.shape[0])
    return int(batch) * int(time), int(time)


def _needs_grad(x: tuple) -> bool:
    """Whether a module's input needs a gradient in a training step (it depends on a trainable parameter)."""
    from torch.nn.utils.rnn import PackedSequence

    inp = x[0] if x else None
    inp = inp.data if isinstance(inp, PackedSequence) else inp
    return bool(getattr(inp, "requires_grad", False))


def _trainable(m: "nn.Module", name: str) -> bool:
    p = getattr(m, name, None)
    return p is not None and bool(p.requires_grad)


def _product_backward(record: ModuleCount, m: "nn.Module", x: tuple, macs: int, bias_adds: int) -> None:
    """Y = X·W (+ b): dW = Xᵀ·dY and dX = dY·Wᵀ, each as many MACs as the forward product (dX only when the
    input needs a gradient, dW only when W is trainable); db = the rows of dY summed."""
    record.backward_macs += macs * (_trainable(m, "weight") + _needs_grad(x))
    record.backward_elementwise += bias_adds if _trainable(m, "bias") else 0
    record.shape_only = record.shape_only or _shape_only(m)


def _shape_only(m: "nn.Module") -> bool:
    forward = vars(m).get("forward")
    return getattr(getattr(forward, "__func__", None), "__module__", "") == "lstm_inspect.shape_forwards"


def _add_ops(m: "nn.Module", macs: int) -> None:
    import torch

    m.total_ops += torch.tensor([float(macs)], dtype=torch.float64)  # type: ignore[operator]


def make_custom_ops(recorder: Recorder) -> dict[type, Callable[..., None]]:
    """The ``custom_ops`` mapping for ``thop.profile``, recording into ``recorder``."""
    from torch import nn

    def recurrent(m: "nn.RNNBase", x: tuple, y: Any) -> None:
        cell = cell_kind(m)
        steps, sequential = _steps(m, x)
        hidden = int(m.hidden_size)
        proj = int(getattr(m, "proj_size", 0) or 0)
        state = proj or hidden
        directions = 2 if m.bidirectional else 1
        record = recorder.module(m)
        total_macs = 0
        for layer in range(int(m.num_layers)):
            layer_input = int(m.input_size) if layer == 0 else state * directions
            macs = steps * step_macs(cell, hidden, layer_input, proj)
            elementwise = steps * step_elementwise(cell, hidden, bool(m.bias))
            for direction in range(directions):
                key = (record.name, layer, direction)
                d = recorder.directions.get(key)
                if d is None:
                    d = recorder.directions[key] = DirectionCount(
                        record.name, layer, direction, cell, hidden, layer_input, proj, bool(m.bias))
                d.cell_steps += steps
                d.macs += macs
                d.elementwise += elementwise
                record.elementwise += elementwise
                total_macs += macs
        record.macs += total_macs
        record.calls += 1
        record.sequential_steps += sequential
        bwd_macs, bwd_elementwise = recurrent_backward(m, steps, _needs_grad(x))
        record.backward_macs += bwd_macs
        record.backward_elementwise += bwd_elementwise
        record.shape_only = record.shape_only or _shape_only(m)
        # outputs of every layer and direction (the next layer's input), plus the G·H input-product
        # pre-activations computed for all steps at once: written once, read once
        record.output_elements += steps * directions * int(m.num_layers) * (state + GATES[cell] * hidden)
        _add_ops(m, total_macs)

    def linear(m: "nn.Linear", x: tuple, y: Any) -> None:
        rows = int(y.numel()) // int(m.out_features)
        macs = rows * int(m.in_features) * int(m.out_features)
        record = recorder.module(m)
        record.macs += macs
        record.elementwise += rows * int(m.out_features) if m.bias is not None else 0
        record.calls += 1
        record.output_elements += int(y.numel())
        _product_backward(record, m, x, macs, rows * int(m.out_features))
        _add_ops(m, macs)

    def embedding(m: "nn.Embedding", x: tuple, y: Any) -> None:
        # a table lookup: no arithmetic
        record = recorder.module(m)
        record.calls += 1
        record.output_elements += int(y.numel())
        # the gradient rows scatter-added into the table: one add per element
        record.backward_elementwise += int(y.numel()) if _trainable(m, "weight") else 0
        _add_ops(m, 0)

    def conv1d(m: "nn.Module", x: tuple, y: Any) -> None:
        # transformers' Conv1D (GPT-2's projections) is a Linear with a transposed weight [nx, nf]
        nx, nf = (int(s) for s in m.weight.shape)  # type: ignore[union-attr]
        rows = int(y.numel()) // nf
        record = recorder.module(m)
        record.macs += rows * nx * nf
        record.elementwise += rows * nf if getattr(m, "bias", None) is not None else 0
        record.calls += 1
        record.output_elements += int(y.numel())
        _product_backward(record, m, x, rows * nx * nf, rows * nf)
        _add_ops(m, rows * nx * nf)

    ops: dict[type, Callable[..., None]] = {nn.LSTM: recurrent, nn.GRU: recurrent, nn.RNN: recurrent, nn.Linear: linear, nn.Embedding: embedding}
    conv1d_class = _transformers_conv1d()
    if conv1d_class is not None:
        ops[conv1d_class] = conv1d
    return ops


def _transformers_conv1d() -> type | None:
    """transformers' Conv1D, if transformers is already loaded (a model from it is being analysed)."""
    import sys

    module = sys.modules.get("transformers.pytorch_utils")
    return getattr(module, "Conv1D", None) if module is not None else None
