"""The folded scans (``scan_stand_ins``, issue 10's speed targets): the same forward counts as transformers' loops,
and closed-form backwards equal to the operator pass's count of the loops' real backward, at small sizes."""

from __future__ import annotations

import functools

import pytest
import torch

from lstm_inspect.op_pass import operator_pass
from lstm_inspect.scan_stand_ins import _Active, mamba_scan, mlstm_sequence, wkv


class _Root(torch.nn.Module):
    pass


def _counts(fn, shapes, backward=True):
    """(forward MACs, forward element-wise, backward MACs, backward element-wise, closed-form parts) of ``fn`` on
    fake inputs of ``shapes``, under the operator pass."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    root, log = _Root(), []
    previous, _Active.log = _Active.log, log
    try:
        with FakeTensorMode():
            inputs = [torch.empty(s).requires_grad_(backward) for s in shapes]
            with operator_pass(root, set()) as forward:
                out = fn(*inputs)
            out = out[0] if isinstance(out, tuple) else out
            with operator_pass(root, set()) as back:
                if backward:
                    out.sum().backward()
    finally:
        _Active.log = previous
    closed = (sum(s.macs for s in log), sum(s.elementwise for s in log))
    return forward.macs, forward.elementwise, back.macs + closed[0], back.elementwise + closed[1], log


@pytest.mark.parametrize("b,i,n,t", [(1, 3, 2, 4), (2, 6, 4, 8), (2, 5, 3, 1)])
def test_selective_scan_folded_counts_as_the_loop(b, i, n, t):
    from transformers.models.mamba import modeling_mamba as mm

    loop = mm.mamba_selective_scan
    shapes = [(b, i, t), (b, i, t), (i, n), (b, n, t), (b, n, t), (i,), (b, i, t), (i,)]

    def call(scan, x, dt, A, B, C, D, z, bias):
        return scan(x, dt, A, B, C, D=D, z=z, delta_bias=bias, delta_softplus=True, return_last_state=True)

    real = _counts(functools.partial(call, loop), shapes)
    folded = _counts(functools.partial(call, functools.partial(mamba_scan, loop)), shapes)
    assert real[:4] == folded[:4] and not real[4]
    assert [s.kind for s in folded[4]] == ["selective scan"]
    # without gradients: the forward only, the same
    assert _counts(functools.partial(call, loop), shapes, False)[:2] == real[:2]


@pytest.mark.parametrize("b,h,k,v,t", [(1, 1, 2, 3, 4), (2, 2, 4, 8, 8), (1, 3, 2, 5, 1)])
def test_mlstm_folded_counts_as_the_loop(b, h, k, v, t):
    from transformers.models.xlstm import modeling_xlstm as mx

    loop, step = mx.mlstm_recurrent_sequence_native, mx.mlstm_recurrent_step_native
    shapes = [(b, h, t, k), (b, h, t, k), (b, h, t, v), (b, h, t), (b, h, t)]

    def call(seq, q, k_, v_, i, f):
        zeros = [q.new_zeros(s) for s in ((b, h, k, v), (b, h, k), (b, h, 1))]
        return seq(query=q, key=k_, value=v_, igate=i, fgate=f, c_initial=zeros[0], n_initial=zeros[1],
                   m_initial=zeros[2], return_last_states=True)

    real = _counts(functools.partial(call, loop), shapes)
    folded = _counts(functools.partial(call, functools.partial(mlstm_sequence, loop, step)), shapes)
    assert real[:4] == folded[:4] and [s.kind for s in folded[4]] == ["mLSTM recurrence"]


@pytest.mark.parametrize("b,a,t", [(1, 3, 4), (2, 5, 8)])
def test_wkv_folded_forward_counts_as_the_loop(b, a, t):
    from transformers.models.rwkv import modeling_rwkv as mr

    loop = mr.rwkv_linear_attention_cpu
    shapes = [(a,), (a,), (b, t, a), (b, t, a)]
    for given in (False, True):
        def call(fn, decay, first, key, value):
            state = [key.new_zeros(b, a) for _ in range(3)] if given else None
            return fn(decay, first, key, value, state=state, return_state=given)

        real = _counts(functools.partial(call, loop), shapes, backward=False)
        folded = _counts(functools.partial(call, functools.partial(wkv, loop)), shapes, backward=False)
        assert real[:2] == folded[:2] and real[0] == 0 and real[1] > 0


def test_frozen_input_runs_the_real_loop():
    # a closed form for some inputs frozen is not written: the loop runs (no closed-form part)
    from transformers.models.xlstm import modeling_xlstm as mx

    b, h, k, v, t = 1, 2, 2, 3, 4

    def call(q, k_, v_, i, f):
        return mlstm_sequence(mx.mlstm_recurrent_sequence_native, mx.mlstm_recurrent_step_native, q, k_,
                              v_.detach(), i, f)

    shapes = [(b, h, t, k), (b, h, t, k), (b, h, t, v), (b, h, t), (b, h, t)]
    assert _counts(call, shapes)[4] == []


@pytest.mark.parametrize("kind", ["mamba", "xlstm"])
def test_model_training_step_is_the_loops(tmp_path, kind, monkeypatch):
    # the whole model, stand-ins on and off (the stand-ins' patch list emptied): every count equal, and the
    # closed forms are reported per scan module
    from lstm_inspect import scan_stand_ins
    from lstm_inspect.analyses.flops import count_flops
    from tests.test_flops_recurrent_blocks import _config

    loaded = _config(tmp_path, kind)
    folded = count_flops(loaded, batch=2, seq=6)
    monkeypatch.setattr(scan_stand_ins, "_patches", lambda module: [])
    real = count_flops(loaded, batch=2, seq=6)
    assert (folded.macs, folded.flops, folded.training.macs, folded.training.flops) == (
        real.macs, real.flops, real.training.macs, real.training.flops)
    assert folded.modules == real.modules and folded.components == real.components
    closed = [p for p in folded.training.parts if p.method == "closed form"]
    # one part for the scans of both layers, the modules collapsed into one name
    where = {"mamba": "backbone.layers.0–1.mixer", "xlstm": "backbone.blocks.0–1.mlstm_layer.mlstm_backend"}[kind]
    assert [p.module for p in closed] == [where]
    assert real.training.method == "counted" and folded.training.method == "counted+closed form"
