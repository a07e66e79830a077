"""The memo of meta-kernel outputs (lstm_inspect/meta_memo.py) behind the memory estimate's meta route.

Each output the memo rebuilds must be what the meta kernel returns (shape, stride, dtype, storage bytes and
offset: everything the storage tracker reads), on fresh storages; traces must not change with it; views,
in-place ops and aliasing returns must always run their kernel.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from lstm_inspect import meta_memo
from lstm_inspect.analyses.memory_estimate import trace_increment
from lstm_inspect.analyses.memory_probes import Estimator, untied_meta_copy
from lstm_inspect.analyses.memory_step import make_step
from lstm_inspect.meta_memo import MetaMemo, describe, purely_functional
from lstm_inspect.source import LoadedModel, token_batch_input
from tests.test_memory_fit import _hf
from tests.user_models import RNNModel, SimpleLSTMModel


class Through(TorchDispatchMode):
    """Every aten op through ``memo`` (or its kernel, with None); keeps each op's outputs."""

    def __init__(self, memo: MetaMemo | None) -> None:
        super().__init__()
        self.memo, self.outputs = memo, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs) if self.memo is None else self.memo(func, args, kwargs)
        self.outputs.append((func, out))
        return out


def _described(outputs) -> list:
    flat = []
    for func, out in outputs:
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            flat.append((func, describe(t) if isinstance(t, torch.Tensor) else t))
    return flat


# ---- random ops on random metadata ----------------------------------------------------------------------

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
LAYOUTS = ["contiguous", "transposed", "expanded", "sliced"]


def _tensor(shape: tuple[int, ...], dtype: torch.dtype, layout: str) -> torch.Tensor:
    """A meta tensor of ``shape`` laid out as asked (the view's base is another, larger storage)."""
    if layout == "transposed" and len(shape) >= 2:
        return torch.empty(*shape[:-2], shape[-1], shape[-2], dtype=dtype, device="meta").transpose(-1, -2)
    if layout == "expanded" and shape:
        return torch.empty(*shape[:-1], 1, dtype=dtype, device="meta").expand(shape)
    if layout == "sliced" and shape:
        base = torch.empty(*shape[:-1], shape[-1] + 3, dtype=dtype, device="meta")
        return base[..., 2: 2 + shape[-1]]          # a storage offset of 2 and a wider row stride
    return torch.empty(shape, dtype=dtype, device="meta")


@st.composite
def cases(draw):
    """(name, a function of fresh input tensors, a maker of those inputs)."""
    dtype = draw(st.sampled_from(DTYPES))
    layout = st.sampled_from(LAYOUTS)
    dims = st.integers(1, 5)
    shape = tuple(draw(st.lists(dims, min_size=2, max_size=4)))
    kind = draw(st.sampled_from(["unary", "binary", "scalar", "reduce", "mm", "bmm", "addmm", "cat", "stack",
                                 "softmax", "layer_norm"]))
    la, lb, lc = draw(layout), draw(layout), draw(layout)
    if kind == "unary":
        op = draw(st.sampled_from([torch.neg, torch.exp, torch.tanh, torch.sigmoid, torch.abs, F.silu, F.gelu]))
        return kind, op, lambda: (_tensor(shape, dtype, la),)
    if kind == "binary":
        # broadcasting: the second operand drops leading dimensions and has size 1 in some others
        other = list(shape[draw(st.integers(0, len(shape) - 1)):])
        other = [1 if draw(st.booleans()) else d for d in other]
        other_dtype = draw(st.sampled_from(DTYPES))
        op = draw(st.sampled_from([torch.add, torch.mul, torch.sub, torch.div, torch.maximum]))
        return kind, op, lambda: (_tensor(shape, dtype, la), _tensor(tuple(other), other_dtype, lb))
    if kind == "scalar":
        value = draw(st.one_of(st.integers(-3, 3), st.floats(-2, 2, allow_nan=False), st.booleans()))
        op = draw(st.sampled_from([torch.add, torch.mul, torch.pow, torch.rsub]))
        return kind, (lambda x: op(x, value)), lambda: (_tensor(shape, dtype, la),)
    if kind == "reduce":
        dim, keep = draw(st.integers(-len(shape), len(shape) - 1)), draw(st.booleans())
        op = draw(st.sampled_from(["sum", "mean", "amax", "var_mean", "max"]))
        fns = {"sum": lambda x: x.sum(dim, keepdim=keep), "mean": lambda x: x.mean(dim, keepdim=keep),
               "amax": lambda x: x.amax(dim, keepdim=keep), "var_mean": lambda x: torch.var_mean(x, dim),
               "max": lambda x: torch.max(x, dim, keepdim=keep)}
        return kind, fns[op], lambda: (_tensor(shape, dtype, la),)
    n, k, m, b = shape[0], shape[1], draw(dims), draw(dims)
    if kind == "mm":
        return kind, torch.mm, lambda: (_tensor((n, k), dtype, la), _tensor((k, m), dtype, lb))
    if kind == "bmm":
        return kind, torch.bmm, lambda: (_tensor((b, n, k), dtype, la), _tensor((b, k, m), dtype, lb))
    if kind == "addmm":
        bias = (m,) if draw(st.booleans()) else (n, m)
        return kind, torch.addmm, lambda: (_tensor(bias, dtype, lc), _tensor((n, k), dtype, la),
                                           _tensor((k, m), dtype, lb))
    if kind in ("cat", "stack"):
        dim = draw(st.integers(0, len(shape) - 1))
        count = draw(st.integers(1, 3))
        layouts = [draw(layout) for _ in range(count)]
        op = torch.cat if kind == "cat" else torch.stack
        return kind, (lambda *xs: op(xs, dim)), lambda: tuple(_tensor(shape, dtype, lay) for lay in layouts)
    if kind == "softmax":
        dim = draw(st.integers(0, len(shape) - 1))
        return kind, (lambda x: torch.softmax(x, dim)), lambda: (_tensor(shape, dtype, la),)
    affine = draw(st.booleans())
    return kind, (lambda x, w, b_: F.layer_norm(x, shape[-1:], w if affine else None, b_ if affine else None)), \
        lambda: (_tensor(shape, dtype, la), _tensor(shape[-1:], dtype, "contiguous"),
                 _tensor(shape[-1:], dtype, "contiguous"))


