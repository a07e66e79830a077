"""Closed-form parameter counts for the built-in model, written from PyTorch's documented shapes.

Symbols: V vocabulary, E embedding width, H hidden width, H_r the state width (proj_size or H),
I a layer's input width, G gates per cell (LSTM 4, GRU 3, RNN 1), D directions (1 or 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from lstm_inspect.spec import GATES, ModelSpec


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
    g, h, hr, i = GATES[spec.cell], spec.hidden_dim, spec.state_dim, spec.layer_input_dim(layer)
    value = g * h * (i + hr)
    symbolic, substituted = "G·H·(I + H_r)", f"{g}·{h}·({i} + {hr})"
    if spec.bias:
        value += 2 * g * h
        symbolic += " + 2·G·H"
        substituted += f" + 2·{g}·{h}"
    if spec.proj_size:
        value += hr * h
        symbolic += " + H_r·H"
        substituted += f" + {hr}·{h}"
    return Formula(f"recurrent layer {layer}", symbolic, substituted, value)


def recurrent_layer_params(spec: ModelSpec, layer: int) -> Formula:
    one = recurrent_direction_params(spec, layer)
    d = spec.num_directions
    if d == 1:
        return one
    return Formula(one.component, f"D·({one.symbolic})", f"2·({one.substituted})", d * one.value)


def textbook_recurrent_layer_params(spec: ModelSpec, layer: int) -> int:
    """Source document 002's textbook count, one bias vector per gate: G·((I + H)·H + H) per direction."""
    g, h, i = GATES[spec.cell], spec.hidden_dim, spec.layer_input_dim(layer)
    return spec.num_directions * g * ((i + h) * h + (h if spec.bias else 0))


def projection_params(spec: ModelSpec) -> Formula:
    v, o = spec.vocab_size, spec.output_dim
    if spec.tie_weights:
        value = v if spec.bias else 0
        return Formula("projection", "V (bias only; weight tied to the embedding)" if spec.bias else "0 (weight tied to the embedding)",
                       f"{v}" if spec.bias else "0", value)
    value = o * v + (v if spec.bias else 0)
    if spec.bias:
        return Formula("projection", "D·H_r·V + V", f"{o}·{v} + {v}", value)
    return Formula("projection", "D·H_r·V", f"{o}·{v}", value)
