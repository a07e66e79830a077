"""Turning a spec or module into something to analyse: on a real device, on ``meta``, or as fakes.

Three ways to hold a model, cheapest first:

* **meta** (:func:`build_meta`): shapes only, no storage, no forward pass needed. Weight
  initialisation is skipped, because random init on meta imports ``torch._dynamo`` (about one
  more ``import torch``) for numbers nobody will read.
* **fake** (:func:`to_fake`, :func:`fake_mode`): a forward pass with shapes propagated and no
  memory used. The fakes live on a fake *cpu* device: on ``meta`` nn.LSTM unrolls one small op per
  time step (seconds to minutes), under FakeTensorMode on cpu it is one op whatever the length.
* **real** (:func:`build_real`): for measuring memory.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING, Iterator

from lstm_inspect.errors import AnalysisFailed, InvalidInput, LstmInspectWarning, first_line
from lstm_inspect.spec import ModelSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Tensor methods that only write initial values (what ``torch.nn.init`` calls underneath).
_INIT_METHODS = frozenset({
    "uniform_", "normal_", "fill_", "zero_", "erfinv_", "exponential_", "log_normal_", "cauchy_", "random_",
    "bernoulli_", "geometric_",
})


@contextlib.contextmanager
def skip_weight_init() -> Iterator[None]:
    """Skip weight initialisation while modules are constructed (the values are never read).

    A ``TorchFunctionMode`` turns ``torch.nn.init`` functions and the in-place methods they call into
    no-ops for this thread while the block runs; nothing global is patched. Random init on meta would
    otherwise import ``torch._dynamo`` (about one more ``import torch``) for numbers nobody reads.
    """
    with _SkipInit():
        yield


def _skip_init_mode() -> type:
    from torch.overrides import TorchFunctionMode

    class SkipInit(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            import torch

            kwargs = kwargs or {}
            name = getattr(func, "__name__", "")
            if name in _INIT_METHODS or getattr(func, "__module__", "") == "torch.nn.init":
                target = args[0] if args else kwargs.get("tensor")
                if isinstance(target, torch.Tensor):
                    return target
            return func(*args, **kwargs)

    return SkipInit


class _SkipInit:
    """The mode, created on first use (``torch.overrides`` is imported only when a model is built)."""

    _mode_class: type | None = None

    def __enter__(self) -> None:
        if _SkipInit._mode_class is None:
            _SkipInit._mode_class = _skip_init_mode()
        self._mode = _SkipInit._mode_class()
        self._mode.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(*exc)


def build_meta(spec: ModelSpec) -> "nn.Module":
    """The built-in model with every tensor on ``meta``: exact shapes, no memory."""
    import torch

    from lstm_inspect.model import RecurrentLanguageModel

    with skip_weight_init(), torch.device("meta"):
        return RecurrentLanguageModel(spec)


def build_real(spec: ModelSpec, device: "torch.device", dtype: "torch.dtype | None" = None) -> "nn.Module":
    """The built-in model with allocated, initialised weights on ``device``."""
    import torch

    from lstm_inspect.model import RecurrentLanguageModel

    try:
        with torch.device(device):
            model = RecurrentLanguageModel(spec)
        return model.to(dtype=dtype) if dtype is not None else model
    except torch.OutOfMemoryError as exc:
        raise AnalysisFailed(f"the model's weights do not fit on {device}: {first_line(exc)}") from None
    except RuntimeError as exc:
        raise AnalysisFailed(f"could not build the model on {device}: {first_line(exc)}") from None


def materialize(module: "nn.Module", device: "torch.device", dtype: "torch.dtype") -> "nn.Module":
    """A copy of ``module`` with real weights on ``device`` at ``dtype`` (the caller's module is left as it is).

    Meta tensors get storage and small random values (uninitialised memory could hold denormals, which slow
    CPU kernels down many times).
    """
    import copy

    import torch

    from lstm_inspect.tracing import meta_copy

    try:
        if any(t.is_meta for t in list(module.parameters()) + list(module.buffers())):
            real = meta_copy(module, dtype).to_empty(device=device)
            with torch.no_grad():
                for t in list(real.parameters()) + list(real.buffers()):
                    if t.is_floating_point():
                        t.uniform_(-0.05, 0.05)
                    else:
                        t.zero_()
            return real
        return copy.deepcopy(module).to(device=device, dtype=dtype)
    except torch.OutOfMemoryError as exc:
        raise AnalysisFailed(f"the model's weights do not fit on {device}: {first_line(exc)}") from None
    except RuntimeError as exc:
        raise AnalysisFailed(f"could not put the model's weights on {device}: {first_line(exc)}") from None


@contextlib.contextmanager
def fake_mode() -> Iterator[object]:
    """A FakeTensorMode that accepts real tensors (e.g. PackedSequence.batch_sizes) as inputs."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        yield mode


@contextlib.contextmanager
def quiet_fake_tensor_log() -> Iterator[None]:
    """While the block runs, a fake op that fails (a shape too large for 64 bits, a user's model that breaks)
    is not logged by torch with a full traceback on stderr before it is raised: we report it in one line."""
    import logging

    logger = logging.getLogger("torch._subclasses.fake_tensor")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def is_size_overflow(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) is torch refusing a shape too large for 64 bits.

    torch says "Storage size calculation overflowed" (a tensor's bytes) or "Overflow when unpacking
    long long" (a dimension): the input was too large, not the model broken.
    """
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if "overflow" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def too_large(where: str, exc: BaseException, fields: tuple[str, ...] = ()) -> InvalidInput:
    """The one-line refusal of a sample input too large to trace (``where`` names the options)."""
    inner = exc.__cause__ or exc.__context__
    while inner is not None and is_size_overflow(inner):
        exc = inner   # torch's own words, not a wrapper's
        inner = exc.__cause__ or exc.__context__
    detail = first_line(exc)
    return InvalidInput(f"{where}: too large to trace: a tensor of the forward pass would not fit in 64-bit sizes "
                        f"({detail}); give smaller values", fields=fields)


def to_fake(module: "nn.Module", mode: object, device: str = "cpu") -> "nn.Module":
    """Replace every parameter and buffer of ``module`` (meta or real) by a fake on ``device``.

    Must be called with ``mode`` active. Tied parameters stay tied: ``_apply`` converts each
    tensor once per module attribute, so shared Parameters are mapped through a memo.
    """
    import torch

    memo: dict[int, torch.Tensor] = {}

    def convert(t: torch.Tensor) -> torch.Tensor:
        key = id(t)
        if key not in memo:
            memo[key] = torch.empty_strided(tuple(t.shape), tuple(t.stride()), dtype=t.dtype, device=device)
        return memo[key]

    module._apply(convert)
    return module


def resolve_device(name: str, measuring: bool = True) -> "torch.device":
    """``auto|cpu|cuda|cuda:N`` -> a usable device; CUDA asked for but absent warns and gives the CPU.

    With ``measuring=False`` (an estimate only: nothing runs there) ``cuda`` is kept without a GPU: the
    estimate then models CUDA's kernels."""
    import torch

    text = ("auto" if name is None else name).strip().lower()
    if not text:
        raise InvalidInput("device needs a value: auto, cpu, cuda or cuda:N", fields=("device",))
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        index_text = text[5:] if text.startswith("cuda:") else "0"
        if not index_text.isdigit():
            raise InvalidInput(f"device must be auto, cpu, cuda or cuda:N, got {name!r}", fields=("device",))
        index = int(index_text)
        if not measuring and not torch.cuda.is_available():
            return torch.device("cuda", index)
        if not torch.cuda.is_available():
            warnings.warn(f"--device {name}: CUDA is not available here; using the CPU", LstmInspectWarning, stacklevel=2)
            return torch.device("cpu")
        count = torch.cuda.device_count()
        if index >= count:
            raise InvalidInput(f"device {name}: there {'is' if count == 1 else 'are'} only {count} CUDA device(s) "
                               f"(cuda:0..cuda:{count - 1})", fields=("device",))
        return torch.device("cuda", index)
    raise InvalidInput(f"device must be auto, cpu, cuda or cuda:N, got {name!r}", fields=("device",))