@settings(max_examples=300, deadline=None)
@given(case=cases())
def test_the_memos_outputs_are_the_meta_kernels(case):
    _, fn, make = case
    memo = MetaMemo()
    with Through(memo):
        fn(*make())                                  # the first call records
    with Through(memo) as hit:
        fn(*make())                                  # fresh inputs of the same metadata: rebuilt by the memo
    with Through(None) as kernel:
        fn(*make())
    assert memo.hits > 0, [f for f, _ in hit.outputs]
    assert _described(hit.outputs) == _described(kernel.outputs)


# ---- fresh storages; what is never memoised ----------------------------------------------------------------

def test_each_call_gets_fresh_storages():
    memo = MetaMemo()
    x, w = torch.empty(4, 8, device="meta"), torch.empty(8, device="meta")
    got = []
    with Through(memo):
        for _ in range(3):
            got.append(torch.tanh(x))
            got.extend(torch.ops.aten.native_layer_norm.default(x, [8], w, w, 1e-5))   # three outputs
    assert memo.hits == 2 * 2, memo.hits                # calls 2 and 3 of both ops came from the memo
    storages = [t.untyped_storage()._cdata for t in got]
    assert len({id(t) for t in got}) == len(got)
    assert len(set(storages)) == len(storages)          # no storage handed out twice, none an input's
    assert not {x.untyped_storage()._cdata, w.untyped_storage()._cdata} & set(storages)


@pytest.mark.parametrize("name, fn", [
    ("view", lambda x: x.view(8, 4)),
    ("transpose", lambda x: x.t()),
    ("slice", lambda x: x[1:]),
    ("split", lambda x: torch.split(x, 2)),
    ("unbind", lambda x: torch.unbind(x)),
    ("expand", lambda x: x[:1].expand(4, 8)),
    ("in-place add", lambda x: x.add_(1)),
    ("in-place copy", lambda x: x.copy_(x)),
    ("out=", lambda x: torch.add(x, 1, out=x)),
    ("_unsafe_view (an unannotated alias)", lambda x: torch.ops.aten._unsafe_view.default(x, [8, 4])),
])
def test_views_in_place_and_aliasing_ops_are_never_memoised(name, fn):
    memo = MetaMemo()
    x = torch.empty(4, 8, device="meta")
    with Through(memo) as mode:
        for _ in range(3):
            fn(x)
    assert memo.hits == 0
    # Recorded as "run the kernel" at most (the unannotated alias); never as outputs to rebuild.
    assert all(entry is None for entry in memo._entries.values())
    # ... and the kernel did run: every output shares the input's storage, as the kernel's do.
    flat = [t for _, out in mode.outputs for t in (out if isinstance(out, (tuple, list)) else (out,))]
    assert flat and all(t.untyped_storage()._cdata == x.untyped_storage()._cdata for t in flat)


def test_the_schema_filter():
    aten = torch.ops.aten
    assert all(purely_functional(op) for op in (aten.add.Tensor, aten.mm.default, aten.native_layer_norm.default,
                                                aten.cat.default, aten.var_mean.correction))
    assert not any(purely_functional(op) for op in (aten.add_.Tensor, aten.add.out, aten.view.default,
                                                    aten.split.Tensor, aten.unbind.int, aten.t.default,
                                                    aten._local_scalar_dense.default))


