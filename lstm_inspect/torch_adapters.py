"""Every place lstm-inspect leans on torch internals, in one version-gated module.

The memory estimate reads oneDNN's LSTM kernel arguments by position and the CPU measurement reads the
profiler's event tree; the fake-tensor tracing checks whether a tensor is fake and patches the packing
kernels. None of that is public API, so it lives here, named, with the torch versions it was validated on;
``tests/test_torch_adapters.py`` fails loudly when a torch release moves any of it.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

#: torch releases (major.minor) on which the oneDNN terms of the memory estimate were fitted and checked.
VALIDATED_TORCH = ("2.13",)

# aten::mkldnn_rnn_layer(input, weight0, weight1, weight2, weight3, hx_, cx_, reverse, batch_sizes, mode,
#                        hidden_size, num_layers, has_biases, bidirectional, batch_first, train)
MKLDNN_HX = 5
MKLDNN_HIDDEN_SIZE = 10
MKLDNN_TRAIN = 15
MKLDNN_RNN_LAYER = "mkldnn_rnn_layer"


def torch_minor() -> str:
    """``'2.13'`` for torch 2.13.0+cpu."""
    import torch

    return ".".join(torch.__version__.split("+")[0].split(".")[:2])


def validated() -> bool:
    """Whether the running torch is one the memory estimate was validated on."""
    return torch_minor() in VALIDATED_TORCH


@functools.cache   # asked twice for every op a memory trace runs; ops are few and hashable
def mkldnn_layer(func: Any) -> str | None:
    """``'forward'``/``'backward'`` for oneDNN's LSTM layer op (what nn.LSTM runs on the CPU), else None."""
    name = getattr(func, "__name__", "")
    if name.startswith(MKLDNN_RNN_LAYER + "_backward"):
        return "backward"
    if name.startswith(MKLDNN_RNN_LAYER + "."):
        return "forward"
    return None


def mkldnn_training(args: tuple) -> bool | None:
    """The forward layer's ``train`` argument (None when the call has fewer arguments than this torch's)."""
    return bool(args[MKLDNN_TRAIN]) if len(args) > MKLDNN_TRAIN else None


def mkldnn_hidden_and_batch(args: tuple) -> tuple[int, int]:
    """(hidden_size, batch) of a forward layer call: the hidden size argument and the initial state's rows."""
    hx = args[MKLDNN_HX]
    return int(args[MKLDNN_HIDDEN_SIZE]), int(hx.shape[-2]) if hx.dim() >= 2 else 1


def profiler_allocations(prof: Any) -> list[tuple[int, int, int, str]]:
    """``(time_ns, alloc_size, total_allocated, device type)`` of every allocation event of a finished
    ``torch.profiler.profile(profile_memory=True)`` run, from its (private) event tree.

    Raises:
        AttributeError or ImportError: this torch's profiler does not expose the event tree.
    """
    from torch._C._profiler import _EventType

    roots = prof.profiler.kineto_results.experimental_event_tree()
    out: list[tuple[int, int, int, str]] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation:
            fields = node.extra_fields
            out.append((int(node.start_time_ns), int(fields.alloc_size), int(fields.total_allocated),
                        str(fields.device.type)))
        stack.extend(node.children)
    return out


def is_fake(tensor: Any) -> bool:
    """Whether ``tensor`` is a FakeTensor, without importing the fake-tensor module (about one more
    ``import torch``) just to ask: a fake tensor exists only once that module is loaded."""
    module = sys.modules.get("torch._subclasses.fake_tensor")
    return module is not None and bool(module.is_fake(tensor))


#: The packing kernels that a shape-only trace replaces for fake tensors (``torch._VF``).
PACKING_KERNELS = ("_pack_padded_sequence", "_pad_packed_sequence")
