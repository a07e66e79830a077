"""Closed-form parameter counts for the built-in model, written from PyTorch's documented shapes.

Symbols: V vocabulary, E embedding width, H hidden width, H_r the state width (proj_size or H),
I a layer's input width, G gates per cell (LSTM 4, GRU 3, RNN 1), D directions (1 or 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from lstm_inspect.recurrence import GATES
from lstm_inspect.spec import ModelSpec


@dataclass(frozen=True)
class Formula:
    component: str       # "embedding", "recurrent layer 0 (forward)", ...
    symbolic: str        # "G·H·(I + H_r) + 2·G·H"
    substituted: str     # "4·768·(768 + 768) + 2·4·768"
    value: int


def embedding_params(spec: ModelSpec) -> Formula:
    v, e = spec.vocab_size, spec.embed_dim
    return Formula("embedding", "V·E", f"{v}·{e}", v * e)


def recurrent_direction_params(spec: ModelSpec, layer: int) -> Formula:
    """One layer, one direction: PyTorch keeps two bias vectors (b_ih and b_hh)."""
    return direction_formula(f"recurrent layer {layer}", spec.cell, spec.layer_input_dim(layer), spec.hidden_dim,
                             spec.proj_size, spec.bias)


def direction_formula(label: str, cell: str, layer_input: int, hidden: int, proj: int, bias: bool) -> Formula:
    """One recurrent layer and direction of the given widths (PyTorch's layout: two bias vectors)."""
    g, h, i = GATES[cell], hidden, layer_input
    hr = proj or hidden
    value = g * h * (i + hr)
    symbolic, substituted = "G·H·(I + H_r)", f"{g}·{h}·({i} + {hr})"
    if bias:
        value += 2 * g * h
        symbolic += " + 2·G·H"
        substituted += f" + 2·{g}·{h}"
    if proj:
        value += hr * h
        symbolic += " + H_r·H"
        substituted += f" + {hr}·{h}"
    return Formula(label, symbolic, substituted, value)


def recurrent_layer_params(spec: ModelSpec, layer: int) -> Formula:
    return both_directions(recurrent_direction_params(spec, layer), spec.num_directions)


def both_directions(one: Formula, directions: int) -> Formula:
    if directions == 1:
        return one
    return Formula(one.component, f"D·({one.symbolic})", f"2·({one.substituted})", directions * one.value)


def textbook_direction_params(cell: str, layer_input: int, hidden: int, bias: bool) -> int:
    """Source document 002's textbook count, one bias vector per gate: G·((I + H)·H + H)."""
    return GATES[cell] * ((layer_input + hidden) * hidden + (hidden if bias else 0))


def textbook_recurrent_layer_params(spec: ModelSpec, layer: int) -> int:
    """Source document 002's textbook count, one bias vector per gate: G·((I + H)·H + H) per direction."""
    return spec.num_directions * textbook_direction_params(spec.cell, spec.layer_input_dim(layer), spec.hidden_dim,
                                                           spec.bias)


def projection_params(spec: ModelSpec) -> Formula:
    return head_formula(spec.vocab_size, spec.output_dim, spec.bias, spec.tie_weights)


def head_formula(out: int, width: int, bias: bool, tied: bool, label: str = "projection", out_symbol: str = "V") -> Formula:
    """A Linear head of ``width`` inputs and ``out`` outputs (its weight maybe the embedding's)."""
    v, o = out, width
    if tied:
        value = v if bias else 0
        return Formula(label, f"{out_symbol} (bias only; weight tied to the embedding)" if bias
                       else "0 (weight tied to the embedding)", f"{v}" if bias else "0", value)
    value = o * v + (v if bias else 0)
    if bias:
        return Formula(label, f"D·H_r·{out_symbol} + {out_symbol}", f"{o}·{v} + {v}", value)
    return Formula(label, f"D·H_r·{out_symbol}", f"{o}·{v}", value)
