"""The two probes a memory sweep asks about each cell.

* :class:`Estimator`: a fake-tensor copy of the model at the asked dtype; ``estimator(batch, seq)`` is
  the estimated increment of one step (nothing allocated). A context manager: the fake copy lives
  between ``__enter__`` and ``__exit__``.
* :class:`Meter`: the model with real weights on a device, warmed up; ``meter(batch, seq)`` measures
  the increment of one real step (CUDA allocator statistics or the CPU profiler). A context manager:
  the weights are released on exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Any, Sequence

from lstm_inspect.analyses.memory_step import make_step

if TYPE_CHECKING:
    import torch

    from lstm_inspect.analyses.memory_estimate import Trace
    from lstm_inspect.source import LoadedModel


class Estimator(contextlib.AbstractContextManager):
    """The estimated increment of one step at any (batch, seq), from one fake copy of the model."""

    def __init__(self, loaded: "LoadedModel", dtype: "torch.dtype", *, train: bool,
                 lengths: Sequence[int] | None = None, extra: int = 0, loop: str = "usual",
                 optimizer: str = "none") -> None:
        self.loaded, self.dtype, self.train, self.lengths, self.extra = loaded, dtype, train, lengths, extra
        self.loop, self.optimizer = loop, optimizer
        self._copy: Any = None
        self.law: Any = None                       # a FittedLaw once :meth:`plan` found one that holds
        self._known: dict[tuple[int, int], int] = {}   # traced cells: never traced twice

    def __enter__(self) -> "Estimator":
        from lstm_inspect.tracing import fake_copy, meta_copy

        converted = dataclasses.replace(self.loaded, module=meta_copy(self.loaded.module, self.dtype))
        self._inputs_of = converted
        self._copy = fake_copy(converted)
        self.module, self.mode = self._copy.__enter__()
        self.module.train(self.train)
        self._step = make_step(self.train, self.loop, self.optimizer)(self.module)
        if self.train and self.optimizer != "none":
            # One untracked step creates the optimizer's (fake) state: resident from then on, as in training.
            try:
                with self.mode:
                    self._step(self._inputs_of.inputs(1, 1, "cpu", [1] if self.lengths is not None else None))
            except Exception:  # noqa: BLE001 - the cells will report the failure themselves
                pass
            finally:
                self.module.zero_grad(set_to_none=True)
        return self

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
            self.law, traced = fit_law(self.trace, batch_sizes, seq_lens)
        except Exception:  # noqa: BLE001 - a model that fails to trace: each cell will report its own failure
            self.law, traced = None, {}
        self._known.update(traced)

    def extrapolated(self, batch: int, seq: int) -> bool:
        """Whether ``self(batch, seq)`` comes from the fitted law rather than a trace."""
        return self.law is not None and (batch, seq) not in self._known

    def __call__(self, batch: int, seq: int) -> int:
        if (batch, seq) not in self._known:
            if self.law is not None:
                return self.law(batch, seq) + self.extra
            self._known[(batch, seq)] = self.trace(batch, seq).peak
        return self._known[(batch, seq)] + self.extra

    def trace(self, batch: int, seq: int) -> "Trace":
        """One tracked step at (batch, seq) on the fake copy (without the resident optimizer state)."""
        from lstm_inspect.analyses.memory_estimate import trace_increment

        try:
            inputs = lambda: self._inputs_of.inputs(batch, seq, "cpu", self.lengths)  # noqa: E731
            return trace_increment(self._step, inputs, self.mode, self.module)
        finally:
            if self.train:
                self.module.zero_grad(set_to_none=True)


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
        """One small unmeasured step: the first forward in a process allocates one-time state (kernel
        libraries' caches, thread pools), and the first optimizer step creates the optimizer's state
        (resident in steady training, added to each cell as ``extra``): no part of any cell's increment."""
        try:
            self._step(self.loaded.inputs(1, 1, self.device, [1] if self.lengths is not None else None))
        except Exception:  # noqa: BLE001 - the cells will report the failure themselves
            pass
        finally:
            self._reset()

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
