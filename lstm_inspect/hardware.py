"""Named accelerators for time estimates: peak dense throughput per dtype and memory bandwidth.

Figures are the vendors' published peaks for *dense* math (sparsity figures halved where a
datasheet quotes them with sparsity). A real run reaches a fraction of them: the times computed
from them are lower bounds, i.e. estimates. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

from lstm_inspect.errors import InvalidInput

#: Bytes per element of each dtype the estimate knows.
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class Accelerator:
    """One accelerator's peaks. ``peak_tflops[dtype]`` is None where the dtype has no fast path."""

    key: str
    name: str
    peak_tflops: dict[str, float | None]
    bandwidth_gbs: float | None     # memory bandwidth, 10^9 bytes/s
    source: str

    def peak(self, dtype: str) -> float:
        value = self.peak_tflops.get(dtype)
        if value is None:
            have = ", ".join(d for d, v in self.peak_tflops.items() if v is not None)
            raise InvalidInput(f"hardware {self.key}: no published {dtype} peak for {self.name}; use dtype {have} "
                               f"or give peak_tflops", fields=("hardware", "dtype", "peak_tflops"))
        return value


ACCELERATORS: tuple[Accelerator, ...] = (
    Accelerator(
        "h100-sxm", "NVIDIA H100 SXM5 80GB",
        {"float32": 67.0, "float16": 989.5, "bfloat16": 989.5}, 3350.0,
        "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM): FP32 67 TFLOPS; FP16/BF16 Tensor Core "
        "1,979 TFLOPS with sparsity, 989.5 dense; GPU memory bandwidth 3.35 TB/s",
    ),
    Accelerator(
        "a100-80gb", "NVIDIA A100 80GB SXM",
        {"float32": 19.5, "float16": 312.0, "bfloat16": 312.0}, 2039.0,
        "NVIDIA A100 Tensor Core GPU datasheet (A100 80GB SXM): FP32 19.5 TFLOPS; FP16/BF16 Tensor Core "
        "312 TFLOPS dense (624 with sparsity); GPU memory bandwidth 2,039 GB/s",
    ),
    Accelerator(
        "rtx-4090", "NVIDIA GeForce RTX 4090",
        {"float32": 82.6, "float16": 165.2, "bfloat16": 165.2}, 1008.0,
        "NVIDIA Ada Lovelace GPU Architecture whitepaper, appendix (GeForce RTX 4090): FP32 82.6 TFLOPS; "
        "FP16/BF16 Tensor TFLOPS with FP32 accumulate 165.2 dense; memory bandwidth 1,008 GB/s",
    ),
    Accelerator(
        "t4", "NVIDIA T4",
        {"float32": 8.1, "float16": 65.0, "bfloat16": None}, 320.0,
        "NVIDIA T4 Tensor Core GPU datasheet: single precision 8.1 TFLOPS; mixed precision (FP16/FP32) "
        "65 TFLOPS; no bfloat16 Tensor Cores (Turing); GPU memory bandwidth 320 GB/s",
    ),
    Accelerator(
        "epyc-9654", "AMD EPYC 9654 (96 cores, one socket)",
        {"float32": 7.3728, "float16": None, "bfloat16": 14.7456}, 460.8,
        "AMD EPYC 9654 product page (96 cores, 2.4 GHz base, 12 channels DDR5-4800); peaks derived: "
        "96 cores x 2.4 GHz x 32 FP32 FLOPs/cycle (two 256-bit FMA pipes, Zen 4), x2 for AVX512_BF16 "
        "dot products; bandwidth 12 x 4800 MT/s x 8 bytes = 460.8 GB/s",
    ),
)


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def find_accelerator(name: str) -> Accelerator:
    """The accelerator called ``name`` (case, spaces, dashes ignored), else InvalidInput naming the known ones."""
    wanted = _norm(name)
    for acc in ACCELERATORS:
        if wanted and wanted in (_norm(acc.key), _norm(acc.name)):
            return acc
    known = ", ".join(acc.key for acc in ACCELERATORS)
    raise InvalidInput(f"hardware: unknown accelerator {name!r}; known: {known} (or give peak_tflops)",
                       fields=("hardware", "peak_tflops"))


def check_dtype(dtype: str) -> str:
    text = dtype.strip().lower()
    if text not in DTYPE_BYTES:
        raise InvalidInput(f"dtype must be one of {', '.join(DTYPE_BYTES)}, got {dtype!r}", fields=("dtype",))
    return text
