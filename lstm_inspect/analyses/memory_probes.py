"""The two probes a memory sweep asks about each cell.

* :class:`Estimator`: a fake-tensor copy of the model at the asked dtype; ``estimator(batch, seq)`` is
  the estimated increment of one step (nothing allocated). A context manager: the fake copy lives
  between ``__enter__`` and ``__exit__``. Models without a built-in recurrent module are traced on the
  ``meta`` device instead (several times faster per op: no fake-tensor dispatch), where the warm-up step, traced
  on both, gave the same peak, segments and allocations (:data:`META_ROUTE`).
* :class:`Meter`: the model with real weights on a device, warmed up; ``meter(batch, seq)`` measures
  the increment of one real step (CUDA allocator statistics or the CPU profiler). A context manager:
  the weights are released on exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Any, Sequence

from lstm_inspect.analyses.memory_step import make_step
from lstm_inspect.errors import first_line

if TYPE_CHECKING:
    import torch

    from lstm_inspect.analyses.memory_depth import ShallowCopies
    from lstm_inspect.analyses.memory_estimate import Trace
    from lstm_inspect.source import LoadedModel


#: Why a sweep traced on fake tensors although the model has no built-in recurrent module (a note), and
#: the route's name in ``Estimator.route``.
META_ROUTE = "meta"
META_DIFFERS = ("estimate traced on fake tensors: the meta-device trace (faster) differed from the fake-tensor "
                "trace of the warm-up step at {batch}×{seq} ({why})")
META_SAME = ("estimate traced on the meta device, which gave the fake-tensor trace's figures on the warm-up step "
             "at {batch}×{seq} (same peak, segments and allocations)")
META_SAME_COPIES = ("estimate traced on the meta device, which gave the fake-tensor trace's figures on the warm-up "
                    "step at {batch}×{seq} of the model's shallow copy (same peak, segments and allocations)")
DEPTH_REFUSED = "estimate traced at the model's full depth: its copies with fewer layers do not stand for it: {why}"
#: (batch, seq) of the warm-up step traced on both copies to choose the route: batch and sequence above 1, so that
#: no size-1 dimension takes a shortcut (xLSTM runs a single-step kernel at seq 1), and small (a fake-tensor trace
#: costs several times a meta one per op).
ROUTE_CHECK = (2, 2)


class Estimator(contextlib.AbstractContextManager):
    """The estimated increment of one step at any (batch, seq), from one fake copy of the model."""

    def __init__(self, loaded: "LoadedModel", dtype: "torch.dtype", *, train: bool,
                 lengths: Sequence[int] | None = None, extra: int = 0, loop: str = "usual",
                 optimizer: str = "none", kernels: str = "cpu") -> None:
        self.loaded, self.dtype, self.train, self.lengths, self.extra = loaded, dtype, train, lengths, extra
        self.loop, self.optimizer = loop, optimizer
        #: whose recurrent kernels the traces run: ``"cpu"`` (oneDNN) or ``"cuda"`` (cuDNN, modelled)
        self.kernels = kernels
        self._copy: Any = None
        self.law: Any = None                       # a FittedLaw once :meth:`plan` found one that holds
        self.law_refused: list[str] = []           # why a law that was tried does not hold (a note)
        self._known: dict[tuple[int, int], int] = {}   # traced cells: never traced twice
        #: ``"meta"`` or ``"fake"`` once the warm-up step compared them (entering); None before.
        self.route: str | None = None
        self.notes: tuple[str, ...] = ()

    def __enter__(self) -> "Estimator":
        from lstm_inspect.tracing import meta_copy, require_runnable

        require_runnable(self.loaded)
        converted = dataclasses.replace(self.loaded, module=meta_copy(self.loaded.module, self.dtype))
        self._inputs_of = converted
        self._meta: Any = None
        self._shallow: ShallowCopies | None = None
        self._meta_warm_up: Trace | None = None     # the model's own meta warm-up, where the copies chose the route
        if _meta_eligible(self._inputs_of.module, self.optimizer, self.lengths):
            self._meta = untied_meta_copy(self._inputs_of.module)
            self._meta.train(self.train)
            self._meta_step = make_step(self.train, self.loop, self.optimizer)(self._meta)
            from lstm_inspect.analyses.memory_depth import ShallowCopies

            shallow = ShallowCopies.of(self)
            if shallow is not None and shallow.route_why is None:
                self._take_the_copies_route(shallow)
            else:
                self._choose_route()
        else:
            self.route = "fake"
            self._warm_up(*self._fake(), "cpu")
        return self

    def _fake(self) -> tuple[Any, "torch.nn.Module", Any]:
        """(step, module, mode) of the fake-tensor copy, made on first use: on the meta route with shallow copies
        the model itself may never run on fake tensors (a full-depth copy of every parameter)."""
        from lstm_inspect.tracing import fake_copy

        if self._copy is None:
            self._copy = fake_copy(self._inputs_of)
            self.module, self.mode = self._copy.__enter__()
            self.module.train(self.train)
            self._step = make_step(self.train, self.loop, self.optimizer)(self.module)
        return self._step, self.module, self.mode

    def _choose_route(self) -> None:
        """Warm both copies up with one traced step at :data:`ROUTE_CHECK` and keep the meta route where the two
        traces agree. The warm-up step is the comparison: whatever a first call does once (transformers' RWKV
        rescales its weights in place, the optimizer creates its state) runs on both copies alike, so it is
        compared too, and no cell pays for a fake-tensor trace of its own."""
        from lstm_inspect.analyses.memory_estimate import trace_difference

        self.route = "fake"
        try:
            fake = self._trace_fake(*ROUTE_CHECK)
        except Exception:  # noqa: BLE001 - the cells will report the failure themselves
            return
        why: str | None
        try:
            why = trace_difference(fake, self._trace_meta(*ROUTE_CHECK), ops=False, labels=False)
        except Exception as exc:  # noqa: BLE001 - a forward that needs real data or a CPU device
            why = f"the meta trace failed: {first_line(exc)}"
        self._settle_route(why)

    def _take_the_copies_route(self, shallow: "ShallowCopies") -> None:
        """The meta route, chosen on the shallow copies (their warm-up traced on meta and on fake tensors gave the
        same figures): the model's own fake-tensor warm-up, a full-depth fake-tensor trace, is left until the
        copies turn out not to stand for the model (:meth:`_check_the_route_at_full_depth`). The model's meta
        warm-up is traced and kept for that comparison."""
        batch, seq = ROUTE_CHECK
        try:
            self._meta_warm_up = self._trace_meta(batch, seq)
        except Exception:  # noqa: BLE001 - the full comparison says why
            self._choose_route()
            return
        self.route, self._shallow = META_ROUTE, shallow
        self.notes = (META_SAME_COPIES.format(batch=batch, seq=seq),)

    def _check_the_route_at_full_depth(self) -> None:
        """Where the route was chosen on the copies and they do not stand for the model: compare the model's own
        warm-up on fake tensors with its meta one (kept), as :meth:`_choose_route` does; fake if they differ."""
        from lstm_inspect.analyses.memory_estimate import trace_difference

        meta, self._meta_warm_up = self._meta_warm_up, None
        if meta is None:
            return
        why: str | None
        try:
            why = trace_difference(self._trace_fake(*ROUTE_CHECK), meta, ops=False, labels=False)
        except Exception as exc:  # noqa: BLE001 - the cells will report the failure themselves
            why = f"the fake-tensor trace failed: {first_line(exc)}"
        self._settle_route(why)

    def _settle_route(self, why: str | None) -> None:
        """The meta route where the warm-up's fake-tensor and meta traces agreed (``why`` None), else fake; a note
        says which, and why not."""
        batch, seq = ROUTE_CHECK
        self.route = META_ROUTE if why is None else "fake"
        self.notes = (*self.notes, META_SAME.format(batch=batch, seq=seq) if why is None
                      else META_DIFFERS.format(batch=batch, seq=seq, why=why))

    def _warm_up(self, step: Any, module: "torch.nn.Module", mode: Any, device: str) -> None:
        """:func:`warm_up` of one traced copy: transformers' RWKV rescales its weights in place on its first
        inference call, ops no later step runs, which would make the first trace's op count an outlier."""
        warm_up(step, lambda: self._inputs_of.inputs(1, 1, device, [1] if self.lengths is not None else None),
                module, self.train, mode)

    def __exit__(self, *exc: Any) -> None:
        if self._copy is not None:
            self._copy.__exit__(*exc)
            self._copy = None

    def plan(self, batch_sizes: Sequence[int], seq_lens: Sequence[int]) -> None:
        """Fit the law the grid's cells follow from a few traces (:mod:`~lstm_inspect.analyses.memory_fit`),
        where the model runs one op per time step and the law holds; else every cell will be traced."""
        from lstm_inspect.analyses.memory_fit import fit_law

        if self.lengths is not None:
            return
        try:
            self.law, traced = fit_law(self.trace, batch_sizes, seq_lens, why=self.law_refused)
        except Exception:  # noqa: BLE001 - a model that fails to trace: each cell will report its own failure
            self.law, traced = None, {}
        self._known.update(traced)

    def extrapolated(self, batch: int, seq: int) -> bool:
        """Whether ``self(batch, seq)`` comes from the fitted law rather than a trace."""
        return self.law is not None and self.law.covers(seq) and (batch, seq) not in self._known

    def __call__(self, batch: int, seq: int) -> int:
        if (batch, seq) not in self._known:
            if self.law is not None and self.law.covers(seq):
                return self.law(batch, seq) + self.extra
            self._known[(batch, seq)] = self.trace(batch, seq).peak
        return self._known[(batch, seq)] + self.extra

    def trace(self, batch: int, seq: int) -> "Trace":
        """One tracked step at (batch, seq) (without the resident optimizer state): on the meta copy where the
        warm-up found it gives the fake copy's figures (:meth:`_choose_route`), else on the fake copy."""
        if self.route != META_ROUTE:
            return self._trace_fake(batch, seq)
        if self._shallow is not None:
            full: Trace | None = None
            try:
                extended, why = self._shallow.trace(batch, seq)
            except Exception as exc:  # noqa: BLE001 - does the model itself run at this size?
                # Where it does not either, its own error is the cell's and the copies stay (xLSTM's chunked
                # kernel fails under autograd in training, copies and model alike); where it does, they go.
                full = self._trace_meta(batch, seq)
                extended, why = None, f"the copies failed at {batch}×{seq}, where the model runs: {first_line(exc)}"
            if extended is not None:
                return extended
            self._shallow = None
            self.notes = (*self.notes, DEPTH_REFUSED.format(why=why))
            self._check_the_route_at_full_depth()
            if self.route != META_ROUTE:
                return self._trace_fake(batch, seq)
            if full is not None:
                return full
        return self._trace_meta(batch, seq)

    def _trace_fake(self, batch: int, seq: int) -> "Trace":
        from lstm_inspect.analyses.memory_estimate import trace_increment

        step, module, mode = self._fake()
        try:
            inputs = lambda: self._inputs_of.inputs(batch, seq, "cpu", self.lengths)  # noqa: E731
            return trace_increment(step, inputs, mode, module, self.kernels)
        finally:
            if self.train:
                module.zero_grad(set_to_none=True)

    def _trace_meta(self, batch: int, seq: int) -> "Trace":
        from lstm_inspect.analyses.memory_estimate import trace_increment
        from lstm_inspect.meta_memo import memo_for

        try:
            inputs = lambda: self._inputs_of.inputs(batch, seq, "meta", self.lengths)  # noqa: E731
            return trace_increment(self._meta_step, inputs, contextlib.nullcontext(), self._meta, self.kernels,
                                   memo=memo_for(self._meta))
        finally:
            if self.train:
                self._meta.zero_grad(set_to_none=True)


