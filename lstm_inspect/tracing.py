"""Forward passes that allocate nothing: a fake copy of a model, run under FakeTensorMode."""

from __future__ import annotations

import contextlib
import copy
from typing import TYPE_CHECKING, Any, Callable, Iterator

from lstm_inspect.errors import AnalysisFailed, first_line
from lstm_inspect.shape_forwards import closed_form_leaves, embedding_shapes, linear_shapes, recurrent_shapes

if TYPE_CHECKING:
    import torch
    from torch import nn

    from lstm_inspect.source import LoadedModel


@contextlib.contextmanager
def fake_copy(loaded: "LoadedModel", *, shape_only_recurrent: bool = False) -> Iterator[tuple["nn.Module", Any]]:
    """Yield ``(module, mode)``: a copy of ``loaded.module`` whose tensors are fakes on cpu.

    The caller's module is left as it is. Enter ``mode`` around the forward pass.

    Args:
        shape_only_recurrent: give every recurrent module a forward that only makes outputs of the
            right shapes. For analyses that need shapes, not allocations (structure, FLOPs): GRU, RNN
            and projected LSTM run one op per time step even on fake tensors (seconds for T=2048),
            while the shapes are known in closed form. Forward hooks still fire with real shapes.
    """
    from lstm_inspect.building import fake_mode, quiet_fake_tensor_log, to_fake

    require_runnable(loaded)
    module = meta_copy(loaded.module)
    with quiet_fake_tensor_log():
        with fake_mode() as mode:
            to_fake(module, mode)
        if shape_only_recurrent:
            import types

            from torch import nn

            for sub in module.modules():
                if isinstance(sub, nn.RNNBase):
                    sub.forward = types.MethodType(recurrent_shapes, sub)
        with packing_by_shape():
            yield module, mode


@contextlib.contextmanager
def shape_copy(loaded: "LoadedModel", *, fake: bool = False) -> Iterator[tuple["nn.Module", Any, str]]:
    """Yield ``(module, mode, device)`` for an analysis that needs output shapes, not allocations.

    When every leaf module's output shape is known in closed form (Embedding, LSTM/GRU/RNN, Linear,
    Dropout, Identity: the built-in family), the copy stays on ``meta`` with shape-only forwards for
    the embedding, recurrent and linear modules: no kernel runs and FakeTensorMode (whose first use imports
    ``torch._dynamo``, about one more ``import torch``) is never needed. Any other model gets
    :func:`fake_copy` with shape-only recurrent modules. Create inputs on ``device`` inside ``mode``.
    """
    import types

    from torch import nn

    require_runnable(loaded)
    module = meta_copy(loaded.module)
    leaves = [m for m in module.modules() if not list(m.children())]
    if not fake and all(isinstance(m, closed_form_leaves()) for m in leaves):
        for sub in leaves:
            if isinstance(sub, nn.RNNBase):
                sub.forward = types.MethodType(recurrent_shapes, sub)
            elif isinstance(sub, nn.Linear):
                sub.forward = types.MethodType(linear_shapes, sub)  # type: ignore[method-assign]
            elif isinstance(sub, nn.Embedding):
                sub.forward = types.MethodType(embedding_shapes, sub)  # type: ignore[method-assign]
        yield module, contextlib.nullcontext(), "meta"
        return
    with fake_copy(loaded, shape_only_recurrent=True) as (fake_module, mode):
        yield fake_module, mode, "cpu"


def traced(loaded: "LoadedModel", work: Callable[..., Any], fallbacks: list[str] | None = None) -> Any:
    """``work(module, mode, device)`` on a :func:`shape_copy`.

    A user's forward may do what the meta fast path cannot (pack a batch, copy lengths to the CPU): when it
    fails there with a meta-device error, it is run again on fake tensors. Our own forwards never need that.
    transformers' notices that an optional kernel is missing are kept off stderr; ``fallbacks`` receives
    the kernels' names (the caller says in its own words what that changes).
    """
    with kernel_notices(fallbacks if fallbacks is not None else []):
        try:
            with shape_copy(loaded) as copy_:
                return work(*copy_)
        except AnalysisFailed as exc:
            if own_forward(loaded.module) or "meta" not in str(exc):
                raise
        with shape_copy(loaded, fake=True) as copy_:
            return work(*copy_)


