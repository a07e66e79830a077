"""What PyTorch's recurrent modules are, in one place: cells, gates, their tensor names and the cost of a step.

``nn.LSTM``/``nn.GRU``/``nn.RNN`` name their tensors ``weight_ih_l{k}``, ``weight_hh_l{k}``,
``bias_ih_l{k}``, ``bias_hh_l{k}`` and (LSTM ``proj_size``) ``weight_hr_l{k}``, with ``_reverse`` for
the second direction. Weight-dropped models (AWD-LSTM's ``WeightDrop``) keep the raw hidden-to-hidden
weight as ``weight_hh_l{k}_raw``. A checkpoint is recognised by these suffixes, whatever the module
is called.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

CELLS = ("lstm", "gru", "rnn")
#: Gates per cell (LSTM i, f, g, o; GRU r, z, n; a plain RNN one).
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
CELL_OF_GATES = {gates: cell for cell, gates in GATES.items()}
GATE_ORDER = {"lstm": "i, f, g, o", "gru": "r, z, n", "rnn": "-"}
TENSOR_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")

_TENSOR_NAME = re.compile(
    r"^(?:(?P<prefix>.+)\.)?(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(?P<layer>\d+)"
    r"(?P<reverse>_reverse)?(?P<raw>_raw)?$"
)


@dataclass(frozen=True)
class RecurrentTensorName:
    """``lstms.1.weight_hh_l0_reverse_raw`` read apart."""

    prefix: str        # the recurrent module's path ("" when the module is the root)
    kind: str          # one of TENSOR_KINDS
    layer: int
    reverse: bool
    raw: bool          # stored under the weight-drop spelling ``..._raw``

    @property
    def leaf(self) -> str:
        """The tensor's own name inside its module (``weight_hh_l0_reverse``, without ``_raw``)."""
        return format_leaf(self.kind, self.layer, self.reverse)


def parse_tensor_name(name: str) -> RecurrentTensorName | None:
    """The recurrent parts of a state_dict key, or None when it is not a recurrent tensor."""
    match = _TENSOR_NAME.match(name)
    if match is None:
        return None
    return RecurrentTensorName(match.group("prefix") or "", match.group("kind"), int(match.group("layer")),
                               bool(match.group("reverse")), bool(match.group("raw")))


def step_macs(cell: str, hidden: int, layer_input: int, proj_size: int = 0) -> int:
    """MACs of one cell step of one layer and direction: ``G·H·(I + H_r)`` (+ ``H_r·H`` projection)."""
    state = proj_size or hidden
    macs = GATES[cell] * hidden * (layer_input + state)
    if proj_size:
        macs += proj_size * hidden
    return macs


def step_elementwise(cell: str, hidden: int, bias: bool) -> int:
    """Element-wise FLOPs of one cell step (each add, multiply or activation evaluation = 1).

    LSTM: bias adds 8H (b_ih and b_hh), activations 5H (3 sigmoid + 2 tanh), cell update 4H
    (f·c, i·g, +, o·tanh(c)). GRU: bias 6H, 2H sigmoid, n gate 3H (r·hh_n, +, tanh), update 4H
    ((1 − z), ·n, z·h, +). RNN: bias 2H, activation H. The sum of the input and hidden products
    is inside ``2·MACs`` (a dot product of K terms is 2K − 1 FLOPs, so two of them plus their sum
    is exactly 2·(I + H_r)).
    """
    if cell == "lstm":
        return (8 * hidden if bias else 0) + 5 * hidden + 4 * hidden
    if cell == "gru":
        return (6 * hidden if bias else 0) + 2 * hidden + 3 * hidden + 4 * hidden
    return (2 * hidden if bias else 0) + hidden


def step_backward_elementwise(cell: str, hidden: int, bias: bool) -> int:
    """Element-wise FLOPs of one cell step's backward: the bias gradients (one add per bias element, as many
    as the forward's bias adds) and the gate and cell derivatives, taken as 2 × the forward's activation and
    cell-update work."""
    forward_bias = 2 * GATES[cell] * hidden if bias else 0
    return forward_bias + 2 * (step_elementwise(cell, hidden, bias) - forward_bias)


def recurrent_backward(m: Any, steps: int, input_needs_grad: bool) -> tuple[int, int]:
    """(MACs, element-wise FLOPs) of an nn.LSTM/GRU/RNN's backward over ``steps`` cell steps per layer and
    direction, in closed form.

    Each product Y = X·W of a cell step costs dW = Xᵀ·dY (when W is trainable) and dX = dY·Wᵀ: the input
    product's dX when the layer's input needs a gradient (layer 0: when the module's input does; a layer
    above: when anything below it is trainable), the hidden product's dh_{t-1} at every step (the state
    chain), and the projection's (``proj_size``) dW_hr and dr alike.
    """
    cell = cell_kind(m)
    hidden = int(m.hidden_size)
    proj = int(getattr(m, "proj_size", 0) or 0)
    state = proj or hidden
    gates = GATES[cell] * hidden
    suffixes = ("", "_reverse") if m.bidirectional else ("",)
    upstream = input_needs_grad
    macs = elementwise = 0
    for layer in range(int(m.num_layers)):
        layer_input = int(m.input_size) if layer == 0 else state * len(suffixes)
        trainable = False
        for sfx in suffixes:
            def grad(kind: str) -> bool:
                p = getattr(m, f"{kind}_l{layer}{sfx}", None)
                return p is not None and bool(p.requires_grad)

            own = any(grad(k) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"))
            trainable = trainable or own
            if not (own or upstream):
                continue
            macs += steps * gates * layer_input * (grad("weight_ih") + upstream)
            macs += steps * gates * state * (grad("weight_hh") + 1)
            if proj:
                macs += steps * proj * hidden * (grad("weight_hr") + 1)
            elementwise += steps * step_backward_elementwise(cell, hidden, grad("bias_ih") or grad("bias_hh"))
        upstream = upstream or trainable
    return macs, elementwise


def format_leaf(kind: str, layer: int, reverse: bool = False) -> str:
    return f"{kind}_l{layer}" + ("_reverse" if reverse else "")


def cell_kind(module: object) -> str:
    """``lstm``, ``gru`` or ``rnn`` for an ``nn.RNNBase`` (from its ``mode``)."""
    mode = str(getattr(module, "mode", "")).upper()
    if mode == "LSTM":
        return "lstm"
    if mode == "GRU":
        return "gru"
    return "rnn"


def cell_class(cell: str) -> type:
    """The ``torch.nn`` class of a cell (imports torch)."""
    from torch import nn

    return {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]


@dataclass(frozen=True)
class Check:
    """A closed form next to the counted value (parameters or MACs of one component)."""

    component: str
    symbolic: str        # "G·H·(I + H_r) + 2·G·H"
    substituted: str     # "4·768·(768 + 768) + 2·4·768"
    expected: int
    counted: int
    textbook: int | None = None   # source document 002's one-bias formula, where it differs (parameters)

    @property
    def ok(self) -> bool:
        return self.expected == self.counted
