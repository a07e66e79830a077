"""The step whose memory is measured or estimated, and the sizes resident around it.

* ``infer``: one forward under ``torch.no_grad()``.
* ``train`` with the ``usual`` loop (the default): the training step as users write it,
  ``logits = model(x); loss = F.cross_entropy(logits.view(-1, V), y.view(-1)); loss.backward()``, then
  ``optimizer.step()`` with ``--optimizer``: the logits stay referenced through backward and the
  optimizer step, every parameter's gradient is live at the end, and the optimizer really runs
  (torch.optim on the real or fake module: its state is created by a first, unmeasured step and is
  resident afterwards; the step's own temporaries are in the increment).
* ``train`` with the ``lean`` loop: the loss is taken inside a helper, so the logits are freed before
  backward (``loss = loss_of(model(x)); loss.backward()``): one logits-sized buffer less at the peak.
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


def weights_bytes(module: "nn.Module", dtype: "torch.dtype | None" = None) -> int:
    """Bytes of the unique parameters and buffers (tied tensors once), at their current dtype or, given ``dtype``,
    once the module is moved to it (no copy made)."""
    seen: set[int] = set()
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) in seen:
            continue
        seen.add(id(t))
        total += t.numel() * _element_size(t, dtype)
    return total


def optimizer_state_bytes(module: "nn.Module", optimizer: str, mode: str, dtype: "torch.dtype | None" = None) -> int:
    """Steady-state optimizer memory: Adam keeps exp_avg and exp_avg_sq (each like the parameter) and
    a float32 step counter per parameter tensor; SGD without momentum keeps nothing. ``dtype`` as in
    :func:`weights_bytes`."""
    if mode != "train" or optimizer in ("none", "sgd"):
        return 0
    seen: set[int] = set()
    total = 0
    for p in module.parameters():
        if id(p) in seen or not p.requires_grad:
            continue
        seen.add(id(p))
        total += 2 * p.numel() * _element_size(p, dtype) + 4
    return total


def _element_size(t: "torch.Tensor", dtype: "torch.dtype | None") -> int:
    """``t``'s element size once its module is moved to ``dtype``: ``Module.to(dtype)`` converts the floating-point
    and complex tensors only."""
    if dtype is None or not (t.is_floating_point() or t.is_complex()):
        return t.element_size()
    return dtype.itemsize


#: The training loops ``memory --mode train`` can model (``--train-loop``).
TRAIN_LOOPS = ("usual", "lean")


def make_step(train: bool, loop: str = "usual",
              optimizer: str = "none") -> Callable[["nn.Module"], Callable[[tuple], Any]]:
    """The work measured per cell, for a module: a no-grad forward, or a training step.

    Args:
        train: a training step (else a forward under ``no_grad``).
        loop: ``usual`` (logits referenced through backward and the optimizer step) or ``lean``
            (logits freed before backward).
        optimizer: ``none``, ``sgd`` or ``adam``: a real ``torch.optim`` optimizer over the module's
            trainable parameters, stepped after backward. Call the bound step once unmeasured first
            so that Adam's state exists (steady training) before a measured step.
    """

    def bind(module: "nn.Module") -> Callable[[tuple], Any]:
        import torch

        def infer(args: tuple) -> None:
            with torch.no_grad():
                out = module(*args)
            del out

        opt = make_optimizer(module, optimizer) if train else None

        def usual_step(args: tuple) -> None:
            output = module(*args)
            loss = lm_loss(output)          # ``output`` (the logits) stays referenced until the step returns
            loss.backward()
            if opt is not None:
                opt.step()
            del loss, output
            # Gradients stay allocated until the next step's zero_grad: they are part of the peak.

        def lean_step(args: tuple) -> None:
            loss = lm_loss(module(*args))   # the logits die inside lm_loss: freed before backward
            loss.backward()
            if opt is not None:
                opt.step()
            del loss

        if not train:
            return infer
        return usual_step if check_loop(loop) == "usual" else lean_step

    return bind


def check_loop(loop: str) -> str:
    if loop not in TRAIN_LOOPS:
        from lstm_inspect.errors import InvalidInput

        raise InvalidInput(f"train loop must be one of {', '.join(TRAIN_LOOPS)}, got {loop!r}", fields=("train_loop",))
    return loop


def make_optimizer(module: "nn.Module", optimizer: str) -> Any:
    """A torch.optim optimizer over ``module``'s trainable parameters (None for ``none``).

    The single-tensor (for-loop) implementations: what torch picks on the CPU, and the one whose
    temporaries are per parameter (``foreach`` would hold a list of them at once on CUDA).
    """
    import torch

    params = [p for p in module.parameters() if p.requires_grad]
    if optimizer == "none" or not params:
        return None
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=1e-3, foreach=False)
    return torch.optim.Adam(params, lr=1e-3, foreach=False)


def optimizer_state_of(opt: Any) -> int:
    """Bytes of the tensors an optimizer keeps in its state (after its first step)."""
    import torch

    if opt is None:
        return 0
    seen: set[int] = set()
    total = 0
    for state in opt.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor) and id(value) not in seen:
                seen.add(id(value))
                total += value.numel() * value.element_size()
    return total


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