#: Optional kernels transformers said it falls back from, in this process (it says so once per process).
KERNEL_FALLBACKS: list[str] = []


@contextlib.contextmanager
def kernel_notices(names: list[str]) -> Iterator[None]:
    """Keep transformers' "`X` is falling back to its reference PyTorch implementation" warnings off stderr
    (:func:`quiet_kernel_notices`); ``names`` receives the kernels' names seen in this process so far."""
    quiet_kernel_notices()
    try:
        yield
    finally:
        names.extend(n for n in KERNEL_FALLBACKS if n not in names)


def quiet_kernel_notices() -> None:
    """Once per process, when transformers is loaded: a filter on its log handlers that drops the optional-kernel
    notices (every command: a model built from a transformers config may run them in any analysis) and records
    the kernels' names in :data:`KERNEL_FALLBACKS` for the notes."""
    import logging
    import re
    import sys

    if "transformers" not in sys.modules:
        return
    from transformers.utils import logging as hf_logging

    pattern = re.compile(r"`(\w+)` is falling back to its reference PyTorch implementation")

    class Catch(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            match = pattern.search(record.getMessage())
            if match:
                if match.group(1) not in KERNEL_FALLBACKS:
                    KERNEL_FALLBACKS.append(match.group(1))
                return False
            return True

    for handler in hf_logging._get_library_root_logger().handlers:
        if not any(type(f).__name__ == "Catch" and f.__module__ == __name__ for f in handler.filters):
            handler.addFilter(Catch())


def own_forward(module: "nn.Module") -> bool:
    from lstm_inspect.model import RecurrentLanguageModel
    from lstm_inspect.sources.rebuilt import RebuiltRecurrentModel

    return type(module) in (RecurrentLanguageModel, RebuiltRecurrentModel) and "forward" not in vars(module)


@contextlib.contextmanager
def packing_by_shape() -> Iterator[None]:
    """``pack_padded_sequence``/``pad_packed_sequence`` for fake tensors, inside a user's forward.

    The packing kernels read the data; on fake tensors only the lengths are needed, and those are real (a
    list, or a tensor made from one). The packed data gets ``sum(lengths)`` rows and ``batch_sizes`` is computed
    from the lengths, so a recurrent module runs (and is counted for) ``sum(lengths)`` cell steps.
    """
    import torch

    from lstm_inspect.torch_adapters import is_fake

    vf = torch._VF
    from lstm_inspect.torch_adapters import PACKING_KERNELS as names
    saved = {name: vars(vf).get(name) for name in names}
    real = {name: getattr(vf, name) for name in names}   # real tensors (a measurement meanwhile) keep the kernels

    def shape_only(t: Any) -> bool:
        return t.device.type == "meta" or is_fake(t)

    def pack(input, lengths, batch_first):
        if not shape_only(input):
            return real["_pack_padded_sequence"](input, lengths, batch_first)
        lens = _real_lengths(lengths)
        if len(lens) != (input.shape[0] if batch_first else input.shape[1]):
            raise ValueError(f"pack_padded_sequence: {len(lens)} lengths for a batch of "
                             f"{input.shape[0] if batch_first else input.shape[1]} sequences")
        longest = input.shape[1] if batch_first else input.shape[0]
        if lens and (min(lens) < 1 or max(lens) > longest):
            raise ValueError(f"pack_padded_sequence: lengths must be between 1 and the padded length {longest}, "
                             f"got {lens}")
        sizes = torch.tensor([sum(1 for n in lens if n > t) for t in range(max(lens, default=0))], dtype=torch.int64)
        return input.new_empty((sum(lens), *input.shape[2:])), sizes

    def pad(data, batch_sizes, batch_first, padding_value, total_length):
        if not shape_only(data):
            return real["_pad_packed_sequence"](data, batch_sizes, batch_first, padding_value, total_length)
        sizes = [int(s) for s in batch_sizes.tolist()]
        steps = max(len(sizes), int(total_length or 0))
        lens = torch.tensor([sum(1 for s in sizes if s > b) for b in range(sizes[0] if sizes else 0)], dtype=torch.int64)
        lead = (len(lens), steps) if batch_first else (steps, len(lens))
        return data.new_empty((*lead, *data.shape[1:])), lens

    vf._pack_padded_sequence, vf._pad_packed_sequence = pack, pad
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                vars(vf).pop(name, None)
            else:
                setattr(vf, name, value)


def _real_lengths(lengths: Any) -> list[int]:
    try:
        return [int(n) for n in lengths.tolist()]
    except Exception:  # noqa: BLE001 - a fake tensor has no values
        raise ValueError("pack_padded_sequence: the lengths are computed from the input's values, which a "
                         "shape-only trace does not have: give the model a sample_input(batch, seq, device) that "
                         "passes the lengths as a list of ints") from None


def require_runnable(loaded: "LoadedModel") -> None:
    """Stop, with the model's own reason, when its forward pass cannot be rebuilt (a checkpoint whose
    architecture was only partly recognised: its parameters count, nothing else runs)."""
    reason = getattr(loaded.module, "unrunnable", None)
    if reason:
        raise AnalysisFailed(reason)


def meta_copy(module: "nn.Module", dtype: "torch.dtype | None" = None) -> "nn.Module":
    """A deep copy whose parameters and buffers are on meta (floating ones at ``dtype`` when given): a
    model loaded with real weights (a checkpoint) is copied without copying its storage; tied tensors
    stay tied through the memo."""
    import torch
    from torch import nn

    memo: dict[int, Any] = {}
    for tensor in list(module.parameters()) + list(module.buffers()):
        if id(tensor) in memo or (tensor.device.type == "meta" and dtype is None):
            continue
        empty = torch.empty_like(tensor, device="meta")
        memo[id(tensor)] = nn.Parameter(empty, requires_grad=tensor.requires_grad) if isinstance(tensor, nn.Parameter) else empty
    clone = copy.deepcopy(module, memo)
    return clone.to(dtype=dtype) if dtype is not None else clone


def shape_of(value: Any) -> Any:
    """Nested shapes of a forward's output: tensors -> lists of ints, tuples stay tuples."""
    import torch
    from torch.nn.utils.rnn import PackedSequence

    if isinstance(value, PackedSequence):
        return {"packed": list(value.data.shape)}
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(value, (tuple, list)):
        return [shape_of(v) for v in value]
    if isinstance(value, dict):
        return {k: shape_of(v) for k, v in value.items()}
    if hasattr(value, "to_tuple"):  # transformers ModelOutput
        return shape_of(value.to_tuple())
    return None


def output_shapes(loaded: "LoadedModel", batch: int, seq: int) -> dict[str, Any]:
    """Qualified module name ("" for the root) -> nested output shape, for a token batch."""
    shapes: dict[str, Any] = {}

    def work(module: "nn.Module", mode: Any, device: str) -> None:
        shapes.clear()
        handles = []
        for name, sub in module.named_modules():
            handles.append(sub.register_forward_hook(_recorder(shapes, name)))
        try:
            with mode:
                inputs = loaded.sample_input(batch, seq, device)
                module.eval()
                import torch

                with torch.no_grad():
                    module(*inputs)
        except Exception as exc:  # a user's model may fail in any way; say so, don't crash
            raise AnalysisFailed(f"tracing a forward pass of {loaded.name} failed: {first_line(exc)}") from None
        finally:
            for handle in handles:
                handle.remove()

    traced(loaded, work)
    return shapes


def _recorder(shapes: dict[str, Any], name: str) -> Callable:
    def hook(_module, _inputs, output):
        shapes.setdefault(name, shape_of(output))

    return hook
