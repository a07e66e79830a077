"""Estimating a forward pass's memory increment without allocating: fake tensors and a storage tracker.

The forward (and, in train mode, the backward) runs on fake tensors. A dispatch mode sits above
FakeTensorMode and watches every aten op: each output whose storage is new (not one of the op's
inputs' storages, not seen before) adds its ``nbytes`` to a running total, and a finaliser on the
storage takes it off again when the last tensor using it dies. The peak of that running total is
the estimate: the same quantity the CPU allocator (or ``torch.cuda.max_memory_allocated``) reports
as peak − baseline, because weights and inputs exist before tracking starts and are never counted.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

from lstm_inspect.analyses import memory_cudnn
from lstm_inspect.analyses.memory_onednn import rnn_workspace_bytes, transient_bytes
from lstm_inspect.torch_adapters import mkldnn_layer

if TYPE_CHECKING:
    import torch


def _tracker_class():
    """Built on first use so that importing this module does not import torch."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class LiveStorageTracker(TorchDispatchMode):
        """Running total and peak of the bytes held by storages that ops created while active."""

        @classmethod
        def _should_skip_dynamo(cls) -> bool:
            # torch wraps a mode's __torch_dispatch__ in ``torch._disable_dynamo`` unless this says no: two
            # Python frames per op (a sixth of a per-step loop's trace) for a compiler that never runs here.
            return False

        def __init__(self, memo: Callable | None = None) -> None:
            super().__init__()
            self.memo = memo        # on the meta route, a MetaMemo: runs each op or rebuilds its outputs
            self.live = 0
            self.peak = 0
            self.ops = 0
            #: ``(label, peak of the live total since the previous mark)``, one per :meth:`mark`.
            self.segments: list[tuple[Any, int]] = []
            #: Per segment: the live total at its start, then after each op that allocated (its
            #: transient included): the points a peak can be at, in order (see memory_fit).
            self.profiles: list[tuple[int, ...]] = []
            #: Per segment, what each point of its profile is: ``None`` for the start, else the op.
            self.profile_ops: list[tuple[Any, ...]] = []
            #: Per segment, how many ops ran in it.
            self.segment_ops: list[int] = []
            self._ops_at_mark = 0
            self._profile: list[int] = [0]
            self._ops: list[Any] = [None]
            self._segment_peak = 0
            self._sizes: dict[int, int] = {}
            self._refs: dict[int, tuple[Any, int]] = {}   # id of a weak reference to a storage: (it, storage key)
            self._released_once = self._released           # one bound method for every weak reference

        def mark(self, label: Any) -> None:
            """End the current segment of the run (a module entered or left, a gradient accumulated)."""
            self.segments.append((label, max(self._segment_peak, self.live)))
            self.profiles.append(tuple(self._profile))
            self.profile_ops.append(tuple(self._ops))
            self.segment_ops.append(self.ops - self._ops_at_mark)
            self._ops_at_mark = self.ops
            self._segment_peak = self.live
            self._profile, self._ops = [self.live], [None]

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            rnn = _modelled_kernel(func)
            if rnn and memory_cudnn.is_backward(func):
                # no meta kernel: its outputs as the CUDA kernel makes them (the weight gradients share one buffer)
                out = memory_cudnn.backward_outputs(args)
            else:
                out = func(*args, **(kwargs or {})) if self.memo is None else self.memo(func, args, kwargs or {})
                if not isinstance(out, _Tensor):    # one output aliases no other
                    out = _separate_outputs(func, out)
            self.ops += 1
            if self.memo is not None and _aliases_only(func):
                return out      # on meta: a view or in-place op hands back an input's storage, nothing is new
            transient = transient_bytes(func, args) + memory_cudnn.transient_bytes(func, args) if rnn else 0
            flat_out = [out] if isinstance(out, _Tensor) else _tensors((out,))
            if not flat_out:
                if transient:
                    self._note(func, self.live + transient)
                return out
            before = self.live
            if self.memo is not None and self.memo.rebuilt and not rnn:
                # outputs the memo built just now: plain meta tensors with new storages, none of them an input's or
                # one seen before (:meth:`_adopt` without its lookups, the one path most ops of a meta trace take)
                for tensor in flat_out:
                    storage = tensor.untyped_storage()
                    self._track(storage, storage._cdata, storage.nbytes())
            else:
                # Views and in-place ops hand back an input's storage: no new memory.
                inputs = {_storage_key(t) for t in _tensors(args)}
                if kwargs:
                    inputs.update(_storage_key(t) for t in _tensors(kwargs.values()))
                workspace = rnn_workspace_bytes(func, args) if rnn else 0
                reserve = memory_cudnn.reserve_bytes(func, args) if rnn else 0
                for i, tensor in enumerate(flat_out):
                    self._adopt(tensor, inputs, workspace if tensor is flat_out[-1] else reserve if i == 3 else 0)
            if transient or self.live > before:
                self._note(func, self.live + transient)
            return out

        def adopt_literal(self, value: Any, func: Any) -> None:
            """Count the tensors ``torch.tensor(data)`` (``func``) made from Python data. On fake tensors the
            literal passes through ``aten.lift_fresh`` and is counted there (then this finds it known); on the
            meta device (or a CPU literal made there) no op is dispatched, so without this it would be missed."""
            before = self.live
            for tensor in _tensors((value,)):
                self._adopt(tensor, set(), 0)
            if self.live > before:
                self._note(func, self.live)

        def _adopt(self, tensor: Any, inputs: Any, workspace: int) -> None:
            storage = _storage(tensor)
            if storage is None:
                return
            key = storage._cdata
            if key in inputs or key in self._sizes:
                return
            self._track(storage, key, max(int(storage.nbytes()), workspace))

        def _track(self, storage: Any, key: int, size: int) -> None:
            """Count a new storage's ``size`` bytes until it is freed. Its Python object is preserved while the
            storage lives (held by a tensor or by autograd's saved tensors), so the weak reference's callback runs
            when the memory would be freed."""
            self._sizes[key] = size
            self.live += size
            ref = weakref.ref(storage, self._released_once)
            self._refs[id(ref)] = (ref, key)

        def _released(self, ref: Any) -> None:
            entry = self._refs.pop(id(ref), None)
            if entry is not None:
                self.live -= self._sizes.pop(entry[1], 0)

        def _note(self, func: Any, total: int) -> None:
            self._profile.append(total)
            self._ops.append(func)
            if total > self._segment_peak:
                self._segment_peak = total
                self.peak = max(self.peak, total)

    return LiveStorageTracker


