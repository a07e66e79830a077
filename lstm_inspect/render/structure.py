"""``structure``: the Rich tree and the JSON document, from one StructureReport."""

from __future__ import annotations

from typing import Any

from lstm_inspect.analyses.structure import StructureNode, StructureReport
from lstm_inspect.render.common import compact_shape, envelope
from lstm_inspect.units import human_count


def structure_json(report: StructureReport) -> dict[str, Any]:
    return envelope("structure", report.model, {
        "batch_size": report.batch,
        "seq_len": report.seq,
        "input_shape": report.input_shape,
        "total_params": report.root.params,
        "tree": _node_json(report.root),
        "explanations": [{"component": c, "text": t} for c, t in report.explanations],
        "notes": list(report.notes),
    })


def _node_json(node: StructureNode) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": node.name, "path": node.path, "type": node.kind, "extra": node.extra,
        "params": node.params, "output_shape": node.output_shape,
        "children": [_node_json(c) for c in node.children],
    }
    if node.recurrent is not None:
        r = node.recurrent
        doc["recurrent"] = {
            "cell": r.cell, "gates": r.gates, "gate_order": r.gate_order, "state_shapes": r.state_shapes,
            "layers": [
                {"layer": l.layer, "direction": l.direction, "input_size": l.input_size,
                 "tensors": [{"name": t.name, "shape": list(t.shape), "symbolic": t.symbolic} for t in l.tensors]}
                for l in r.layers
            ],
        }
    return doc


def structure_rich(report: StructureReport, *, depth: int | None = None, expand: bool = False) -> list:
    """The tree (cut at ``depth`` levels below the root when given) and the explanations under it.

    Identical consecutive blocks (``h.0``…``h.11``) are one branch ``0–11 (×12, identical)`` with one
    block's subtree under it, and a module's multi-line hyperparameters show their first line, unless
    ``expand`` (``--all``).
    """
    from rich.text import Text
    from rich.tree import Tree

    root = report.root
    tree = Tree(_label(root, f"model  input {compact_shape(list(report.input_shape))} token ids", expand=expand))
    _add_children(tree, root, depth, 1, expand)
    out: list = [tree]
    if report.explanations:
        from rich.table import Table

        out.append(Text("\nMain components:", style="bold"))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column()
        for component, text in report.explanations:
            grid.add_row(Text(f"  • {component}", style="bold"), text)
        out.append(grid)
    for note in report.notes:
        out.append(Text(f"note: {note}", style="dim"))
    return out


def _label(node: StructureNode, name: str | None = None, *, expand: bool = False, count: int = 1):
    from rich.text import Text

    label = Text()
    label.append(name or node.name, style="bold")
    label.append(f"  {node.kind}", style="cyan")
    if node.extra:
        extra = node.extra
        if not expand and "\n" in extra:   # a whole config printed by extra_repr(): its first line (--all, --json)
            extra = extra.splitlines()[0].rstrip() + " …"
        label.append(f"({extra})", style="cyan")
    if count > 1:
        label.append(f"  {human_count(node.params)} params each, {human_count(node.params * count)} in all",
                     style="magenta")
    else:
        label.append(f"  {human_count(node.params)} params", style="magenta")
    if node.output_shape is not None:
        label.append(f"  -> {compact_shape(node.output_shape)}", style="green")
    return label


def _signature(node: StructureNode) -> tuple:
    """What two blocks must share to be shown as one: everything the tree prints of them."""
    return (node.kind, node.extra, node.params, repr(node.output_shape), repr(node.recurrent),
            tuple((c.name, _signature(c)) for c in node.children))


def _add_children(tree, node: StructureNode, depth: int | None, level: int, expand: bool = False) -> None:
    from lstm_inspect.render.groups import index_runs, span_label

    if depth is not None and level > depth:
        if node.children or node.recurrent:
            tree.add("…", style="dim")
        return
    if expand:
        groups = [[c] for c in node.children]
    else:
        groups = index_runs(node.children, lambda c: int(c.name),
                            lambda c: _signature(c) if c.name.isdigit() else None)
    for run in groups:
        child = run[0]
        name = span_label("", int(run[0].name), int(run[-1].name), len(run)) if len(run) > 1 else None
        branch = tree.add(_label(child, name, expand=expand, count=len(run)))
        _add_children(branch, child, depth, level + 1, expand)
    if node.recurrent is not None:
        _add_recurrent(tree, node, depth, level)


def _add_recurrent(tree, node: StructureNode, depth: int | None, level: int) -> None:
    from rich.text import Text

    r = node.recurrent
    assert r is not None   # called for recurrent nodes only
    tree.add(Text(f"gate order: {r.gate_order}   (G = {r.gates} gates; H hidden, H_r state width, I layer input)", style="dim"))
    for layer in r.layers:
        branch = tree.add(Text(f"layer {layer.layer} · {layer.direction}  (input {layer.input_size})", style="yellow"))
        if depth is not None and level + 1 > depth:
            branch.add("…", style="dim")
            continue
        for t in layer.tensors:
            branch.add(Text(f"{t.name:<24} [{', '.join(map(str, t.shape))}]  = [{t.symbolic}]"))
    if r.state_shapes:
        tree.add(Text("state: " + "   ".join(f"{k} {compact_shape(v)}" for k, v in r.state_shapes.items()), style="green"))
