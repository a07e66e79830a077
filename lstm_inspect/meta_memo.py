"""A memo of meta-kernel outputs for traces on the ``meta`` device (the memory estimate's meta route).

A model that loops over time steps in Python runs the same aten ops on the same shapes at every step, and on
torch 2.13 the meta kernels of element-wise ops are Python references (``aten.add.Tensor`` costs ~70 µs on meta
against ~1 µs on the CPU). On meta an op's outputs depend only on its arguments' metadata, so the first call of
an op on given metadata runs the real kernel and records each output's shape, stride and dtype; later calls
build fresh outputs with ``torch.empty_strided(..., device="meta")`` instead.

Only where that is exact: the op's schema is purely functional (no alias annotation on any argument or return,
so no views, in-place or ``out=`` ops) and returns Tensors; every tensor argument and output is a plain strided
meta tensor; every non-tensor argument is a plain value (numbers, strings, dtypes, devices, layouts, memory
formats, None, and tuples/lists of them); and, checked once when the entry is recorded, every output has a
storage of its own that ``empty_strided`` rebuilds identically (same shape, stride, dtype, storage size and
offset). Anything else runs the kernel every time. The key also holds which tensor arguments share a storage
and the default dtype (factories read it).

Never used on fake tensors (FakeTensorMode has its own cache: they are not plain tensors, so nothing matches)
or real ones. Autograd sits above the dispatch mode that calls the memo, so it sees the same ops either way.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

import torch

#: Non-tensor argument types whose value (with the type) is part of the key.
_PLAIN = frozenset({int, float, bool, type(None), str, torch.dtype, torch.device, torch.layout,
                    torch.memory_format})
_TENSORS = frozenset({torch.Tensor, torch.nn.Parameter})
_RETURN_TYPES = frozenset({"Tensor", "List[Tensor]"})
_STRIDED = torch.strided
#: Entries kept at most (a sweep of the default grid records a few thousand); past it, nothing new is recorded.
MAX_ENTRIES = 200_000

_UNCACHEABLE = None     # a key whose outputs cannot be rebuilt exactly: the kernel runs every time


class _NotMemoisable(Exception):
    """An argument the key cannot describe (a tensor off meta, an object)."""


class MetaMemo:
    """Outputs' metadata per (op, arguments' metadata), for one sweep (one Estimator)."""

    def __init__(self) -> None:
        self._entries: dict[tuple, Any] = {}
        self._functional: dict[Any, bool] = {}
        self.hits = 0
        self.misses = 0
        #: whether the last call's outputs were built from the memo (new storages, none an argument's)
        self.rebuilt = False

    def __call__(self, func: Callable, args: tuple, kwargs: dict) -> Any:
        """``func(*args, **kwargs)``, built from the memo where an earlier call recorded it."""
        self.rebuilt = False
        key = self._key(func, args, kwargs)
        if key is None:
            return func(*args, **kwargs)
        entry = self._entries.get(key, ...)
        if entry is _UNCACHEABLE:
            return func(*args, **kwargs)
        if entry is not ...:
            self.hits += 1
            self.rebuilt = True
            return _rebuild(entry)
        self.misses += 1
        out = func(*args, **kwargs)
        if len(self._entries) < MAX_ENTRIES:
            self._entries[key] = _record(out, _storages(args, kwargs))
        return out

    def _key(self, func: Any, args: tuple, kwargs: dict) -> tuple | None:
        functional = self._functional.get(func)
        if functional is None:
            functional = self._functional[func] = purely_functional(func)
        if not functional:
            return None
        storages: dict[int, int] = {}
        try:
            return (func, torch.get_default_dtype(), _key_of(args, storages),
                    tuple([(name, _key_of(value, storages)) for name, value in kwargs.items()]) if kwargs else ())
        except _NotMemoisable:
            return None


def purely_functional(func: Any) -> bool:
    """Whether an op's schema aliases or mutates nothing and returns only Tensors (or lists of them)."""
    schema = getattr(func, "_schema", None)
    if schema is None or not schema.returns or schema.is_mutable:
        return False
    if any(a.alias_info is not None or a.is_out for a in schema.arguments):
        return False
    return all(r.alias_info is None and str(r.type) in _RETURN_TYPES for r in schema.returns)


def _key_of(value: Any, storages: dict[int, int]) -> Any:
    kind = type(value)
    if kind in _TENSORS:
        if not value.is_meta or value.layout is not _STRIDED or value.is_conj() or value.is_neg():
            raise _NotMemoisable
        # Arguments that share a storage are numbered alike (the first one's position).
        shared = storages.setdefault(value.untyped_storage()._cdata, len(storages))
        return (value.shape, value.stride(), value.dtype, value.storage_offset(), shared)
    if kind in _PLAIN:
        if kind is torch.device and value.type != "meta":
            raise _NotMemoisable                      # a factory or copy to a real device
        return (kind, value)
    if kind is tuple or kind is list:
        return (kind, tuple([_key_of(v, storages) for v in value]))
    raise _NotMemoisable


def _storages(args: tuple, kwargs: dict) -> set[int]:
    found: set[int] = set()

    def visit(value: Any) -> None:
        if type(value) in _TENSORS:
            found.add(value.untyped_storage()._cdata)
        elif type(value) in (tuple, list):
            for v in value:
                visit(v)

    visit(args)
    visit(tuple(kwargs.values()))
    return found


def _record(out: Any, inputs: set[int]) -> Any:
    """``(container, ((shape, stride, dtype), ...))`` when every output is a fresh meta storage that
    ``empty_strided`` rebuilds identically; else :data:`_UNCACHEABLE`."""
    container = type(out) if type(out) in (tuple, list) else None
    outputs = out if container is not None else (out,)
    seen = set(inputs)
    specs = []
    for t in outputs:
        if type(t) is not torch.Tensor or not t.is_meta or t.layout is not torch.strided or t.requires_grad \
                or t.is_conj() or t.is_neg():
            return _UNCACHEABLE
        storage = t.untyped_storage()
        if storage._cdata in seen:
            return _UNCACHEABLE                  # an input's storage, or another output's
        seen.add(storage._cdata)
        spec = (tuple(t.shape), tuple(t.stride()), t.dtype)
        if describe(_rebuild_one(spec)) != describe(t):
            return _UNCACHEABLE                  # e.g. an offset, or a storage larger than its view needs
        specs.append(spec)
    return container, tuple(specs)


def describe(t: torch.Tensor) -> tuple:
    """What the memo promises to reproduce of an output: shape, stride, dtype, storage bytes and offset."""
    return tuple(t.shape), tuple(t.stride()), t.dtype, t.untyped_storage().nbytes(), t.storage_offset()


def _rebuild_one(spec: tuple) -> torch.Tensor:
    shape, stride, dtype = spec
    return torch.empty_strided(shape, stride, dtype=dtype, device="meta")


def _rebuild(entry: tuple) -> Any:
    container, specs = entry
    if container is None:
        return _rebuild_one(specs[0])
    return container(_rebuild_one(spec) for spec in specs)


_BY_OWNER: "weakref.WeakKeyDictionary[Any, MetaMemo]" = weakref.WeakKeyDictionary()


def memo_for(owner: Any) -> MetaMemo:
    """The memo of ``owner`` (the meta copy a sweep traces): created on first use, gone with it."""
    memo = _BY_OWNER.get(owner)
    if memo is None:
        memo = _BY_OWNER[owner] = MetaMemo()
    return memo
