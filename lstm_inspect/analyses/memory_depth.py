"""A deep model's trace from the traces of two shallow copies: its stack of layers extended to full depth.

A per-step loop costs one Python dispatch per op, per layer and per time step: transformers' default Mamba, RWKV
and xLSTM have 32 layers and run 400 to 1,800 ops per step, so one trace at 256 steps dispatches 100,000 to
470,000 ops, and a backward doubles that. But the layers of a stack run the same ops on the same shapes, and
what is live at any point of layer ``k`` of a model ``D`` layers deep is affine in ``k`` and ``D``: activations
that earlier layers saved for the backward grow with ``k``, gradients that later layers accumulated grow with
``D − k``, and the rest is the same in every layer. Layers next to the ends may differ (a state that only the
first two layers start, the last layer's backward which receives one gradient instead of two), so
:data:`HEAD` leading and :data:`TAIL` trailing layers are kept apart and only the layers between them repeat.

Copies of the model whose stack keeps its first layers (``SHALLOW = (4, 5)``: two leading layers, one or two
repeated, one trailing) are traced instead of the model. Every point of a trace (the live total at a segment's
start and after each allocating op) then has values at three (layer, depth) pairs of a repeated layer, which fix
``a + b·k + c·D``, and at two depths outside them (``a + c·D``). :func:`extend` writes the full-depth trace: its
segments in order, each one's points and peak, and its op count (affine in ``D``).

It is checked, not assumed: the extended trace must equal the full model's own trace at :data:`DEPTH_CHECK`
exactly (every segment's label and peak, every point, the op count); anything else (a cache sized by the
configured depth, an op every few layers such as RWKV's rescaling in inference, a stack not called in order)
and the model is traced at full depth. The extension is refused earlier where the copies' traces do not line up.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from lstm_inspect.analyses.memory_estimate import Trace, trace_difference

if TYPE_CHECKING:
    from torch import nn

    from lstm_inspect.analyses.memory_probes import Estimator

#: Leading and trailing layers of the stack kept apart from the repeated ones.
HEAD, TAIL = 2, 1
#: The depths of the two shallow copies: the leading and trailing layers and one, then two, repeated layers.
SHALLOW = (HEAD + 1 + TAIL, HEAD + 2 + TAIL)
#: The fewest layers a stack needs for its copies to be traced instead (they cost 4 + 5 layers per trace).
MIN_DEPTH = 16
#: (batch, seq) where the extended trace is compared with the full model's own.
DEPTH_CHECK = (2, 8)
DEPTH_SAME = ("estimate traced on copies of the model whose {path} keeps its first {low} and {high} of {depth} "
              "layers, extended to {depth} (what is live in a layer is affine in its index and the depth); the "
              "extension gave the model's own trace at {batch}×{seq} (same peak, segments and allocations)")
#: The label of a module that is not the model's (transformers' ``ACT2FN[name]`` makes one per call).
UNREGISTERED = "a module made during the call"


@dataclass(frozen=True)
class Stack:
    """The model's deepest stack of layers: a ModuleList at ``path`` of ``depth`` layers of one class whose
    layers have the same parameters and buffers (names, shapes, dtypes) but for the first :data:`HEAD`."""

    path: str
    depth: int


def find_stack(module: "nn.Module") -> Stack | None:
    """The deepest stack of at least :data:`MIN_DEPTH` layers, or None."""
    from torch import nn

    best: Stack | None = None
    for path, child in module.named_modules():
        if not path or not isinstance(child, nn.ModuleList) or len(child) < MIN_DEPTH:
            continue
        if best is not None and len(child) <= best.depth:
            continue
        layers = list(child)
        if len({type(layer) for layer in layers}) != 1:
            continue
        signatures = [_signature(layer) for layer in layers[HEAD:]]
        if all(s == signatures[0] for s in signatures):
            best = Stack(path, len(layers))
    return best


def _signature(layer: "nn.Module") -> tuple:
    return (tuple((n, tuple(p.shape), p.dtype, p.requires_grad) for n, p in layer.named_parameters()),
            tuple((n, tuple(b.shape), b.dtype) for n, b in layer.named_buffers()))


def shallow_copy(module: "nn.Module", stack: Stack, depth: int,
                 copier: Callable[["nn.Module"], "nn.Module"] = copy.deepcopy) -> "nn.Module":
    """A copy of ``module`` (made by ``copier``) whose stack keeps its first ``depth`` layers; a config the copy
    holds (transformers' ``config``) says so too where it named the full depth (``num_hidden_layers``)."""
    from torch import nn

    parent_path, _, name = stack.path.rpartition(".")
    parent = module.get_submodule(parent_path)
    full = parent._modules[name]
    assert isinstance(full, nn.ModuleList), stack.path
    parent._modules[name] = nn.ModuleList(list(full)[:depth])
    try:
        shallow = copier(module)
    finally:
        parent._modules[name] = full
    config = getattr(shallow, "config", None)
    if config is not None and getattr(config, "num_hidden_layers", None) == stack.depth:
        try:
            config.num_hidden_layers = depth
        except (AttributeError, ValueError, TypeError):
            pass
    return shallow


def canonical_names(module: "nn.Module", stack: Stack) -> dict[int, tuple[int | None, str]]:
    """``id`` of each module and parameter → (its layer's index in the stack, or None; its name in the layer,
    or in the model outside the stack)."""
    prefix = stack.path + "."
    names: dict[int, tuple[int | None, str]] = {}
    for named in (module.named_modules(), module.named_parameters()):
        for name, obj in named:
            if name.startswith(prefix):
                index, _, rest = name[len(prefix):].partition(".")
                names[id(obj)] = (int(index), rest)
            else:
                names.setdefault(id(obj), (None, name))
    return names


def relabel(trace: Trace, names: dict[int, tuple[int | None, str]]) -> Trace:
    """``trace`` with each segment's label ``(kind, id)`` written ``(kind, layer index, name)``: the same in the
    copies and in the model, whatever the objects' ids."""

    def label(old: Any) -> Any:
        if isinstance(old, tuple) and len(old) == 2 and isinstance(old[1], int):
            # a module made during the call is no one's (its id may be another's later): it belongs to the run
            # of the layer it is called in
            return (old[0], *names[old[1]]) if old[1] in names else (old[0], UNREGISTERED)
        return old

    return dataclasses.replace(trace, segments=tuple((label(lab), peak) for lab, peak in trace.segments))


@dataclass(frozen=True)
class _Segment:
    label: Any
    points: tuple[int, ...]
    ops: tuple[Any, ...]


#: A run's key: None outside the stack, else ("head", i), ("mid", i) or ("tail", i from the end).
_Key = Any


def extend(low: Trace, high: Trace, depth: int) -> tuple[Trace | None, str]:
    """The trace at ``depth`` from the relabelled traces of the copies :data:`SHALLOW` layers deep:
    ``(trace, "")``, or ``(None, why)`` where they do not line up."""
    shallow = SHALLOW[0]
    runs_low, runs_high = _runs(low, shallow), _runs(high, shallow + 1)
    if runs_low is None or runs_high is None:
        return None, "a segment's peak is not the largest of its points"
    first, extra = ("mid", HEAD), ("mid", HEAD + 1)
    if [k for k, _ in runs_high if k != extra] != [k for k, _ in runs_low]:
        return None, "the copies' layers do not run in the same order"
    out = _Extended()
    i_low = 0
    for i, (key, run_high) in enumerate(runs_high):
        if key == extra:
            continue
        run_low = runs_low[i_low][1]
        i_low += 1
        if key != first:
            index = None if key is None else key[1] if key[0] == "head" else depth - 1 - key[1]
            if len(run_low) != len(run_high):
                return None, "a segment outside the repeated layers differs between the copies"
            for s4, s5 in zip(run_low, run_high):
                extended = _outside(s4, s5, depth) if _at_layer(s4.label, 0) == _at_layer(s5.label, 0) else None
                if extended is None:
                    return None, "a segment outside the repeated layers differs between the copies"
                out.add(_at_layer(s4.label, index), *extended)
            continue
        # the deeper copy's second repeated layer: the run beside this one (after it in the forward, before it in
        # the backward)
        beside = [j for j in (i + 1, i - 1) if 0 <= j < len(runs_high) and runs_high[j][0] == extra]
        if not beside:
            return None, "a repeated layer of the deeper copy has no run beside the other's"
        run_next = runs_high[beside[0]][1]
        if not (_same_shape(run_low, run_high) and _same_shape(run_low, run_next)):
            return None, "a repeated layer's segments differ between the copies"
        layers = range(HEAD, depth - TAIL)
        for k in (layers if beside[0] == i + 1 else reversed(layers)):
            for s4, s5, s5_next in zip(run_low, run_high, run_next):
                # a + b·k + c·D through (k, D) = (HEAD, 4), (HEAD, 5), (HEAD + 1, 5)
                out.add(_at_layer(s4.label, k),
                        tuple(p4 + (q - p5) * (k - HEAD) + (p5 - p4) * (depth - shallow)
                              for p4, p5, q in zip(s4.points, s5.points, s5_next.points)), s4.ops)
    ops = low.ops + (high.ops - low.ops) * (depth - shallow)
    return Trace(max((p for _, p in out.segments), default=0), ops, tuple(out.segments), tuple(out.profiles),
                 tuple(out.names)), ""


def _outside(s4: _Segment, s5: _Segment, depth: int) -> tuple[tuple[int, ...], tuple[Any, ...]] | None:
    """A segment outside the repeated layers at ``depth``: each point ``a + c·D``. Where the deeper copy's segment
    has ``m`` more points, they must be one more repeat of the ``m`` before them (a state made for every layer
    before the first runs, as transformers' xLSTM cache makes three per block); the model then has ``D − 4``
    repeats more than the shallower copy, each ``m`` points as much above the one before as the deeper copy's
    last above its previous one. Else None."""
    shallow = SHALLOW[0]
    p4, p5, o4, o5 = s4.points, s5.points, s4.ops, s5.ops
    m = len(p5) - len(p4)
    if m == 0:
        if o4 != o5:
            return None
        return tuple(a + (b - a) * (depth - shallow) for a, b in zip(p4, p5)), o4
    if m < 0:
        return None
    common = next((i for i in range(len(o4)) if o4[-1 - i] != o5[-1 - i]), len(o4))
    # where the extra repeat is: before the ops both end with (or at the end, where those are repeats themselves)
    at = next((at for at in (len(o4) - common, len(o4)) if m <= at and o5[:at] == o4[:at]
               and o5[at:at + m] == o4[at - m:at] and o5[at + m:] == o4[at:] and p5[:at] == p4[:at]), None)
    if at is None:
        return None
    step = [p5[at + q] - p4[at - m + q] for q in range(m)]
    repeats = tuple(p4[at - m + q] + e * step[q] for e in range(1, depth - shallow + 1) for q in range(m))
    after = tuple(a + (b - a) * (depth - shallow) for a, b in zip(p4[at:], p5[at + m:]))
    return p4[:at] + repeats + after, o4[:at] + o4[at - m:at] * (depth - shallow) + o4[at:]


class _Extended:
    def __init__(self) -> None:
        self.segments: list[tuple[Any, int]] = []
        self.profiles: list[tuple[int, ...]] = []
        self.names: list[tuple[Any, ...]] = []

    def add(self, label: Any, points: tuple[int, ...], names: tuple[Any, ...]) -> None:
        self.segments.append((label, max(points)))
        self.profiles.append(points)
        self.names.append(names)


def _runs(trace: Trace, depth: int) -> list[tuple[_Key, list[_Segment]]] | None:
    """The trace's segments in runs of one layer (key None: outside the stack); None where a segment's peak is
    not its largest point (the points would not stand for the segment)."""
    runs: list[tuple[_Key, list[_Segment]]] = []
    for (label, peak), points, names in zip(trace.segments, trace.profiles, trace.profile_ops):
        if not points or max(points) != peak:
            return None
        if isinstance(label, tuple) and len(label) == 2 and label[1] == UNREGISTERED:
            key = runs[-1][0] if runs else None
        elif isinstance(label, tuple) and len(label) == 3 and label[1] is not None:
            index = label[1]
            key = ("head", index) if index < HEAD else ("tail", depth - 1 - index) if index >= depth - TAIL \
                else ("mid", index)
        else:
            key = None
        segment = _Segment(label, points, names)
        if runs and runs[-1][0] == key:
            runs[-1][1].append(segment)
        else:
            runs.append((key, [segment]))
    return runs


def _at_layer(label: Any, index: int | None) -> Any:
    """``label`` with its layer index replaced by ``index`` (labels outside the stack unchanged)."""
    if isinstance(label, tuple) and len(label) == 3 and label[1] is not None:
        return (label[0], index, label[2])
    return label


def _same_shape(a: Sequence[_Segment], b: Sequence[_Segment]) -> bool:
    """The same segments but for the layer index, as many points each, and the same ops."""
    return len(a) == len(b) and all(
        _at_layer(x.label, 0) == _at_layer(y.label, 0) and len(x.points) == len(y.points) and x.ops == y.ops
        for x, y in zip(a, b))


class ShallowCopies:
    """An :class:`~.memory_probes.Estimator`'s copies of the model whose stack keeps its first :data:`SHALLOW`
    layers: their traces, extended to the model's depth (:func:`extend`), stand for its own once the extension
    gave the model's own trace at :data:`DEPTH_CHECK` (checked at the first trace)."""

    def __init__(self, estimator: "Estimator", stack: Stack) -> None:
        from lstm_inspect.analyses.memory_probes import untied_meta_copy
        from lstm_inspect.analyses.memory_step import make_step
        from lstm_inspect.meta_memo import memo_for

        self.estimator, self.stack = estimator, stack
        self.memo = memo_for(estimator._meta)       # one memo for the model and its copies: the same ops
        self.copies = []
        for depth in SHALLOW:
            module = shallow_copy(estimator._inputs_of.module, stack, depth, untied_meta_copy)
            module.train(estimator.train)
            step = make_step(estimator.train, estimator.loop, estimator.optimizer)(module)
            self.copies.append((module, step, canonical_names(module, stack)))
        #: None where the shallower copy's warm-up gave the same figures on meta and on fake tensors, else why not
        self.route_why: str | None = self._route_check()
        module, step, _ = self.copies[1]
        estimator._warm_up(step, module, contextlib.nullcontext(), "meta")
        self.checked = False

    def _route_check(self) -> str | None:
        """The shallower copy warmed up with one step at :data:`ROUTE_CHECK`, traced on meta and on a fake-tensor
        copy of it: None where they agree (the meta route is the fake one's for this model's layers)."""
        from lstm_inspect.analyses.memory_estimate import trace_increment
        from lstm_inspect.analyses.memory_probes import ROUTE_CHECK
        from lstm_inspect.analyses.memory_step import make_step
        from lstm_inspect.errors import first_line
        from lstm_inspect.tracing import fake_copy

        estimator, (batch, seq) = self.estimator, ROUTE_CHECK
        module, step, _ = self.copies[0]
        try:
            meta = self._trace_one(module, step, batch, seq)
            shallow = dataclasses.replace(estimator._inputs_of,
                                          module=shallow_copy(estimator._inputs_of.module, self.stack, SHALLOW[0]))
            with contextlib.ExitStack() as stack:
                fake_module, mode = stack.enter_context(fake_copy(shallow))
                fake_module.train(estimator.train)
                fake_step = make_step(estimator.train, estimator.loop, estimator.optimizer)(fake_module)
                fake = trace_increment(fake_step, lambda: estimator._inputs_of.inputs(batch, seq, "cpu", None), mode,
                                       fake_module, estimator.kernels)
        except Exception as exc:  # noqa: BLE001 - the model's own comparison decides then
            return f"a copy failed: {first_line(exc)}"
        return trace_difference(fake, meta, ops=False, labels=False)

    def _trace_one(self, module: Any, step: Any, batch: int, seq: int) -> Trace:
        from lstm_inspect.analyses.memory_estimate import trace_increment

        estimator = self.estimator
        try:
            return trace_increment(step, lambda: estimator._inputs_of.inputs(batch, seq, "meta", None),
                                   contextlib.nullcontext(), module, estimator.kernels, memo=self.memo)
        finally:
            if estimator.train:
                module.zero_grad(set_to_none=True)

    @classmethod
    def of(cls, estimator: "Estimator") -> "ShallowCopies | None":
        """The copies, where the model has a stack deep enough to gain from them (:func:`find_stack`)."""
        stack = find_stack(estimator._meta)
        if stack is None:
            return None
        try:
            return cls(estimator, stack)
        except Exception:  # noqa: BLE001 - a model that cannot be cut short is traced at full depth
            return None

    def trace(self, batch: int, seq: int) -> tuple[Trace | None, str]:
        """(the extended trace at (batch, seq), "") or (None, why it does not stand for the model's)."""
        if not self.checked:
            estimator = self.estimator
            full = relabel(estimator._trace_meta(*DEPTH_CHECK), canonical_names(estimator._meta, self.stack))
            extended, why = self._extended(*DEPTH_CHECK)
            if extended is None:
                return None, why
            differs = trace_difference(extended, full)
            if differs is not None:
                return None, f"at {DEPTH_CHECK[0]}×{DEPTH_CHECK[1]} the extension differed from the model's own " \
                             f"trace ({differs})"
            self.checked = True
            estimator.notes = (*estimator.notes, DEPTH_SAME.format(
                low=SHALLOW[0], high=SHALLOW[1], depth=self.stack.depth, path=self.stack.path,
                batch=DEPTH_CHECK[0], seq=DEPTH_CHECK[1]))
        return self._extended(batch, seq)

    def _extended(self, batch: int, seq: int) -> tuple[Trace | None, str]:
        traces = [relabel(self._trace_one(module, step, batch, seq), names) for module, step, names in self.copies]
        return extend(traces[0], traces[1], self.stack.depth)