def warm_up(step: Any, inputs: Any, module: "torch.nn.Module", train: bool,
            mode: Any = contextlib.nullcontext()) -> None:
    """One small step at 1 × 1 that no cell counts, before the first measured or traced one: a model's first call
    may do one-time work, and the first optimizer step creates the optimizer's state (resident in steady
    training, added to each cell as ``extra``). A failure is left to the cells to report."""
    try:
        with mode:
            step(inputs())
    except Exception:  # noqa: BLE001 - the cells will report the failure themselves
        pass
    finally:
        if train:
            module.zero_grad(set_to_none=True)


def _meta_eligible(module: "torch.nn.Module", optimizer: str, lengths: Sequence[int] | None) -> bool:
    """Whether a meta-device trace may stand for the fake one: not for the built-in recurrent modules (their CPU
    oneDNN kernels' transients and workspace are modelled on the fake path, and on meta they run one op per
    step), packed batches, or Adam (its step reads the step count with ``.item()``, which meta has no value
    for)."""
    from torch import nn

    return (lengths is None and optimizer != "adam"
            and not any(isinstance(m, nn.RNNBase) for m in module.modules()))


def untied_meta_copy(module: "torch.nn.Module") -> "torch.nn.Module":
    """A copy on meta whose parameters are converted as :func:`~lstm_inspect.building.to_fake` converts them
    for the fake copy: one Parameter per module attribute, tied ones sharing a storage but not the Parameter
    (so that autograd accumulates their gradients the same way on both routes)."""
    import torch

    from lstm_inspect.tracing import meta_copy

    copy_ = meta_copy(module)
    memo: dict[int, torch.Tensor] = {}

    def convert(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in memo:
            memo[id(t)] = torch.empty_strided(tuple(t.shape), tuple(t.stride()), dtype=t.dtype, device="meta")
        return memo[id(t)]

    overwrite = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)
    try:
        copy_._apply(convert)
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(overwrite)
    return copy_


