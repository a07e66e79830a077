"""Scans run all steps at once while a count runs: Mamba's selective scan, xLSTM's mLSTM recurrence, RWKV's WKV.

transformers' reference paths loop over time steps, a handful of small ops per step; on fake tensors each op costs
tens of microseconds of dispatch, so a 32-layer model at T=32 spends seconds in the loops, forward and backward.
Every op of a step is element-wise or a batched product over the batch, so the same ops run *once* on tensors
with the time steps folded into the batch give the same counts (each op's count is linear in its batch): the
operator pass counts the forward as it counts the loop. The values are not the scan's (each step starts from an
uninitialised state), only the shapes and the counts are: these stand-ins are for counting, scoped to it.

The folded ops run without gradients; the outputs are joined to the scan's inputs, and the loop's backward is a
closed form (below, per scan), recorded when the backward reaches it and reported as "closed form". Each closed
form is checked in tests against the operator pass's count of the real loop's backward. Where a closed form does
not apply (some input frozen, an initial state that carries a gradient), the real loop runs.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ScanBackward:
    """The closed-form backward of one scan call."""

    module: str
    kind: str
    macs: int
    elementwise: int


class _Active:
    log: list[ScanBackward] | None = None
    names: dict[int, str] = {}
    stack: list[str] = []


def _current() -> str:
    return _Active.stack[-1] if _Active.stack else ""


def _join(kind: str, backward: tuple[int, int] | None, outputs: tuple, sources: tuple) -> tuple:
    """``outputs`` made to depend on ``sources``; the backward records ``backward`` (MACs, element-wise) for the
    running module, or refuses when it is None (no closed form)."""
    import torch

    if not torch.is_grad_enabled() or not any(s.requires_grad for s in sources):
        return outputs
    module = _current()

    class Join(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            return tuple(t.view_as(t) for t in tensors[:len(outputs)])

        @staticmethod
        def backward(ctx, *grads):
            if backward is None:
                raise RuntimeError(f"the cached forward updates its recurrent state in place; the {kind}'s backward is not "
                                   "counted there")
            if _Active.log is not None:
                _Active.log.append(ScanBackward(module, kind, *backward))
            return (*(None for _ in outputs), *(torch.empty_like(s) if s.requires_grad else None for s in sources))

    return Join.apply(*outputs, *sources)


def _grads(tensors: tuple) -> tuple[bool, bool]:
    """(any input needs a gradient in this forward, all do)."""
    import torch

    flags = [bool(t.requires_grad) for t in tensors] if torch.is_grad_enabled() else [False]
    return any(flags), all(flags)


def selective_states(discrete_A: Any, deltaB_u: Any, C: Any, dtype: Any) -> tuple | None:
    """Mamba's recurrence ``h_t = dA_t·h_{t-1} + dBu_t``, ``y_t = h_t·C_t`` for all t at once: ``(y [B, I, T], h_T)``;
    None where the closed form does not apply (the caller runs the loop).

    The loop's backward (dA, dBu: [B, I, T, N]; C: [B, T, N]; per step the gradients of y_t = h_t·C_t and of
    h_t = dA_t·h_{t-1} + dBu_t): MACs 2·T·BIN (dh_t and dC_t); element-wise (2T − 1)·BIN products (d(dA_t) and
    dh_{t-1}, none into the zero initial state), (T − 1)·BIN sums of h_t's two gradients, and the gradients of
    the slices dA[:, :, t], dBu[:, :, t], C[:, t] accumulated into full-size tensors: (T − 1) adds of each input."""
    import torch

    anyg, allg = _grads((discrete_A, deltaB_u, C))
    if anyg and not allg:
        return None
    b, i, t, n = discrete_A.shape
    with torch.no_grad():
        states = discrete_A * discrete_A.new_empty(discrete_A.shape) + deltaB_u
        out = torch.matmul(states.transpose(1, 2).to(dtype), C.unsqueeze(-1))[..., 0].transpose(1, 2)
        last = states[:, :, -1].to(dtype)
    bin_ = b * i * n
    backward = (2 * t * bin_, (2 * t - 1) * bin_ + (t - 1) * (bin_ + 2 * b * i * t * n + b * t * n))
    return _join("selective scan", backward, (out, last), (discrete_A, deltaB_u, C))


def mamba_scan(original: Any, hidden_states, dt, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
               return_last_state=False, use_mambapy=False, use_associative_scan=False, **kwargs):
    """transformers' ``mamba_selective_scan`` (reference path), its time loop by :func:`selective_states`."""
    import torch
    import torch.nn.functional as F

    from lstm_inspect.tracing import KERNEL_FALLBACKS

    if "selective_scan_fn" not in KERNEL_FALLBACKS:     # what transformers' wrapper would have said
        KERNEL_FALLBACKS.append("selective_scan_fn")
    mm = sys.modules["transformers.models.mamba.modeling_mamba"]
    if use_mambapy and mm.is_mambapy_available():
        return original(hidden_states, dt, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus,
                        return_last_state=return_last_state, use_mambapy=use_mambapy,
                        use_associative_scan=use_associative_scan, **kwargs)
    input_dtype = hidden_states.dtype
    # the same ops as transformers' function before and after its loop
    if delta_bias is not None:
        dt = dt + delta_bias.to(dt.dtype)[..., None]
    if delta_softplus:
        dt = F.softplus(dt)
    B, C = B.transpose(1, 2), C.transpose(1, 2)
    discrete_A = torch.exp(A[None, :, None, :] * dt[:, :, :, None])
    discrete_B = dt[:, :, :, None] * B[:, None, :, :].float()
    deltaB_u = discrete_B * hidden_states[:, :, :, None].float()
    folded = selective_states(discrete_A, deltaB_u, C, input_dtype)
    if folded is None:      # transformers' loop
        ssm_state = discrete_A.new_zeros(discrete_A.shape[:2] + discrete_A.shape[3:], dtype=input_dtype)
        outs = []
        for index in range(hidden_states.shape[2]):
            ssm_state = discrete_A[:, :, index] * ssm_state + deltaB_u[:, :, index]
            outs.append(torch.matmul(ssm_state.to(input_dtype), C[:, index, :].unsqueeze(-1))[:, :, 0])
        scan_output = torch.stack(outs, dim=-1)
    else:
        scan_output, ssm_state = folded
    if D is not None:
        scan_output = scan_output + hidden_states * D[None, :, None]
    if z is not None:
        scan_output = scan_output * F.silu(z)
    return (scan_output, ssm_state) if return_last_state else scan_output