_NO_INPUTS: frozenset = frozenset()
_Tensor: Any = None     # torch.Tensor, set when the tracker class is built (importing this module imports no torch)


def _tensors(values: Any) -> list:
    """The tensors in ``values`` and in the lists, tuples (return types included) and dicts in it, in order: what an
    aten op's arguments and results hold (``tree_flatten`` does the same for any pytree, several times slower, and
    ran three times per op: a quarter of a per-step loop's trace)."""
    import torch

    found = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (tuple, list)):
            found += _tensors(value)
        elif isinstance(value, dict):
            found += _tensors(value.values())
    return found


def _separate_outputs(func, out):
    """``out`` with every output that shares an earlier output's storage replaced by a copy, where the
    op's schema says its outputs alias nothing.

    A meta kernel may return one tensor twice where the real kernel returns two: the fake
    ``mkldnn_rnn_layer_backward`` hands back the same bias gradient for ``b_ih`` and ``b_hh`` (the CPU
    kernel allocates two). FakeTensorMode's cache rebuilds outputs one by one, so the aliasing was seen
    only on the first call of a shape in a process: the same cell gave two figures. A copy per output
    is what the real kernel allocates, whichever path the fake result came from.
    """
    import torch
    from torch.utils._pytree import tree_flatten, tree_unflatten

    if isinstance(out, torch.Tensor):
        return out                      # one output aliases no other
    schema = getattr(func, "_schema", None)
    if schema is None or any(r.alias_info is not None for r in schema.returns):
        return out
    flat, spec = tree_flatten(out)
    seen: set[int] = set()
    changed = False
    for i, t in enumerate(flat):
        if not isinstance(t, torch.Tensor):
            continue
        key = _storage_key(t)
        if key is not None and key in seen:
            flat[i], changed = t.clone(), True
        elif key is not None:
            seen.add(key)
    return tree_unflatten(flat, spec) if changed else out


def _storage(t: "torch.Tensor") -> Any:
    try:
        return t.untyped_storage()
    except (RuntimeError, NotImplementedError, AttributeError):
        return None  # e.g. sparse or nested tensors: no plain storage to follow


def _storage_key(t: "torch.Tensor") -> int | None:
    storage = _storage(t)
    return None if storage is None else int(storage._cdata)


@functools.cache
def _modelled_kernel(func: Any) -> bool:
    """Whether ``func`` is a recurrent kernel whose memory the tracker models (oneDNN's LSTM layer, cuDNN's RNN)."""
    return memory_cudnn.is_rnn_op(func) or mkldnn_layer(func) is not None


