"""The step whose memory is measured or estimated, and the sizes resident around it.

* ``infer``: one forward under ``torch.no_grad()``.
* ``train``: forward, a language-model loss (cross-entropy of the output's last dimension against token
  targets), backward: activations kept for backward and every parameter's gradient. The optimizer's
  state is counted from the parameter sizes (:func:`optimizer_state_bytes`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from lstm_inspect.errors import AnalysisFailed

if TYPE_CHECKING:
    import torch
    from torch import nn


def torch_dtype(name: str) -> "torch.dtype":
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def weights_bytes(module: "nn.Module") -> int:
    """Bytes of the unique parameters and buffers (tied tensors once), at their current dtype."""
    seen: set[int] = set()
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) in seen:
            continue
        seen.add(id(t))
        total += t.numel() * t.element_size()
    return total


def optimizer_state_bytes(module: "nn.Module", optimizer: str, mode: str) -> int:
    """Steady-state optimizer memory: Adam keeps exp_avg and exp_avg_sq (each like the parameter) and
    a float32 step counter per parameter tensor; SGD without momentum keeps nothing."""
    if mode != "train" or optimizer in ("none", "sgd"):
        return 0
    seen: set[int] = set()
    total = 0
    for p in module.parameters():
        if id(p) in seen or not p.requires_grad:
            continue
        seen.add(id(p))
        total += 2 * p.numel() * p.element_size() + 4
    return total


def make_step(train: bool) -> Callable[["nn.Module"], Callable[[tuple], Any]]:
    """The work measured per cell, for a module: a no-grad forward, or forward + loss + backward."""

    def bind(module: "nn.Module") -> Callable[[tuple], Any]:
        import torch

        def infer(args: tuple) -> None:
            with torch.no_grad():
                out = module(*args)
            del out

        def train_step(args: tuple) -> None:
            loss = lm_loss(module(*args))
            loss.backward()
            del loss
            # Gradients stay allocated until the next step's zero_grad: they are part of the peak.

        return train_step if train else infer

    return bind


def lm_loss(output: Any) -> "torch.Tensor":
    """A language-model loss on a forward's output: cross-entropy over the last dimension of its first
    floating tensor (targets: token 0), or the sum of that tensor when it has one dimension."""
    import torch
    import torch.nn.functional as F

    tensor = _first_float_tensor(output)
    if tensor is None:
        raise AnalysisFailed("train mode needs a floating-point output to take a loss of; the forward returned none")
    if tensor.dim() < 2:
        return tensor.sum()
    logits = tensor.reshape(-1, tensor.shape[-1])
    targets = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, targets)


def _first_float_tensor(value: Any) -> "torch.Tensor | None":
    import torch
    from torch.nn.utils.rnn import PackedSequence

    if isinstance(value, PackedSequence):
        value = value.data
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else None
    if hasattr(value, "to_tuple"):  # transformers ModelOutput
        value = value.to_tuple()
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_float_tensor(item)
            if found is not None:
                return found
    return None