def mlstm_sequence(original: Any, step: Any, query, key, value, igate, fgate, c_initial=None, n_initial=None,
                   m_initial=None, return_last_states=False, eps=1e-6, **kwargs):
    """transformers' ``mlstm_recurrent_sequence_native``: its step function run once on the T steps folded into
    the batch.

    The loop's backward (q, k: [B, H, T, K]; v: [B, H, T, V]; i, f: [B, H, T]; state C [K, V], n [K], m [1] per
    head): MACs 2 × the forward's (dX of each product's two factors); element-wise per step
    21·BH + 10·BHK + 6·BHV + 7·BHKV (each op's derivative, the states' gradients summed across uses), less
    2·(BH + BHK + BHKV) for the zero initial state (no gradient into it), plus the per-step slices' gradients
    accumulated into full-size tensors: (T − 1) adds of each of q, k, v, i, f."""
    import torch

    initial = tuple(s for s in (c_initial, n_initial, m_initial) if s is not None)
    anyg, allg = _grads((query, key, value, igate, fgate))
    if (anyg and not allg) or (anyg and any(s.requires_grad for s in initial)) or query.shape[2] < 1:
        return original(query, key, value, igate, fgate, c_initial=c_initial, n_initial=n_initial,
                        m_initial=m_initial, return_last_states=return_last_states, eps=eps, **kwargs)
    b, h, t, k = query.shape
    v = value.shape[-1]
    dtype = kwargs.get("dtype_state", torch.float32)

    def fold(x: Any) -> Any:
        return x.transpose(1, 2).reshape(b * t, h, *x.shape[3:])

    with torch.no_grad():
        states = [query.new_empty(shape, dtype=dtype) for shape in ((b * t, h, k, v), (b * t, h, k), (b * t, h, 1))]
        out, ends = step(query=fold(query), key=fold(key), value=fold(value), igate=fold(igate[..., None]),
                         fgate=fold(fgate[..., None]), cstate=states[0], nstate=states[1], mstate=states[2], eps=eps,
                         **kwargs)
        out = out.reshape(b, t, h, v).transpose(1, 2)
        last = tuple(s.reshape(b, t, *s.shape[1:])[:, -1] for s in ends)
    bh = b * h
    macs = 2 * t * (bh * k + 2 * bh * k * v)
    elementwise = (t * (t - 1) * bh * (2 + 2 * k + v) + t * (21 * bh + 10 * bh * k + 6 * bh * v + 7 * bh * k * v)
                   - 2 * (bh + bh * k + bh * k * v))
    joined = _join("mLSTM recurrence", (macs, elementwise), (out, *last), (query, key, value, igate, fgate))
    return (joined[0], tuple(joined[1:])) if return_last_states else joined[0]


