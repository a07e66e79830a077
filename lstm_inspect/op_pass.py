"""The operator-level pass: every aten op a forward runs, counted by a formula per op and attributed to the
innermost module running it.

Module hooks (``thop_ops``) see modules only: attention products, functional ``F.linear``/``conv1d`` calls, a
forward assigned as a closure, an SSM's selective scan are invisible to them. A ``TorchDispatchMode`` sees
every op that reaches the dispatcher (after autograd and the composite decompositions), so this pass counts
what the hooks cannot. It runs *with* the hooks, never instead of them: an op that runs inside a module a
hook already counted (our exact recurrent/Linear/Embedding formulas, thop's stock hooks) is skipped, so no
work is counted twice.

Formulas:

* matrix products (``mm``, ``addmm``, ``bmm``, ``baddbmm``, convolution, the scaled-dot-product attention
  kernels): ``torch.utils.flop_counter``'s registry, which returns FLOPs = 2·MACs; MACs = half of it;
* element-wise ops (tagged ``pointwise``): 1 FLOP per output element; reductions and scans (``sum``,
  ``mean``, ``cumsum``...): 1 FLOP per input element; ``softmax``: 5 per element; ``layer_norm``: 8 per element;
* the backward's own kernels: ``_softmax_backward_data``/``_log_softmax_backward_data`` 4 per element (a product,
  a row sum, a subtraction, a product), ``native_layer_norm_backward`` 16 and ``_fused_rms_norm_backward`` 8
  (2 × their forward), ``embedding_dense_backward`` 1 per gradient element (the scatter-add into the table), the
  CPU flash-attention backward as ``torch.utils.flop_counter`` counts the other attention backwards (the scores
  recomputed, then dV, dP, dQ, dK: ``B·H·L·S·(3E + 2E_v)``); ``convolution_backward`` as many MACs as the
  forward per gradient it computes (dX, dW; flop_counter's formula charges a grouped convolution's dW as if it
  were dense, 1536 × too much on Mamba's depthwise conv), its bias gradient not included;
* data movement (views, copies, indexing, concatenation, allocation): 0 by convention;
* anything else ran *without a formula*: it is listed (op name, calls), never silently counted as 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

#: Element-wise ops with a cost other than 1 FLOP per output element (per element of the first input).
COMPOSITE_ELEMENTWISE = {"log_sigmoid_forward": 1, "_softmax": 5, "_log_softmax": 5, "softmax": 5, "log_softmax": 5,
                         "native_layer_norm": 8, "layer_norm": 8, "_fused_rms_norm": 4, "rms_norm": 4,
                         # the backward's kernels (see the module docstring)
                         "_softmax_backward_data": 4, "_log_softmax_backward_data": 4,
                         "native_layer_norm_backward": 16, "_fused_rms_norm_backward": 8,
                         "embedding_dense_backward": 1, "native_dropout_backward": 1,
                         # activations' derivatives: one op per gradient element, as a pointwise op's forward
                         **{f"{act}_backward": 1 for act in (
                             "softplus", "log_sigmoid", "gelu", "silu", "sigmoid", "tanh", "threshold", "elu",
                             "hardtanh", "leaky_relu", "mish", "hardswish", "hardsigmoid", "softshrink", "logit")}}
#: Reductions and scans: 1 FLOP per input element.
REDUCTIONS = {"sum", "mean", "amax", "amin", "max", "min", "prod", "cumsum", "cumprod", "logsumexp", "var",
              "var_mean", "std", "std_mean", "norm", "linalg_vector_norm", "argmax", "argmin", "any", "all"}
#: Ops that move, allocate or reinterpret data: 0 FLOPs by convention.
DATA_MOVEMENT = {
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "new_zeros", "new_ones", "new_full",
    "zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "arange", "scalar_tensor", "lift_fresh",
    "_to_copy", "clone", "copy_", "copy", "contiguous", "cat", "stack", "embedding", "index", "index_select",
    "gather", "scatter", "index_put", "index_put_", "index_copy", "repeat", "repeat_interleave", "roll", "flip",
    "constant_pad_nd", "pad", "tril", "triu", "fill_", "fill", "zero_", "detach", "alias", "masked_fill",
    "masked_fill_", "where", "split", "split_with_sizes", "unbind", "chunk", "slice_scatter", "select_scatter",
    "_local_scalar_dense", "device", "sym_size", "sym_stride", "sym_numel", "native_dropout", "dropout", "bernoulli",
    "bernoulli_", "eq", "ne", "lt", "le", "gt", "ge", "logical_not", "logical_and", "logical_or", "bitwise_not",
    "bitwise_and", "bitwise_or", "isin", "_unsafe_view", "set_", "resize_", "as_strided_", "_assert_async",
    "_assert_tensor_metadata", "item", "tensor_split", "nonzero", "unfold", "im2col", "col2im", "_pack_padded_sequence",
    "_pad_packed_sequence", "diagonal_scatter", "expand_copy", "_reshape_alias", "view_copy", "masked_scatter",
    "select_backward", "slice_backward", "index_select_backward", "unfold_backward", "expand_backward",
}


#: Fused attention kernels not in flop_counter's registry (the CPU one) or counted here for all of them alike.
ATTENTION_KERNELS = {"_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
                     "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
                     "_scaled_dot_product_fused_attention_overrideable"}


#: The CPU flash-attention backward (flop_counter's registry has the CUDA ones).
ATTENTION_BACKWARD_KERNELS = {"_scaled_dot_product_flash_attention_for_cpu_backward"}


def _attention_backward_macs(args: tuple) -> int:
    """``grad_out, q, k, v, ...``: the scores recomputed (``L·S·E``), then dP and dV (``2·L·S·E_v``), dQ and dK
    (``2·L·S·E``), per head: ``B·H·L·S·(3E + 2E_v)``, as flop_counter counts the CUDA kernels."""
    q, k, v = args[1:4]
    *lead, length, e = q.shape
    heads = math.prod(int(d) for d in lead)
    return heads * int(length) * int(k.shape[-2]) * (3 * int(e) + 2 * int(v.shape[-1]))


def _convolution_backward_macs(args: tuple) -> int:
    """``grad_output, input, weight, ..., transposed (7), ..., output_mask (10)``: the forward's MACs (every output
    element of the non-transposed convolution reads ``C_in/groups × kernel`` weights) per gradient computed."""
    grad_output, inp, weight = args[:3]
    transposed, mask = bool(args[7]), args[10]
    forward = (int(inp.numel()) if transposed else int(grad_output.numel())) * math.prod(int(d) for d in weight.shape[1:])
    return forward * (int(bool(mask[0])) + int(bool(mask[1])))


def _attention_macs(args: tuple) -> int:
    """Q·Kᵀ and A·V of a fused attention kernel: ``B·H·L·S·(E + E_v)`` (the full L × S rectangle, causal or not)."""
    q, k, v = args[:3]
    *lead, length, e = q.shape
    heads = math.prod(int(d) for d in lead)
    return heads * int(length) * int(k.shape[-2]) * (int(e) + int(v.shape[-1]))


@dataclass
class OpCount:
    """One owner module's counts from the operator pass."""

    name: str
    type: str
    macs: int = 0
    elementwise: int = 0
    ops: int = 0                       # ops counted here


