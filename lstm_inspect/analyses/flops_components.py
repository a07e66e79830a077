"""Where the counted MACs and FLOPs sit: per component (embedding, each recurrent layer × direction,
attention, feed-forward, projection...), from the hooks' and the operator pass's records."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lstm_inspect.thop_ops import Recorder
from lstm_inspect.op_pass import OperatorTally
from lstm_inspect.analyses.flops_report import ComponentRow

if TYPE_CHECKING:
    from torch import nn



def _owner_kind(module: "nn.Module", name: str) -> str:
    """The layer type of what runs *inside* module ``name``: its own class counts as an ancestor (GPT-2's
    attention products run in GPT2Attention itself; RWKV's WKV recurrence in RwkvSelfAttention)."""
    from torch import nn

    from lstm_inspect.analyses.classify import layer_type

    parts = name.split(".") if name else []
    try:
        chain = [module] + [module.get_submodule(".".join(parts[:k])) for k in range(1, len(parts) + 1)]
    except AttributeError:
        return "Other"
    return layer_type(nn.Identity(), chain)


def _layer_kind(module: "nn.Module", name: str) -> str:
    """The layer type of ``name`` (classify.layer_type, with its ancestors); "Other" when it is not a submodule."""
    from lstm_inspect.analyses.classify import layer_type

    try:
        owner_module = module.get_submodule(name) if name else module
    except AttributeError:
        return "Other"
    parts = name.split(".") if name else []
    chain = [module] + [module.get_submodule(".".join(parts[:k])) for k in range(1, len(parts))]
    return layer_type(owner_module, chain)


def _components(recorder: Recorder, stock: dict[str, tuple[str, int, int]],
                module: "nn.Module | None" = None) -> list[ComponentRow]:
    from lstm_inspect.analyses.classify import component

    rows: list[ComponentRow] = []
    recurrent_modules = {d.module for d in recorder.directions.values()}
    for m in recorder.modules.values():
        if m.name in recurrent_modules:
            for d in sorted((d for d in recorder.directions.values() if d.module == m.name),
                            key=lambda d: (d.layer, d.direction)):
                label = f"recurrent layer {d.layer} · {'reverse' if d.direction else 'forward'}"
                rows.append(ComponentRow(label, m.name, d.macs, 2 * d.macs + d.elementwise, d.cell_steps))
            continue
        kind = _layer_kind(module, m.name) if module is not None else {
            "Embedding": "Embedding", "Linear": "Linear/Conv"}.get(m.type, "Other")
        label = _OPERATOR_COMPONENTS.get(kind) or component(m.name, kind)
        rows.append(ComponentRow(label, m.name, m.macs, 2 * m.macs + m.elementwise))
    for name, (_kind, macs, flops) in stock.items():
        rows.append(ComponentRow("other", name, macs, flops))
    return rows


#: Component labels for what the operator pass counted, by the layer type of the module that ran it.
_OPERATOR_COMPONENTS = {"Attention": "attention", "Recurrent": "recurrent", "Feed-forward": "feed-forward",
                        "Normalization": "normalization", "Embedding": "embedding"}


def _operator_components(module: "nn.Module", operators: OperatorTally) -> list[ComponentRow]:
    """One row per module that ran counted ops outside the hooks, labelled by what it is or sits inside."""
    from lstm_inspect.analyses.classify import component

    rows = []
    for o in operators.owners.values():
        if not (o.macs or o.elementwise):
            continue
        kind = _layer_kind(module, o.name)
        label = _OPERATOR_COMPONENTS.get(kind) or component(o.name, kind)
        rows.append(ComponentRow(label, o.name or "(root)", o.macs, 2 * o.macs + o.elementwise))
    return rows


