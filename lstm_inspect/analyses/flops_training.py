"""A training step counted: the forward's count plus its backward's, each part of the backward labelled by how
it was obtained.

* **counted**: the backward run on the same fake/meta copy (``loss.backward()`` from the sum of the output's
  first floating tensor, so the loss itself costs nothing and dL/dlogits is ones) under the operator pass;
* **closed form**: a module whose forward was shape-only (nn.LSTM/GRU/RNN, and nn.Linear on the meta path)
  has no backward graph; its backward is its closed form (``thop_ops``: dX and dW of every product, the
  recurrent state chain, bias gradients). The built-in model runs no backward at all: every part of it has a
  closed form, and a dispatch mode would import torch._dynamo (about one more ``import torch``);
* **3× rule**: where the backward cannot run (it raises on fake tensors, or the output has no gradient), the
  step is 3 × the forward, and the report says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from lstm_inspect.errors import first_line

if TYPE_CHECKING:
    from torch import nn

    from lstm_inspect.op_pass import OperatorTally
    from lstm_inspect.scan_stand_ins import ScanBackward
    from lstm_inspect.thop_ops import Recorder

RULE_FACTOR = 3


@dataclass(frozen=True)
class TrainingPart:
    """One part of the backward and how it was obtained ("counted", "closed form" or "3× rule")."""

    part: str
    module: str
    method: str
    macs: int
    flops: int


@dataclass(frozen=True)
class TrainingCount:
    """A training step (forward + backward); ``method`` is "counted", "closed form", "counted+closed form" or
    "rule"."""

    forward_macs: int
    forward_flops: int
    backward_macs: int
    backward_flops: int
    method: str
    parts: tuple[TrainingPart, ...]
    backward_ops: tuple[tuple[str, int], ...] = ()      # (aten op, MACs) of the counted backward
    uncounted_ops: tuple[tuple[str, int], ...] = ()     # (aten op, calls) of the backward without a formula
    fallback: str | None = None                         # why (and for what) the 3× rule was used

    @property
    def macs(self) -> int:
        return self.forward_macs + self.backward_macs

    @property
    def flops(self) -> int:
        return self.forward_flops + self.backward_flops


def run_backward(module: "nn.Module", outputs: list, run: bool) -> tuple["OperatorTally | None", str | None]:
    """The backward of the captured forward output under the operator pass: ``(tally, None)``; ``(None, None)``
    when not ``run`` (every part has a closed form); ``(None, reason)`` when it cannot run."""
    if not run:
        return None, None
    from lstm_inspect.op_pass import operator_pass

    loss = _loss(outputs[0] if outputs else None)
    if loss is None:
        return None, "the model's output does not depend on a trainable parameter (no gradient to propagate)"
    try:
        with operator_pass(module, set()) as tally:
            loss.backward()
    except Exception as exc:  # a user's model may fail in any way
        return None, f"its backward does not run on fake tensors ({first_line(exc)})"
    return tally, None


def _loss(value: Any) -> Any:
    """The sum of the first floating tensor of a forward's output that has a gradient (logits, a hidden state)."""
    import torch

    if hasattr(value, "to_tuple"):  # transformers ModelOutput
        value = value.to_tuple()
    if isinstance(value, torch.Tensor):
        return value.sum() if value.is_floating_point() and value.requires_grad else None
    if isinstance(value, (tuple, list)):
        for v in value:
            loss = _loss(v)
            if loss is not None:
                return loss
    data = getattr(value, "data", None)  # a PackedSequence
    return _loss(data) if isinstance(data, torch.Tensor) else None


def training_count(module: "nn.Module", forward_macs: int, forward_flops: int, recorder: "Recorder",
                   backward: "OperatorTally | None", ran: bool, reason: str | None,
                   scans: "Sequence[ScanBackward]" = ()) -> TrainingCount:
    """Assemble the step from the counted backward (``backward``; None when it did not run), the closed
    forms the hooks recorded and those of the scans run folded (``scan_stand_ins``) that the backward reached."""
    if reason is not None:
        return TrainingCount(forward_macs, forward_flops, (RULE_FACTOR - 1) * forward_macs,
                             (RULE_FACTOR - 1) * forward_flops, "rule",
                             (TrainingPart("backward", "", "3× rule", (RULE_FACTOR - 1) * forward_macs,
                                           (RULE_FACTOR - 1) * forward_flops),),
                             fallback=f"the whole backward: {reason}")
    parts: list[TrainingPart] = []
    if backward is not None and (backward.macs or backward.elementwise):
        parts.append(TrainingPart("backward (operator pass)", "", "counted", backward.macs,
                                  2 * backward.macs + backward.elementwise))
    for m in recorder.modules.values():
        if (m.shape_only or not ran) and (m.backward_macs or m.backward_elementwise):
            parts.append(TrainingPart(f"backward of {m.type}", m.name, "closed form", m.backward_macs,
                                      2 * m.backward_macs + m.backward_elementwise))
    for kind in dict.fromkeys(scan.kind for scan in scans):    # one part per kind of scan, its modules collapsed
        same = [scan for scan in scans if scan.kind == kind]
        macs = sum(scan.macs for scan in same)
        parts.append(TrainingPart(f"backward of the {kind}", _collapsed([scan.module for scan in same]),
                                  "closed form", macs, 2 * macs + sum(scan.elementwise for scan in same)))
    if not ran:
        tied = tied_gradient_adds(module)
        if tied:
            parts.append(TrainingPart("tied weights' gradients summed", "", "closed form", 0, tied))
    methods = {p.method for p in parts}
    method = "counted+closed form" if len(methods) > 1 else (methods.pop() if methods else "counted")
    return TrainingCount(
        forward_macs, forward_flops, sum(p.macs for p in parts), sum(p.flops for p in parts), method, tuple(parts),
        backward_ops=tuple(sorted(backward.by_op.items())) if backward is not None else (),
        uncounted_ops=tuple(sorted(backward.uncounted.items())) if backward is not None else (),
    )


def tied_gradient_adds(module: "nn.Module") -> int:
    """A trainable tensor held by k modules (a tied embedding and projection) gets k gradients, summed:
    (k − 1) adds per element."""
    holders: dict[int, list[Any]] = {}
    for mod in module.modules():
        for p in mod.parameters(recurse=False):
            holders.setdefault(id(p), []).append(p)
    return sum((len(ps) - 1) * int(ps[0].numel()) for ps in holders.values() if ps[0].requires_grad)


def _collapsed(names: list[str]) -> str:
    """``blocks.0.mixer`` … ``blocks.31.mixer`` as ``blocks.0–31.mixer``; names that differ otherwise joined."""
    unique = list(dict.fromkeys(names))
    split = [n.split(".") for n in unique]
    if len(unique) > 1 and len({len(p) for p in split}) == 1:
        differ = [i for i in range(len(split[0])) if len({p[i] for p in split}) > 1]
        if len(differ) == 1 and all(p[differ[0]].isdigit() for p in split):
            at, numbers = differ[0], sorted(int(p[differ[0]]) for p in split)
            return ".".join(split[0][:at] + [f"{numbers[0]}–{numbers[-1]}"] + split[0][at + 1:])
    return ", ".join(unique)
