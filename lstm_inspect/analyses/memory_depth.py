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

Some models run more ops around every few layers: transformers' RWKV halves its hidden states before every 6th
block in inference, so its layers 6, 12, 18, ... allocate one tensor more than the others. Where the model's own
trace at :data:`DEPTH_CHECK` shows such layers, all alike, a copy deep enough to hold the first of them as its last
repeated layer replaces the deeper copy (RWKV's 32 blocks: copies of 4 and 8), and that layer stands for all of
them, its points moved with the depth and index as a repeated layer's (:func:`_exception`).

It is checked, not assumed: the extended trace must equal the full model's own trace at :data:`DEPTH_CHECK`
exactly (every segment's label and peak, every point, the op count); anything else (a cache sized by the
configured depth, layers unlike the others in other ways, a stack not called in order) and the model is traced at
full depth. The extension is refused earlier where the copies' traces do not line up.
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
              "layers, extended to {depth} (what is live in a layer is affine in its index and the depth){unlike}; the "
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
    count: int = 0          # how many ops ran in it


#: A run's key: None outside the stack, else ("head", i), ("mid", i) or ("tail", i from the end).
_Key = Any


def extend(low: Trace, high: Trace, depth: int, depths: tuple[int, int] = SHALLOW,
           exceptional: frozenset[int] = frozenset()) -> tuple[Trace | None, str]:
    """The trace at ``depth`` from the relabelled traces of the copies ``depths`` layers deep (the shallower one
    with one repeated layer): ``(trace, "")``, or ``(None, why)`` where they do not line up.

    ``exceptional``: the indices of the repeated layers that run more ops than the others (RWKV halves its hidden
    states before every 6th block in inference); the deeper copy must hold one of them, which stands for all
    of them (see :func:`_exception`)."""
    d1, d2 = depths
    n = d2 - d1
    runs_low, runs_high = _runs(low, d1), _runs(high, d2)
    if runs_low is None or runs_high is None:
        return None, "a segment's peak is not the largest of its points"
    first, extras = ("mid", HEAD), [("mid", k) for k in range(HEAD + 1, d2 - TAIL)]
    if [k for k, _ in runs_high if k not in extras] != [k for k, _ in runs_low]:
        return None, "the copies' layers do not run in the same order"
    out = _Extended()
    i_low, extra_ops = 0, 0
    in_high = _repeated(exceptional, d2)
    if exceptional & {HEAD, HEAD + 1} or (exceptional and not in_high):
        return None, "the layers that run more ops are not where the copies can stand for them"
    for i, (key, run_high) in enumerate(runs_high):
        if key in extras:
            continue
        run_low = runs_low[i_low][1]
        i_low += 1
        if key != first:
            index = None if key is None else key[1] if key[0] == "head" else depth - 1 - key[1]
            if len(run_low) != len(run_high):
                return None, "a segment outside the repeated layers differs between the copies"
            for s4, s5 in zip(run_low, run_high):
                extended = _outside(s4, s5, depth, d1, n) if _at_layer(s4.label, 0) == _at_layer(s5.label, 0) else None
                if extended is None:
                    return None, "a segment outside the repeated layers differs between the copies"
                out.add(_at_layer(s4.label, index), *extended)
            continue
        # the deeper copy's other repeated layers: the runs after this one in the forward, before it in the backward
        forward = [k for k, _ in runs_high[i + 1:i + 1 + len(extras)]] == extras
        block = runs_high[i + 1:i + 1 + len(extras)] if forward else runs_high[max(i - len(extras), 0):i][::-1]
        if [k for k, _ in block] != extras:
            return None, "a repeated layer of the deeper copy has no run beside the other's"
        mids = {k[1]: run for k, run in block}
        run_next = mids[HEAD + 1]
        if not (_same_shape(run_low, run_high) and _same_shape(run_low, run_next)):
            return None, "a repeated layer's segments differ between the copies"
        layer = _Layer(run_low, run_high, run_next, d1, n)
        if layer.coefficients is None:
            return None, "a repeated layer's points are not affine in the depth"
        for k, run in mids.items():
            if k not in exceptional and (not _same_shape(run_low, run) or
                                         [s.points for s in run] != layer.points(k, d2)):
                return None, "the deeper copy's repeated layers are not affine in their index"
        exception, x = None, 0
        if exceptional:
            x = max(k for k in exceptional if k in mids)
            exception = _exception(layer, run_low, mids[x], x, d2)
            if exception is None:
                return None, "a layer that runs more ops has other segments than the others"
            extra_ops += sum(s.count for s in mids[x]) - sum(s.count for s in run_next)
        layers = range(HEAD, depth - TAIL)
        for k in (layers if forward else reversed(layers)):
            unlike = exception is not None and k in exceptional
            points = exception(k, depth) if exception is not None and unlike else layer.points(k, depth)
            for segment, values in zip(mids[x] if unlike else run_low, points):
                out.add(_at_layer(segment.label, k), values, segment.ops)
    # ops: the shallower copy's, then per layer more one repeated layer's, and each exceptional layer's extra ones
    per_layer, rest = divmod(high.ops - low.ops - extra_ops * in_high, n)
    if rest:
        return None, "the copies' op counts are not affine in the depth"
    ops = low.ops + per_layer * (depth - d1) + extra_ops * _repeated(exceptional, depth)
    return Trace(max((p for _, p in out.segments), default=0), ops, tuple(out.segments), tuple(out.profiles),
                 tuple(out.names)), ""


def _repeated(layers: frozenset[int], depth: int) -> int:
    """How many of ``layers`` are repeated layers of a stack ``depth`` deep."""
    return len([k for k in layers if HEAD <= k < depth - TAIL])


class _Layer:
    """A repeated layer's points at any (index k, depth D): ``a + b·k + c·D`` per point, through its runs at
    (HEAD, d1), (HEAD, d1 + n) and (HEAD + 1, d1 + n); ``coefficients`` is None where ``c`` is not an integer."""

    def __init__(self, low: Sequence[_Segment], high: Sequence[_Segment], after: Sequence[_Segment], d1: int,
                 n: int) -> None:
        self.d1, self.low = d1, [s.points for s in low]
        self.coefficients: list[list[tuple[int, int]]] | None = []
        for s1, s2, s3 in zip(low, high, after):
            per_point = []
            for p1, p2, p3 in zip(s1.points, s2.points, s3.points):
                c, rest = divmod(p2 - p1, n)
                if rest:
                    self.coefficients = None
                    return
                per_point.append((p3 - p2, c))
            self.coefficients.append(per_point)

    def points(self, k: int, depth: int) -> list[tuple[int, ...]]:
        assert self.coefficients is not None
        return [tuple(p + b * (k - HEAD) + c * (depth - self.d1) for p, (b, c) in zip(points, coefficients))
                for points, coefficients in zip(self.low, self.coefficients)]


def _exception(layer: _Layer, regular: Sequence[_Segment], run: Sequence[_Segment], x: int,
               d2: int) -> Callable[[int, int], list] | None:
    """An exceptional layer's points at (k, D) from its run at (x, d2): moved as the repeated layer's points move
    from (x, d2) to (k, D), point by point in the segments that have as many points and the same ops as the
    repeated layer's, else every point as the segment's start (an op that only the exceptional layer runs
    allocates as much wherever it runs). None where the run has other segments than the repeated layer's."""
    assert layer.coefficients is not None
    if len(run) != len(regular) or any(_at_layer(a.label, 0) != _at_layer(b.label, 0) for a, b in zip(run, regular)):
        return None
    moves: list[list[tuple[int, int]]] = []
    for segment, like, coefficients in zip(run, regular, layer.coefficients):
        same = len(segment.points) == len(like.points) and segment.ops == like.ops
        moves.append(list(coefficients) if same else [coefficients[0]] * len(segment.points))

    def at(k: int, depth: int) -> list[tuple[int, ...]]:
        return [tuple(p + b * (k - x) + c * (depth - d2) for p, (b, c) in zip(segment.points, move))
                for segment, move in zip(run, moves)]

    return at


def _outside(s4: _Segment, s5: _Segment, depth: int, d1: int = SHALLOW[0],
             n: int = 1) -> tuple[tuple[int, ...], tuple[Any, ...]] | None:
    """A segment outside the repeated layers at ``depth`` from the copies ``d1`` and ``d1 + n`` layers deep: each
    point ``a + c·D``. Where the deeper copy's segment has ``n·m`` more points, they must be ``n`` more repeats of
    the ``m`` before them (a state made for every layer before the first runs, as transformers' xLSTM cache makes
    three per block); the model then has ``D − d1`` repeats more than the shallower copy, each ``m`` points as
    much above the one before as the deeper copy's last above its previous one. Else None."""
    p4, p5, o4, o5 = s4.points, s5.points, s4.ops, s5.ops
    extra = len(p5) - len(p4)
    if extra == 0:
        if o4 != o5 or any((b - a) % n for a, b in zip(p4, p5)):
            return None
        return tuple(a + (b - a) // n * (depth - d1) for a, b in zip(p4, p5)), o4
    if extra < 0 or extra % n:
        return None
    m = extra // n
    common = next((i for i in range(len(o4)) if o4[-1 - i] != o5[-1 - i]), len(o4))
    # where the extra repeats are: before the ops both end with (or at the end, where those are repeats themselves)
    at = next((at for at in (len(o4) - common, len(o4)) if m <= at and o5[:at] == o4[:at]
               and o5[at:at + extra] == o4[at - m:at] * n and o5[at + extra:] == o4[at:] and p5[:at] == p4[:at]),
              None)
    if at is None:
        return None
    step = [p5[at + q] - p4[at - m + q] for q in range(m)]
    if any(p5[at + e * m + q] != p4[at - m + q] + (e + 1) * step[q] for e in range(n) for q in range(m)):
        return None
    after = list(zip(p4[at:], p5[at + extra:]))
    if any((b - a) % n for a, b in after):
        return None
    repeats = tuple(p4[at - m + q] + e * step[q] for e in range(1, depth - d1 + 1) for q in range(m))
    return (p4[:at] + repeats + tuple(a + (b - a) // n * (depth - d1) for a, b in after),
            o4[:at] + o4[at - m:at] * (depth - d1) + o4[at:])


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
    counts = trace.segment_ops or (0,) * len(trace.segments)
    for (label, peak), points, names, count in zip(trace.segments, trace.profiles, trace.profile_ops, counts):
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
        segment = _Segment(label, points, names, count)
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


def _shape(run: Sequence[_Segment]) -> tuple:
    """A run's segments but for the layer index: their labels, how many points each, and the ops."""
    return tuple((_at_layer(s.label, 0), len(s.points), s.ops) for s in run)


def _same_shape(a: Sequence[_Segment], b: Sequence[_Segment]) -> bool:
    """The same segments but for the layer index, as many points each, and the same ops."""
    return _shape(a) == _shape(b)


class ShallowCopies:
    """An :class:`~.memory_probes.Estimator`'s copies of the model whose stack keeps its first :data:`SHALLOW`
    layers: their traces, extended to the model's depth (:func:`extend`), stand for its own once the extension
    gave the model's own trace at :data:`DEPTH_CHECK` (checked at the first trace)."""

    def __init__(self, estimator: "Estimator", stack: Stack) -> None:
        from lstm_inspect.meta_memo import memo_for

        self.estimator, self.stack = estimator, stack
        self.memo = memo_for(estimator._meta)       # one memo for the model and its copies: the same ops
        self.depths: tuple[int, int] = SHALLOW
        #: the repeated layers that run more ops than the others (see :meth:`_deeper_copy`)
        self.exceptional: frozenset[int] = frozenset()
        self.copies = [self._copy(depth) for depth in SHALLOW]
        #: None where the shallower copy's warm-up gave the same figures on meta and on fake tensors, else why not
        self.route_why: str | None = self._route_check()
        self._warm_up(self.copies[1])
        self.checked = False

    def _copy(self, depth: int) -> tuple[Any, Any, dict[int, tuple[int | None, str]]]:
        from lstm_inspect.analyses.memory_probes import untied_meta_copy
        from lstm_inspect.analyses.memory_step import make_step

        estimator = self.estimator
        module = shallow_copy(estimator._inputs_of.module, self.stack, depth, untied_meta_copy)
        module.train(estimator.train)
        step = make_step(estimator.train, estimator.loop, estimator.optimizer)(module)
        return module, step, canonical_names(module, self.stack)

    def _warm_up(self, copy_: tuple[Any, Any, Any]) -> None:
        module, step, _ = copy_
        self.estimator._warm_up(step, module, contextlib.nullcontext(), "meta")

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
            traces = self._traces(*DEPTH_CHECK)
            extended, why = self._extend(traces)
            differs = why if extended is None else trace_difference(extended, full)
            if differs is not None and self._deeper_copy(full, traces[0]):
                extended, why = self._extended(*DEPTH_CHECK)
                differs = why if extended is None else trace_difference(extended, full)
            if extended is None:
                return None, why
            if differs is not None:
                return None, f"at {DEPTH_CHECK[0]}×{DEPTH_CHECK[1]} the extension differed from the model's own " \
                             f"trace ({differs})"
            self.checked = True
            estimator.notes = (*estimator.notes, self._note())
        return self._extended(batch, seq)

    def _note(self) -> str:
        low, high = self.depths
        unlike = ""
        if self.exceptional:
            layers = sorted(self.exceptional)
            named = ", ".join(str(k) for k in layers[:-1]) + f" and {layers[-1]}" if len(layers) > 1 else str(layers[0])
            unlike = (f"; its layers {named} (counted from 0) run more ops than the others, each as the {high}-layer "
                      f"copy's layer {max(k for k in layers if k < high - TAIL)} does")
        return DEPTH_SAME.format(low=low, high=high, depth=self.stack.depth, path=self.stack.path, unlike=unlike,
                                 batch=DEPTH_CHECK[0], seq=DEPTH_CHECK[1])

    def _deeper_copy(self, full: Trace, low: Trace) -> bool:
        """Where the model's repeated layers are all like the shallower copy's but some that run more ops, all alike
        (RWKV halves its hidden states before every 6th block in inference: its layers 6, 12, ...): a copy deep
        enough to hold the first of them as its last repeated layer replaces the deeper copy, and stands for all of
        them (:func:`extend`). Only where the two copies still cost at most half the model's depth, and where one set
        of layers is unlike the others in the forward and the backward alike (in training, an op between two layers
        runs its forward in the later layer's segments and its backward in the earlier one's: such a model is traced
        at full depth). True where the copy was made."""
        depth = self.stack.depth
        runs, low_runs = _runs(full, depth), _runs(low, self.depths[0])
        if runs is None or low_runs is None:
            return False
        regular = [_shape(run) for key, run in low_runs if key == ("mid", HEAD)]   # forward, and backward if any
        seen: dict[int, list[tuple]] = {}
        for key, run in runs:
            if key is not None and key[0] == "mid":
                seen.setdefault(key[1], []).append(_shape(run))
        unlike = {k for k, shapes in seen.items() if shapes != regular}
        if not unlike or len({tuple(seen[k]) for k in unlike}) != 1:
            return False
        deeper = min(unlike) + 1 + TAIL
        if min(unlike) < HEAD + 2 or self.depths[0] + deeper > depth // 2:
            return False
        try:
            copy_ = self._copy(deeper)
            self._warm_up(copy_)
        except Exception:  # noqa: BLE001 - the check refuses the copies then
            return False
        self.copies = [self.copies[0], copy_]
        self.depths, self.exceptional = (self.depths[0], deeper), frozenset(unlike)
        return True

    def _traces(self, batch: int, seq: int) -> list[Trace]:
        return [relabel(self._trace_one(module, step, batch, seq), names) for module, step, names in self.copies]

    def _extend(self, traces: list[Trace]) -> tuple[Trace | None, str]:
        return extend(traces[0], traces[1], self.stack.depth, self.depths, self.exceptional)

    def _extended(self, batch: int, seq: int) -> tuple[Trace | None, str]:
        return self._extend(self._traces(batch, seq))