def wkv(original: Any, time_decay, time_first, key, value, state=None, return_state=False):
    """transformers' ``rwkv_linear_attention_cpu`` run once on the T steps folded into the batch (the loop's
    initial max state, ``zeros − 1e38``, made once as the loop makes it). Only without gradients or on the cached
    forward (its state updated in place: no backward runs there); otherwise the loop runs."""
    import torch

    anyg, _ = _grads((time_decay, time_first, key, value))
    if anyg and state is None:
        return original(time_decay, time_first, key, value, state=state, return_state=return_state)
    b, t, a = key.shape
    with torch.no_grad():
        if state is None:
            torch.zeros_like(key[:, 0], dtype=torch.float32) - 1e38
        given = [key.new_empty((b * t, a), dtype=torch.float32) for _ in range(3)]
        out, ends = original(time_decay, time_first, key.reshape(b * t, 1, a), value.reshape(b * t, 1, a), state=given)
        out = out.reshape(b, t, a)
        last = [s.reshape(b, t, a)[:, -1] for s in ends]
    joined = _join("WKV recurrence", None, (out, *last), (time_decay, time_first, key, value))
    return joined[0], (list(joined[1:]) if return_state or state is not None else None)


def _reference_path(fn: Any) -> bool:
    """Whether transformers' kernel wrapper ``fn`` runs its PyTorch reference (no optional kernel installed)."""
    code = getattr(fn, "__code__", None)
    if code is None or "is_new_implementation" not in code.co_freevars or fn.__closure__ is None:
        return False
    return not fn.__closure__[code.co_freevars.index("is_new_implementation")].cell_contents


def _patches(module: "nn.Module") -> list[tuple[Any, str, Any]]:
    """(owner, attribute, stand-in) for every scan this model runs through a reference path."""
    out: list[tuple[Any, str, Any]] = []
    mm = sys.modules.get("transformers.models.mamba.modeling_mamba")
    if mm is not None and _reference_path(getattr(mm, "mamba_selective_scan", None)):
        out.append((mm, "mamba_selective_scan", functools.partial(mamba_scan, mm.mamba_selective_scan)))
    rw = sys.modules.get("transformers.models.rwkv.modeling_rwkv")
    if rw is not None and hasattr(rw, "rwkv_linear_attention_cpu"):
        out.append((rw, "rwkv_linear_attention_cpu", functools.partial(wkv, rw.rwkv_linear_attention_cpu)))
    for sub in module.modules():
        run = getattr(sub, "_inference_fn", None)
        native = getattr(getattr(sub, "sequence_kernel_fn", None), "__name__", "") == "mlstm_recurrent_sequence_native"
        if type(sub).__name__ == "xLSTMBackend" and isinstance(run, functools.partial) and native:
            kernels = run.keywords
            seq = functools.partial(mlstm_sequence, kernels["mlstm_sequence_kernel"], kernels["mlstm_step_kernel"],
                                    **{k: v for k, v in kernels["mlstm_sequence_kernel"].keywords.items()})
            out.append((sub, "_inference_fn", functools.partial(run.func, *run.args,
                                                                 **{**kernels, "mlstm_sequence_kernel": seq})))
    return out


@contextlib.contextmanager
def scan_stand_ins(module: "nn.Module") -> Iterator[list[ScanBackward]]:
    """Within: the scans of ``module`` (transformers' Mamba, xLSTM, RWKV on their reference paths) run folded;
    yields the list that receives each closed-form backward the backward pass reaches. Free for other models."""
    log: list[ScanBackward] = []
    patches = _patches(module)
    if not patches:
        yield log
        return
    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    names = {id(m): n for n, m in module.named_modules()}

    def pre(mod: Any, _inputs: Any) -> None:
        _Active.stack.append(names.get(id(mod), _current()))

    def post(_mod: Any, _inputs: Any, _output: Any) -> None:
        if _Active.stack:
            _Active.stack.pop()

    saved = [(owner, attr, vars(owner).get(attr, getattr(owner, attr))) for owner, attr, _ in patches]
    handles = [register_module_forward_pre_hook(pre), register_module_forward_hook(post, always_call=True)]
    previous, _Active.log = _Active.log, log
    for owner, attr, stand_in in patches:
        setattr(owner, attr, stand_in)
    try:
        yield log
    finally:
        for owner, attr, value in saved:
            setattr(owner, attr, value)
        for handle in handles:
            handle.remove()
        _Active.log, _Active.stack = previous, []