def test_fake_and_real_tensors_are_never_memoised():
    from torch._subclasses.fake_tensor import FakeTensorMode

    memo = MetaMemo()
    with FakeTensorMode() as fake:
        x = fake.from_tensor(torch.empty(4, 8))
        with Through(memo):
            torch.tanh(x) + 1
            torch.tanh(x) + 1
    with Through(memo):
        y = torch.ones(4, 8)
        torch.tanh(y) + 1
        torch.tanh(y) + 1
    assert memo.hits == 0 and not memo._entries


def test_an_argument_on_another_device_or_an_object_is_not_keyed():
    memo = MetaMemo()
    x = torch.empty(4, device="meta")
    with Through(memo):
        for _ in range(2):
            x + torch.tensor(2.0)                      # a CPU scalar tensor: its value could matter
    assert memo.hits == 0 and not [k for k in memo._entries if k[0] is torch.ops.aten.add.Tensor]


def test_arguments_sharing_a_storage_key_apart_from_distinct_ones():
    memo = MetaMemo()
    x, y = torch.empty(4, device="meta"), torch.empty(4, device="meta")
    with Through(memo):
        torch.add(x, x)                                 # one storage
        torch.add(x, y)                                 # the same metadata, two storages
    assert memo.hits == 0 and len(memo._entries) == 2


# ---- whole traces with the memo on and off ----------------------------------------------------------------

def _no_memo(owner):
    return None


def _canonical(trace):
    """A trace with the module ids left out of its segment labels: a model may build a module inside its forward
    (transformers' Mamba does its activation), whose id differs from trace to trace, memo or not."""
    labels = [label[0] if isinstance(label, tuple) else label for label, _ in trace.segments]
    return (trace.peak, trace.ops, labels, [p for _, p in trace.segments], trace.profiles, trace.profile_ops)


def _same_traces(trace_on, trace_off, cells):
    """Each cell traced with the memo (twice: recording, then rebuilding) equals its trace without."""
    for batch, seq in cells:
        off = _canonical(trace_off(batch, seq))
        first, again = _canonical(trace_on(batch, seq)), _canonical(trace_on(batch, seq))
        assert first == off, (batch, seq)
        assert again == off, (batch, seq)


CELLS = [(1, 8), (2, 8), (2, 16), (1, 24)]


@pytest.mark.parametrize("kind", ["mamba", "rwkv", "xlstm"])
@pytest.mark.parametrize("mode, optimizer", [("infer", "none"), ("train", "sgd")])
def test_estimator_traces_are_the_same_with_the_memo(tmp_path, monkeypatch, kind, mode, optimizer):
    # The sweep's own path: the estimator's meta route, its memo living with the estimator's meta copy.
    loaded = _hf(tmp_path, kind)
    with Estimator(loaded, torch.float32, train=mode == "train", optimizer=optimizer) as estimator:
        estimator.trace(1, 8)
        assert estimator.route == "meta", estimator.notes
        memo = meta_memo.memo_for(estimator._meta)

        def off(b, t):
            with monkeypatch.context() as m:
                m.setattr(meta_memo, "memo_for", _no_memo)
                return estimator.trace(b, t)

        _same_traces(estimator.trace, off, CELLS)
        assert memo.hits > memo.misses > 0, (memo.hits, memo.misses)   # the memo did stand in


def _user(make):
    return LoadedModel(module=make(), spec=None, description={"source": "test"}, sample_input=token_batch_input(None))


@pytest.mark.parametrize("model", [
    lambda tmp_path: _hf(tmp_path, "gpt2"),
    # nn.LSTM on meta runs its cell op by op, once per step: the memo's case.
    lambda tmp_path: _user(lambda: SimpleLSTMModel(97, 16, 24)),
    lambda tmp_path: _user(lambda: RNNModel("LSTM", 97, 16, 24, 2)),    # dropout: random ops on meta
], ids=["gpt2", "SimpleLSTMModel", "RNNModel"])
@pytest.mark.parametrize("mode, optimizer", [("infer", "none"), ("train", "sgd")])
def test_meta_traces_are_the_same_with_the_memo(tmp_path, model, mode, optimizer):
    # Models the estimator would trace on fake tensors (GPT-2 in infer mode: its meta trace differs from the fake
    # one with or without the memo; built-in recurrent modules), traced on a meta copy as the meta route does.
    loaded = model(tmp_path)
    module = untied_meta_copy(loaded.module)
    module.train(mode == "train")
    step = make_step(mode == "train", "usual", optimizer)(module)
    memo = MetaMemo()

    def trace(memo_):
        def run(b, t):
            try:
                return trace_increment(step, lambda: loaded.inputs(b, t, "meta"), contextlib.nullcontext(), module,
                                       memo=memo_)
            finally:
                module.zero_grad(set_to_none=True)
        return run

    _same_traces(trace(memo), trace(None), CELLS)
    assert memo.hits > memo.misses > 0, (memo.hits, memo.misses)