@dataclass
class OperatorTally:
    """What the operator pass saw outside the hooked modules."""

    owners: dict[str, OpCount] = field(default_factory=dict)
    uncounted: dict[str, int] = field(default_factory=dict)     # op name -> calls without a formula
    by_op: dict[str, int] = field(default_factory=dict)         # op name -> MACs (matrix products)
    skipped: int = 0                                            # ops inside hooked modules (counted by the hook)
    calls: dict[str, int] = field(default_factory=dict)         # module name -> forward calls

    @property
    def macs(self) -> int:
        return sum(o.macs for o in self.owners.values())

    @property
    def elementwise(self) -> int:
        return sum(o.elementwise for o in self.owners.values())


def _numel(value: Any) -> int:
    import torch

    if isinstance(value, torch.Tensor):
        return int(value.numel())
    if isinstance(value, (tuple, list)):
        return sum(_numel(v) for v in value)
    return 0


def _first_tensor(args: tuple) -> Any:
    import torch

    for a in args:
        if isinstance(a, torch.Tensor):
            return a
        if isinstance(a, (tuple, list)):
            for b in a:
                if isinstance(b, torch.Tensor):
                    return b
    return None


def classify(func: Any, args: tuple, kwargs: dict, out: Any) -> tuple[str, int]:
    """``("macs", n)``, ``("elementwise", n)``, ``("free", 0)`` or ``("none", 0)`` for one op call."""
    import torch
    from torch.utils.flop_counter import flop_registry

    packet = func._overloadpacket
    if packet.__name__ in ATTENTION_KERNELS:
        return "macs", _attention_macs(args)
    if packet.__name__ == "convolution_backward":
        return "macs", _convolution_backward_macs(args)
    if packet.__name__ in ATTENTION_BACKWARD_KERNELS:
        return "macs", _attention_backward_macs(args)
    if packet in flop_registry:
        return "macs", int(flop_registry[packet](*args, **kwargs, out_val=out)) // 2
    name = packet.__name__.rstrip("_") if packet.__name__ not in DATA_MOVEMENT else packet.__name__
    if packet.__name__ in DATA_MOVEMENT or name in DATA_MOVEMENT or func.is_view:
        return "free", 0
    if name in COMPOSITE_ELEMENTWISE:
        first = _first_tensor(args)
        return "elementwise", COMPOSITE_ELEMENTWISE[name] * (int(first.numel()) if first is not None else 0)
    if name in REDUCTIONS:
        first = _first_tensor(args)
        return "elementwise", int(first.numel()) if first is not None else 0
    if torch.Tag.pointwise in func.tags:
        return "elementwise", _numel(out)
    return "none", 0


