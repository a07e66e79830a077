"""Parameter counts: totals, sizes per dtype, per tensor, per component, per layer type, closed forms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lstm_inspect.analyses import classify, closed_form
from lstm_inspect.recurrence import Check, parse_tensor_name
from lstm_inspect.reporting import Rendered

if TYPE_CHECKING:
    from lstm_inspect.analyses.layers import LayerReport
    from lstm_inspect.source import LoadedModel

#: Bytes per element for the storage sizes shown (source document 004 shows MB per dtype).
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}


@dataclass(frozen=True)
class TensorRow:
    name: str
    shape: tuple[int, ...]
    count: int
    trainable: bool
    component: str
    layer_type: str
    tied_to: tuple[str, ...] = ()   # other names of this same tensor (counted once, here)


@dataclass(frozen=True)
class ShareRow:
    name: str
    count: int
    ratio: float        # of the model's total
    modules: int = 0    # how many modules hold these parameters

    @property
    def float32_bytes(self) -> int:
        """Their size at float32 (source document 004's MB per component)."""
        return DTYPE_BYTES["float32"] * self.count


#: The closed-form check of one component (kept under its old name for the Python API).
ClosedFormCheck = Check


@dataclass(frozen=True)
class ParamReport(Rendered):
    model: dict[str, Any]
    total: int
    trainable: int
    frozen: int
    dtype_bytes: dict[str, int]
    tensors: tuple[TensorRow, ...]
    components: tuple[ShareRow, ...]
    layer_types: tuple[ShareRow, ...]
    checks: tuple[ClosedFormCheck, ...]
    notes: tuple[str, ...] = ()
    #: Source document 003's per-decoder-layer fields, for transformers models (None otherwise).
    layers: "LayerReport | None" = None

    @property
    def checks_ok(self) -> bool:
        return all(c.ok for c in self.checks)


def count_params(loaded: "LoadedModel") -> ParamReport:
    """Count every unique parameter tensor of ``loaded.module`` (tied weights once)."""
    module = loaded.module
    tensors = tensor_rows(module)
    total = sum(t.count for t in tensors)
    trainable = sum(t.count for t in tensors if t.trainable)
    notes: list[str] = list(loaded.notes)
    if loaded.spec is not None:
        checks = _closed_form_checks(loaded, tensors)
        notes.append(
            "PyTorch keeps two bias vectors per recurrent layer and direction (b_ih and b_hh); "
            "the textbook formula G·((I + H)·H + H) has one, so it is short by G·H per layer and direction."
        )
    elif _layout_of(module) is not None:
        from lstm_inspect.analyses.layout_checks import layout_checks

        checks = layout_checks(_layout_of(module), tensors)
        notes.append("a model rebuilt from a checkpoint's shapes: each recurrent layer is checked with its own input, "
                     "hidden and state widths; PyTorch keeps two bias vectors per layer and direction")
    else:
        checks = ()
        notes.append("closed-form checks apply to the built-in model family only; this model is counted, not checked")
    if getattr(module, "unrunnable", None):
        layout = getattr(module, "layout", None)
        notes.append("counted from the checkpoint's shapes alone; its architecture is only partly recognised ("
                     f"{'; '.join(getattr(layout, 'problems', ()))}), so structure, FLOPs and memory need the model's "
                     "code: --model package.module:factory")
    if any(t.tied_to for t in tensors):
        notes.append("tied (shared) tensors are counted once, under their first name")
    from lstm_inspect.analyses.layers import describe_layers

    layers = describe_layers(loaded)
    return ParamReport(
        model=loaded.description,
        total=total,
        trainable=trainable,
        frozen=total - trainable,
        dtype_bytes={name: total * size for name, size in DTYPE_BYTES.items()},
        tensors=tuple(tensors),
        components=_shares(tensors, total, "component", classify.COMPONENTS),
        layer_types=_shares(tensors, total, "layer_type", classify.LAYER_TYPES),
        checks=checks,
        notes=tuple(notes),
        layers=layers if layers.kind != "none" else None,
    )


def _layout_of(module) -> Any:
    """What a checkpoint's shapes told of a rebuilt model (``RebuiltRecurrentModel.layout``), else None."""
    from lstm_inspect.sources.layout import Layout

    layout = getattr(module, "layout", None)
    return layout if isinstance(layout, Layout) and layout.blocks else None


def tensor_rows(module) -> list[TensorRow]:
    owners: dict[str, tuple[Any, list[Any]]] = {}
    _walk(module, "", [], owners)
    shown = getattr(module, "checkpoint_names", None) or {}   # a rebuilt model shows the file's own names
    first_name: dict[int, str] = {}
    aliases: dict[str, list[str]] = {}
    ordered: list[tuple[str, Any]] = []
    for name, param in module.named_parameters(remove_duplicate=False):
        key = id(param)
        if key in first_name:
            aliases[first_name[key]].append(name)
            continue
        first_name[key] = name
        aliases[name] = []
        ordered.append((name, param))
    rows = []
    for name, param in ordered:
        path = name.rsplit(".", 1)[0] if "." in name else ""
        owner, ancestors = owners[path]
        kind = classify.layer_type(owner, ancestors)
        rows.append(
            TensorRow(
                name=shown.get(name, name),
                shape=tuple(int(s) for s in param.shape),
                count=int(param.numel()),
                trainable=bool(param.requires_grad),
                component=classify.component(path, kind),
                layer_type=kind,
                tied_to=tuple(shown.get(a, a) for a in aliases[name]),
            )
        )
    return rows


def _walk(module, path: str, ancestors: list, owners: dict) -> None:
    owners[path] = (module, ancestors)
    for child_name, child in module.named_children():
        _walk(child, f"{path}.{child_name}" if path else child_name, ancestors + [module], owners)


def _shares(tensors: list[TensorRow], total: int, key: str, order: tuple[str, ...]) -> tuple[ShareRow, ...]:
    counts: dict[str, int] = {}
    modules: dict[str, set[str]] = {}
    for t in tensors:
        group = getattr(t, key)
        counts[group] = counts.get(group, 0) + t.count
        modules.setdefault(group, set()).add(t.name.rsplit(".", 1)[0])
    names = [n for n in order if n in counts] + sorted(n for n in counts if n not in order)
    return tuple(
        ShareRow(name=n, count=counts[n], ratio=counts[n] / total if total else 0.0, modules=len(modules[n]))
        for n in names
    )


def _closed_form_checks(loaded: "LoadedModel", tensors: list[TensorRow]) -> tuple[ClosedFormCheck, ...]:
    spec = loaded.spec
    assert spec is not None   # the built-in family only
    by_component: dict[str, int] = {}
    by_layer: dict[int, int] = {}
    for t in tensors:
        by_component[t.component] = by_component.get(t.component, 0) + t.count
        parsed = parse_tensor_name(t.name) if t.component == "recurrent" else None
        if parsed is not None:
            by_layer[parsed.layer] = by_layer.get(parsed.layer, 0) + t.count
    checks = []
    emb = closed_form.embedding_params(spec)
    checks.append(ClosedFormCheck(emb.component, emb.symbolic, emb.substituted, emb.value, by_component.get("embedding", 0)))
    for layer in range(spec.num_layers):
        f = closed_form.recurrent_layer_params(spec, layer)
        textbook = closed_form.textbook_recurrent_layer_params(spec, layer)
        checks.append(
            ClosedFormCheck(f.component, f.symbolic, f.substituted, f.value, by_layer.get(layer, 0),
                            textbook=textbook if textbook != f.value else None)
        )
    proj = closed_form.projection_params(spec)
    checks.append(ClosedFormCheck(proj.component, proj.symbolic, proj.substituted, proj.value, by_component.get("projection", 0)))
    return tuple(checks)
