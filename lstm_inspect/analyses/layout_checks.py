"""Closed-form parameter checks for a model rebuilt from a checkpoint's shapes: each recurrent layer with
its own widths (a pruned stack), the embedding and the head, under the checkpoint's own names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from lstm_inspect.analyses import closed_form
from lstm_inspect.recurrence import Check, parse_tensor_name

if TYPE_CHECKING:
    from lstm_inspect.analyses.params import TensorRow
    from lstm_inspect.sources.layout import Layout


def layout_checks(layout: "Layout", tensors: Sequence["TensorRow"]) -> tuple[Check, ...]:
    """Formula next to counted value for every recognised piece (tensors carry the checkpoint's names)."""
    counted: dict[str, int] = {}
    layer_of: dict[tuple[str, int], int] = {}
    for block in layout.blocks:
        for k in range(len(block.layers)):
            layer_of[(block.path, k)] = len(layer_of)
    per_layer: dict[int, int] = {}
    for t in tensors:
        parsed = parse_tensor_name(t.name)
        if parsed is not None and (parsed.prefix, parsed.layer) in layer_of:
            index = layer_of[(parsed.prefix, parsed.layer)]
            per_layer[index] = per_layer.get(index, 0) + t.count
        else:
            owner = t.name.rpartition(".")[0]
            counted[owner] = counted.get(owner, 0) + t.count
    checks: list[Check] = []
    if layout.embedding is not None:
        e = layout.embedding
        checks.append(Check("embedding", "V·E", f"{e.num_embeddings}·{e.embedding_dim}",
                                      e.num_embeddings * e.embedding_dim, counted.get(e.path, 0)))
    index = 0
    for block in layout.blocks:
        d = block.num_directions
        for shape in block.layers:
            one = closed_form.direction_formula(f"recurrent layer {index}", block.cell, shape.input_size,
                                                shape.hidden_size, shape.proj_size, block.bias)
            f = closed_form.both_directions(one, d)
            textbook = d * closed_form.textbook_direction_params(block.cell, shape.input_size, shape.hidden_size,
                                                                 block.bias)
            checks.append(Check(f.component, f.symbolic, f.substituted, f.value, per_layer.get(index, 0),
                                          textbook=textbook if textbook != f.value else None))
            index += 1
    if layout.head is not None:
        h = layout.head
        vocabulary = layout.embedding is not None and h.out_features == layout.embedding.num_embeddings
        f = closed_form.head_formula(h.out_features, h.in_features, h.bias, layout.tied, "projection" if vocabulary
                                     else "head", "V" if vocabulary else "O")
        checks.append(Check(f.component, f.symbolic, f.substituted, f.value, counted.get(h.path, 0)))
    return tuple(checks)
