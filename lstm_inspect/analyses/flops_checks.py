"""The closed form of each recurrent layer's and the head's MACs, next to what was counted.

For the built-in family (its spec) and for a model rebuilt from a checkpoint (its layout); any other
model is counted, not checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lstm_inspect.recurrence import GATES, Check, step_macs

if TYPE_CHECKING:
    from lstm_inspect.source import LoadedModel
    from lstm_inspect.thop_ops import Recorder


@dataclass(frozen=True)
class ExpectedLayer:
    """One recurrent layer as the closed form sees it: where it runs and its widths."""

    label: str
    module: str      # the recurrent module's qualified name
    layer: int       # the layer's index inside that module
    cell: str
    input_size: int
    hidden: int
    proj: int
    directions: int


def expected_layers(loaded: "LoadedModel") -> tuple[list[ExpectedLayer], tuple[str, int, int, bool] | None] | None:
    """The recurrent layers and the head ``(module, in, out, every_step)`` of the built-in family or of a
    model rebuilt from a checkpoint; None for any other model (counted, not checked)."""
    spec = loaded.spec
    if spec is not None:
        layers = [ExpectedLayer(f"recurrent layer {k}", spec.cell, k, spec.cell, spec.layer_input_dim(k),
                                 spec.hidden_dim, spec.proj_size, spec.num_directions) for k in range(spec.num_layers)]
        return layers, ("proj", spec.output_dim, spec.vocab_size, True)
    from lstm_inspect.sources.layout import EVERY_STEP, Layout

    layout = getattr(loaded.module, "layout", None)
    if not isinstance(layout, Layout) or not layout.runnable:
        return None
    layers = []
    for block in layout.blocks:
        for k, shape in enumerate(block.layers):
            module, index = (block.path, k) if block.uniform else (f"{block.path}.{k}", 0)
            layers.append(ExpectedLayer(f"recurrent layer {len(layers)}", module, index, block.cell, shape.input_size,
                                         shape.hidden_size, shape.proj_size, block.num_directions))
    head = layout.head
    return layers, (None if head is None else (head.path, head.in_features, head.out_features,
                                               layout.head_on == EVERY_STEP))


def closed_form_checks(expected: tuple[list[ExpectedLayer], tuple[str, int, int, bool] | None], recorder: Recorder,
                        steps: int, sequences: int) -> tuple[Check, ...]:
    """Per recurrent layer (both directions) and the head: closed form next to the counted value."""
    layers, head = expected
    checks = []
    for e in layers:
        G, H, D, P, I = GATES[e.cell], e.hidden, e.directions, e.proj, e.input_size
        Hr = P or H
        per_step = step_macs(e.cell, H, I, P)
        symbolic = ("D·N·(G·H·(I + H_r) + H_r·H)" if P else "D·N·G·H·(I + H_r)")
        substituted = (f"{D}·{steps}·({G}·{H}·({I} + {Hr}) + {P}·{H})" if P
                       else f"{D}·{steps}·{G}·{H}·({I} + {Hr})")
        counted = sum(d.macs for d in recorder.directions.values() if d.module == e.module and d.layer == e.layer)
        checks.append(Check(e.label, symbolic, substituted, D * steps * per_step, counted))
    if head is not None:
        name, width, out, every_step = head
        rows = steps if every_step else sequences
        module = recorder.modules.get(name)
        symbol = "N" if every_step else "B"
        checks.append(Check("projection" if every_step else "head (last step)", f"{symbol}·(D·H_r)·V",
                                 f"{rows}·{width}·{out}", rows * width * out, module.macs if module else 0))
    return tuple(checks)
