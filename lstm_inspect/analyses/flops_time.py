"""How long one forward takes at best on given hardware: max(FLOPs / peak, bytes / bandwidth)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from lstm_inspect.hardware import DTYPE_BYTES, Accelerator

if TYPE_CHECKING:
    from torch import nn

    from lstm_inspect.thop_ops import Recorder

#: The training step is counted as this many forward passes (backward ≈ 2 × forward).
TRAINING_FACTOR = 3


@dataclass(frozen=True)
class TimeEstimate:
    """Lower bound for one forward: max(FLOPs / peak, bytes / bandwidth). An estimate."""

    hardware: str | None          # accelerator key, None for a bare --peak-tflops
    hardware_name: str | None
    dtype: str
    peak_tflops: float
    bandwidth_gbs: float | None
    source: str | None
    flops: int
    weight_bytes: int
    activation_bytes: int
    compute_s: float
    memory_s: float | None
    training_flops: int | None = None     # the counted training step (None: the 3× rule)

    @property
    def bytes_moved(self) -> int:
        return self.weight_bytes + self.activation_bytes

    @property
    def lower_bound_s(self) -> float:
        return max(self.compute_s, self.memory_s or 0.0)

    @property
    def bound(self) -> str:
        return "memory" if self.memory_s is not None and self.memory_s > self.compute_s else "compute"

    @property
    def training_compute_s(self) -> float:
        if self.training_flops is None:
            return TRAINING_FACTOR * self.compute_s
        return self.training_flops / (self.peak_tflops * 1e12)


def param_numels(module: "nn.Module") -> dict[str, list[tuple[str, int]]]:
    """Module name -> [(parameter name, numel)] of its own parameters.

    A tied tensor is listed under every module that holds it: the embedding's lookup and the
    projection's product each read it.
    """
    out: dict[str, list[tuple[str, int]]] = {}
    for mod_name, mod in module.named_modules(remove_duplicate=False):
        for p_name, p in mod.named_parameters(recurse=False, remove_duplicate=False):
            out.setdefault(mod_name, []).append((p_name, int(p.numel())))
    return out


_RE_READ = ("weight_hh", "weight_hr", "bias_hh")


def time_estimate(recorder: Recorder, stock: Mapping[str, Any], flops: int, params: dict[str, list[tuple[str, int]]],
                  accelerator: Accelerator | None, peak_tflops: float | None, dtype: str,
                  sequential: int | None, training_flops: int | None = None) -> TimeEstimate:
    """Bytes: weights read (recurrent W_hh/W_hr/b_hh re-read every time step, an embedding reads only the
    rows it looks up, the rest once) + activations (each module's outputs written once and read once)."""
    size = DTYPE_BYTES[dtype]
    weight_elems = 0
    activation_elems = 0
    for name, m in recorder.modules.items():
        numels = params.get(name, [])
        if m.type == "Embedding":
            weight_elems += min(sum(n for _, n in numels), m.output_elements)
        elif m.sequential_steps:
            steps = sequential if sequential is not None else m.sequential_steps
            weight_elems += sum(n * (steps if p.startswith(_RE_READ) else 1) for p, n in numels)
        else:
            weight_elems += sum(n for _, n in numels)
        activation_elems += 2 * m.output_elements
    for name in stock:
        weight_elems += sum(n for _, n in params.get(name, []))
    peak = peak_tflops if peak_tflops is not None else accelerator.peak(dtype)  # type: ignore[union-attr]
    bandwidth = accelerator.bandwidth_gbs if accelerator is not None else None
    weight_bytes, activation_bytes = weight_elems * size, activation_elems * size
    compute_s = flops / (peak * 1e12)
    memory_s = (weight_bytes + activation_bytes) / (bandwidth * 1e9) if bandwidth else None
    return TimeEstimate(
        hardware=accelerator.key if accelerator else None, hardware_name=accelerator.name if accelerator else None,
        dtype=dtype, peak_tflops=peak, bandwidth_gbs=bandwidth, source=accelerator.source if accelerator else None,
        flops=flops, weight_bytes=weight_bytes, activation_bytes=activation_bytes,
        compute_s=compute_s, memory_s=memory_s, training_flops=training_flops,
    )