@functools.cache
def _aliases_only(func: Any) -> bool:
    """Whether every output of ``func`` is one of its inputs or a view of one (its schema annotates each return
    with an alias: views, in-place and ``out=`` ops), so that it never makes a storage; not an op given a storage
    (``set_``, which may hand the tensor a storage made outside any op). Used on the meta route only: on fake
    tensors, ``aten.lift_fresh`` (an alias by its schema) turns a real literal into a fake one."""
    schema = getattr(func, "_schema", None)
    return (schema is not None and bool(schema.returns) and all(r.alias_info is not None for r in schema.returns)
            and not any("Storage" in str(a.type) for a in schema.arguments))


_TRACKER = None


def live_storage_tracker(memo: Callable | None = None):
    """A new tracking dispatch mode; enter it inside the FakeTensorMode (or on real or meta tensors)."""
    global _TRACKER, _Tensor
    if _TRACKER is None:
        import torch

        _Tensor = torch.Tensor
        _TRACKER = _tracker_class()
    return _TRACKER(memo)


@contextlib.contextmanager
def plain_tensor_kernels(tracker: Any = None) -> Iterator[None]:
    """Within: ``F.linear`` takes the branch its C++ kernel takes on plain tensors, and tensors made from Python
    data are handed to ``tracker``.

    ``at::linear`` is a composite kernel that checks ``isTensorSubclassLike``: on fake tensors (or whenever a
    dispatch mode is active) it adds the bias out of place, so a logits-sized temporary appears twice; on plain
    tensors it fuses ``addmm`` or adds the bias in place. For the language model's projection that is the
    difference between one and two ``B·T·V`` buffers. Tensors made from Python data (``torch.tensor``,
    ``as_tensor``, ``asarray``) dispatch no op on the meta device: the tracker is told of them here.

    Done by replacing the four functions on their modules for the trace (``nn.Linear`` and model code look them
    up there at each call), not with a ``TorchFunctionMode``: a mode sees every torch call, and on a per-step
    loop that cost a sixth of the trace. A call through a reference taken before the trace (``from torch import
    tensor``) is not seen. The replacements act for the tracing thread only (another thread calling them meanwhile
    gets the originals), and traces in several threads take turns (a lock), so that each restores what it found.
    """
    import torch
    import torch.nn.functional as F

    with _PATCHING:
        saved = [(F, "linear", F.linear)] + [(torch, name, getattr(torch, name)) for name in _LITERALS]
        tracing = threading.get_ident()

        def linear(*args: Any, **kwargs: Any) -> Any:
            plain = threading.get_ident() == tracing
            return (_linear_as_on_plain_tensors if plain else saved[0][2])(*args, **kwargs)

        def literal(make: Callable) -> Callable:
            @functools.wraps(make)
            def made(*args: Any, **kwargs: Any) -> Any:
                out = make(*args, **kwargs)
                if tracker is not None and threading.get_ident() == tracing:
                    tracker.adopt_literal(out, make)
                return out
            return made

        F.linear = linear
        for _, name, make in saved[1:]:
            setattr(torch, name, literal(make))
        try:
            yield
        finally:
            for owner, name, original in saved:
                setattr(owner, name, original)


_PATCHING = threading.RLock()
_LITERALS = ("tensor", "as_tensor", "asarray")


def _linear_as_on_plain_tensors(input, weight, bias=None):
    """``aten/src/ATen/native/Linear.cpp::linear`` for non-subclass tensors, written with public ops."""
    import torch

    if bias is not None and input.dim() == 2:
        return torch.addmm(bias, input, weight.t())
    if bias is not None and input.is_contiguous() and (input.dim() == 3 or bias.dim() == 1) and input.dim() >= 2:
        flat = input.reshape(-1, input.shape[-1])
        return torch.addmm(bias, flat, weight.t()).view(*input.shape[:-1], weight.shape[0])
    output = torch.matmul(input, weight.t())
    if bias is not None:
        output.add_(bias)
    return output


def estimate_increment(step: Callable[[tuple], Any], inputs: Callable[[], tuple], mode: Any) -> int:
    """Peak − baseline of storage bytes while ``step(args)`` runs under the fake ``mode``.

    ``inputs()`` makes the forward's arguments before tracking starts (as the measurement makes
    them before its baseline); whatever ``step`` allocates is counted.
    """
    return trace_increment(step, inputs, mode).peak