def operator_pass(module: "nn.Module", hooked: set[str]) -> Any:
    """A context manager ``(tally)``: counts every op run inside it, skipping those inside ``hooked`` modules.

    Args:
        module: the root being run (its qualified names are the attribution keys; "" is the root itself).
        hooked: qualified names of the modules a hook counts (their ops are not counted again).
    """
    import contextlib

    from torch.utils._python_dispatch import TorchDispatchMode

    tally = OperatorTally()
    by_object = {id(m): (name, type(m).__name__) for name, m in module.named_modules()}
    stack: list[tuple[str, str]] = []      # (qualified name, type) of the running modules, innermost last
    hooked_depth = [0]

    def pre(mod: "nn.Module", _inputs: Any) -> None:
        # a module that is not registered under the root (made on the fly in a forward) runs as part of the
        # innermost registered one
        entry = by_object.get(id(mod)) or (stack[-1] if stack else ("", type(module).__name__))
        stack.append(entry)
        tally.calls[entry[0]] = tally.calls.get(entry[0], 0) + 1
        if entry[0] in hooked:
            hooked_depth[0] += 1

    def post(mod: "nn.Module", _inputs: Any, _output: Any) -> None:
        if stack:
            entry = stack.pop()
            if entry[0] in hooked:
                hooked_depth[0] -= 1

    class Counting(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if not _traced(out):      # thop's own bookkeeping on real tensors (its total_ops buffers)
                return out
            if hooked_depth[0]:
                tally.skipped += 1
                return out
            kind, amount = classify(func, args, kwargs, out)
            if kind == "free":
                return out
            name = func._overloadpacket.__name__
            if kind == "none":
                tally.uncounted[name] = tally.uncounted.get(name, 0) + 1
                return out
            owner_name, owner_type = stack[-1] if stack else ("", type(module).__name__)
            owner = tally.owners.get(owner_name)
            if owner is None:
                owner = tally.owners[owner_name] = OpCount(owner_name, owner_type)
            owner.ops += 1
            if kind == "macs":
                owner.macs += amount
                tally.by_op[name] = tally.by_op.get(name, 0) + amount
            else:
                owner.elementwise += amount
            return out

    @contextlib.contextmanager
    def run():
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

        # Global module hooks, as torch.utils.module_tracker.ModuleTracker installs them; its ``parents`` is an
        # unordered set of class-prefixed names, while attribution needs the innermost module under its
        # qualified name, so the stack is kept here.
        handles = [register_module_forward_pre_hook(pre), register_module_forward_hook(post, always_call=True)]
        try:
            with Counting():
                yield tally
        finally:
            for handle in handles:
                handle.remove()

    return run()


def _traced(value: Any) -> bool:
    """Whether an op's output is part of the traced forward (fake or meta), not a real bookkeeping tensor."""
    import sys

    import torch

    if isinstance(value, (tuple, list)):
        value = _first_tensor(tuple(value))
    if not isinstance(value, torch.Tensor) or value.device.type == "meta":
        return True
    # looked up, not imported: the built-in family is traced on meta and never loads FakeTensor (torch._dynamo)
    fake = sys.modules.get("torch._subclasses.fake_tensor")
    return fake is not None and isinstance(value, fake.FakeTensor)