class Meter(contextlib.AbstractContextManager):
    """The measured increment of one real step on ``device`` (real weights, small random values)."""

    def __init__(self, loaded: "LoadedModel", device: "torch.device", dtype: "torch.dtype", *, train: bool,
                 lengths: Sequence[int] | None = None, extra: int = 0, loop: str = "usual",
                 optimizer: str = "none") -> None:
        self.loaded, self.device, self.dtype, self.train, self.lengths, self.extra = \
            loaded, device, dtype, train, lengths, extra
        self.loop, self.optimizer = loop, optimizer
        self.module: Any = None

    def __enter__(self) -> "Meter":
        from lstm_inspect.building import materialize

        self.module = materialize(self.loaded.module, self.device, self.dtype)
        self.module.train(self.train)
        self._step = make_step(self.train, self.loop, self.optimizer)(self.module)
        self._warm_up()
        return self

    def __exit__(self, *exc: Any) -> None:
        from lstm_inspect.analyses.memory_measure import release

        self.module = None
        release(self.device)

    def _warm_up(self) -> None:
        """:func:`warm_up` of the real model: the first forward in a process also allocates one-time state
        (kernel libraries' caches, thread pools)."""
        warm_up(self._step, lambda: self.loaded.inputs(1, 1, self.device, [1] if self.lengths is not None else None),
                self.module, self.train)

    def _reset(self) -> None:
        if self.train:
            self.module.zero_grad(set_to_none=True)

    def __call__(self, batch: int, seq: int) -> int:
        from lstm_inspect.analyses.memory_measure import measure_increment, release

        try:
            return measure_increment(self._step, lambda: self.loaded.inputs(batch, seq, self.device, self.lengths),
                                     self.device) + self.extra
        finally:
            self._reset()
            release(self.device)