@dataclass(frozen=True)
class Trace:
    """One tracked step: its peak, how many aten ops ran, and the peak of each segment between marks."""

    peak: int
    ops: int
    segments: tuple[tuple[Any, int], ...] = ()
    #: per segment, the live total at its start and after each allocating op (empty: not recorded)
    profiles: tuple[tuple[int, ...], ...] = ()
    #: per segment, the op behind each point of its profile (``None``: the segment's start)
    profile_ops: tuple[tuple[Any, ...], ...] = ()
    #: per segment, how many ops ran in it (empty: not recorded)
    segment_ops: tuple[int, ...] = ()


def trace_difference(a: Trace, b: Trace, *, ops: bool = True, labels: bool = True) -> str | None:
    """None when two traces agree on the peak, every segment's peak and the live total after every allocating op
    (and on the op count and the segments' labels where ``ops`` and ``labels`` ask for them); else what differs.
    A fake-tensor trace runs ops that allocate nothing and labels its segments with other objects' ids than a meta
    trace of the same model: those two are compared without either."""
    if ops and a.ops != b.ops:
        return f"{a.ops:,} ops against {b.ops:,}"
    if a.peak != b.peak:
        return f"peak {a.peak:,} against {b.peak:,} bytes"
    if (a.segments != b.segments) if labels else ([p for _, p in a.segments] != [p for _, p in b.segments]):
        return "segments differ" if labels else "segment peaks differ"
    if a.profiles != b.profiles:
        return "allocations differ"
    return None


def trace_increment(step: Callable[[tuple], Any], inputs: Callable[[], tuple], mode: Any,
                    module: "torch.nn.Module | None" = None, kernels: str = "cpu",
                    memo: Callable | None = None) -> Trace:
    """:func:`estimate_increment` with the detail a fitted law needs: with ``module``, the run is cut into
    segments at every module call's entry and exit, every parameter's gradient accumulation and the
    optimizer's step, and each segment's peak is kept. ``kernels="cuda"`` runs the recurrent modules as
    cuDNN's kernel (:mod:`~lstm_inspect.analyses.memory_cudnn`) instead of the CPU's. ``memo``: a MetaMemo,
    for a trace on meta tensors."""
    _load_meta_kernels()
    with mode:
        args = inputs()
        tracker = live_storage_tracker(memo)
        rnn = memory_cudnn.cudnn_rnn_mode() if kernels == "cuda" else contextlib.nullcontext()
        # No cyclic collection inside a trace. With it, the law's traces of transformers' Mamba sometimes differed
        # ("allocations do not line up": 2 of 9 runs of its tests with three test processes at once); without it,
        # 18 of 18 such runs agreed. Most likely a collection that frees tensors mid-trace moves storage releases
        # between ops, and when it runs depends on the process's history. Cyclic garbage made inside a trace now
        # stays counted to its end (a deterministic, slightly conservative figure).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            with plain_tensor_kernels(tracker), rnn, tracker, _segment_marks(tracker, module):
                result = step(args)
                del result
        finally:
            if gc_was_enabled:
                gc.enable()
        tracker.mark("end")
    return Trace(int(tracker.peak), tracker.ops, tuple(tracker.segments), tuple(tracker.profiles),
                 tuple(tracker.profile_ops), tuple(tracker.segment_ops))


@functools.cache
def _load_meta_kernels() -> None:
    """Run one op on the meta device, outside any trace, once per process. The first meta op of a process imports
    torch's Python meta kernels and decompositions (some 800 modules, which run ops of their own); done inside the
    first trace, that trace miscounted (a small user model's first fake-tensor and meta traces differed by two
    activations, and agreed from the second trace on), so the first route comparison of a process could fail."""
    import torch

    torch.ones(1, device="meta") + 1


@contextlib.contextmanager
def _segment_marks(tracker: Any, module: "torch.nn.Module | None") -> Iterator[None]:
    if module is None:
        yield
        return
    from torch.nn.modules import module as module_hooks
    from torch.optim import optimizer as optimizer_hooks

    handles = [
        module_hooks.register_module_forward_pre_hook(lambda m, _args: tracker.mark(("enter", id(m)))),
        module_hooks.register_module_forward_hook(lambda m, _args, _out: tracker.mark(("exit", id(m)))),
        optimizer_hooks.register_optimizer_step_pre_hook(lambda *_: tracker.mark(("optimizer step",))),
    ]
    handles += [p.register_post_accumulate_grad_hook(lambda p: tracker.mark(("gradient", id(p))))
                for p in module.parameters() if p.requires_grad]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
