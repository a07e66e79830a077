"""What cuDNN's RNN kernel allocates on CUDA, for the memory tracker's estimate of a CUDA step.

On CUDA, nn.LSTM/GRU/RNN run one ``aten::_cudnn_rnn`` call over all layers and directions (and
``_cudnn_rnn_backward`` in the backward). A fake-tensor trace on a CPU-only torch would run the CPU
kernels instead, so :func:`cudnn_rnn_mode` routes ``torch.lstm``/``gru``/``rnn_tanh``/``rnn_relu`` (what
the modules call) to ``torch._cudnn_rnn`` with the arguments ATen's ``_cudnn_impl`` passes, and the
tracker adds what the fake kernel does not show:

* the **reserve** (train mode), kept until the backward: per time step and batch row, for each direction,
  ``L·k·H + (L−1)·H_out`` elements (k = 5 LSTM, 6 GRU, 1 RNN; with a projection of P, ``6H + 2P`` per
  layer), plus 256 bytes. Exact for all 656 configurations measured on an H200 (cuDNN 9.19).
* the **workspace**, alive only during each call: ``8 MiB`` per layer and direction, plus a copy of the
  weights, plus per time step and batch row ``6H`` elements (one layer), ``4.75H`` (several layers) or
  ``15H`` (bidirectional); float32 never below 1,408 (1,984 bidirectional). Fitted to the same
  measurements, forward and backward: mean error under 3%; worst 18% under (2-layer LSTMs at 4,096 to
  8,192 rows: the algorithm cuDNN picks changes with size) and 25% over (a 64-wide RNN: 6 MiB).
* the backward's outputs: the input, state and weight gradients, the weight gradients as views of one
  flat buffer (as cuDNN returns them), so autograd hands the same storage to every ``.grad``.
* in bfloat16, the copy of the weights that every call makes (nn.RNNBase cannot keep them in one buffer
  for a dtype missing from ``torch.backends.cudnn.CUDNN_TENSOR_DTYPES``; torch warns about it).

The figures are cuDNN's choices on one GPU and version (the README has the table); another GPU may pick
other algorithms and workspace sizes.
"""

from __future__ import annotations

from typing import Any

#: ``cudnnRNNMode_t`` of each recurrent function (``torch.lstm`` … as ``nn.LSTM`` … call them).
_MODES = {"rnn_relu": 0, "rnn_tanh": 1, "lstm": 2, "gru": 3}
#: Reserve elements per time step, batch row, layer and direction, in units of H (cuDNN 9.19).
_RESERVE_PER_LAYER = {0: 1, 1: 1, 2: 5, 3: 6}
_MIB = 1 << 20
_CUDNN_OPS: Any = None


def _ops() -> tuple[Any, Any]:
    global _CUDNN_OPS
    if _CUDNN_OPS is None:
        import torch

        _CUDNN_OPS = (torch.ops.aten._cudnn_rnn.default, torch.ops.aten._cudnn_rnn_backward.default)
    return _CUDNN_OPS


def is_rnn_op(func: Any) -> bool:
    """Whether ``func`` is ``_cudnn_rnn`` or its backward (whose memory this module models)."""
    return func in _ops()


def is_backward(func: Any) -> bool:
    return func is _ops()[1]


def _layout(args: tuple) -> tuple[int, int, int, int, int, int, int, int]:
    """``(rows, elem, mode, hidden, proj, layers, directions, weight elements)`` of a ``_cudnn_rnn`` call or
    its backward (they share the leading arguments); rows = time steps × batch (packed: the packed rows)."""
    x, weights = args[0], args[1]
    if _is_backward_args(args):
        mode, hidden, proj, layers, bidirectional = args[10], args[11], args[12], args[13], args[17]
    else:
        mode, hidden, proj, layers, bidirectional = args[6], args[7], args[8], args[9], args[13]
    rows = x.numel() // x.shape[-1] if x.dim() else 0
    return (int(rows), x.element_size(), int(mode), int(hidden), int(proj), int(layers), 2 if bidirectional else 1,
            _elements(weights))


def _elements(tensors: Any) -> int:
    return sum(int(t.numel()) for t in tensors)


def _is_backward_args(args: tuple) -> bool:
    return len(args) > 20


def reserve_bytes(func: Any, args: tuple) -> int:
    """The reserve ``_cudnn_rnn`` returns in train mode (its fourth output; the fake kernel's is empty)."""
    if func is not _ops()[0] or not args[12]:
        return 0
    rows, elem, mode, hidden, proj, layers, directions, _ = _layout(args)
    return reserve_size(rows, elem, mode, hidden, proj, layers, directions)


def reserve_size(rows: int, elem: int, mode: int, hidden: int, proj: int, layers: int, directions: int) -> int:
    """Bytes of cuDNN's reserve for ``rows`` = time steps × batch rows (``mode``: 0/1 RNN, 2 LSTM, 3 GRU)."""
    per_layer = 6 * hidden + 2 * proj if proj else _RESERVE_PER_LAYER[mode] * hidden
    between = (layers - 1) * (proj or hidden)
    return rows * directions * (layers * per_layer + between) * elem + 256


def transient_bytes(func: Any, args: tuple) -> int:
    """The workspace of one ``_cudnn_rnn`` or ``_cudnn_rnn_backward`` call (fitted; see the module's text)."""
    if func not in _ops():
        return 0
    rows, elem, _, hidden, _, layers, directions, weights = _layout(args)
    return workspace_size(rows, elem, hidden, layers, directions, weights)


def workspace_size(rows: int, elem: int, hidden: int, layers: int, directions: int, weights: int) -> int:
    """Bytes of cuDNN's workspace during one forward or backward call; ``weights`` in elements."""
    per_row: float
    if directions == 2:
        per_row = max(15 * hidden, 1984 if elem == 4 else 0)
    else:
        per_row = max(6 * hidden if layers == 1 else 4.75 * hidden, 1408 if elem == 4 else 0)
    return int(8 * _MIB * layers * directions + weights * elem + rows * elem * per_row)


def backward_outputs(args: tuple) -> tuple:
    """Fake outputs of ``_cudnn_rnn_backward`` (it has no meta kernel): ``dx, dhx, dcx`` and the weight
    gradients as views of one flat buffer, as the CUDA kernel returns them."""
    x, weights, hx, cx = args[0], args[1], args[4], args[5]
    dx, dhx = x.new_empty(x.shape), hx.new_empty(hx.shape)
    dcx = cx.new_empty(cx.shape) if cx is not None else None
    output_mask = args[21]
    grads = []
    if output_mask[3]:
        flat = weights[0].new_empty(_elements(weights))
        offset = 0
        for w in weights:
            grads.append(flat[offset:offset + w.numel()].view(w.shape))
            offset += w.numel()
    return dx, dhx, dcx, grads


def cudnn_rnn_mode():
    """A function mode that runs the recurrent functions as cuDNN's one call (see the module's text).
    Packed input (``torch.lstm(data, batch_sizes, …)``) is left to the CPU kernels, as fake tensors run it."""
    import torch
    from torch.overrides import TorchFunctionMode

    functions = {getattr(torch, name): mode for name, mode in _MODES.items()}

    class CudnnRnn(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            try:
                mode = functions.get(func)
            except TypeError:   # an unhashable callable: not one of ours
                mode = None
            if mode is None or kwargs or len(args) != 9 or _packed(args[1]):
                return func(*args, **(kwargs or {}))
            return _cudnn_call(mode, *args)

    return CudnnRnn()


def _packed(second: Any) -> bool:
    import torch

    return isinstance(second, torch.Tensor) and second.dim() == 1


def _cudnn_call(mode: int, x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """``aten/src/ATen/native/cudnn/RNN.cpp::_cudnn_impl``: one ``_cudnn_rnn`` over all layers."""
    import torch

    h, c = (hx[0], hx[1]) if mode == 2 else (hx, None)
    hidden = int(c.shape[2]) if c is not None else int(h.shape[2])
    proj = int(h.shape[2]) if c is not None and c.shape[2] != h.shape[2] else 0
    per_layer = (4 if has_biases else 2) + (1 if proj else 0)
    if params[0].dtype in torch.backends.cudnn.CUDNN_TENSOR_DTYPES:
        # The weights' own flat buffer (nn.RNNBase keeps them in one on CUDA): an alias, no new memory.
        flat = params[0].detach()
    else:
        # flatten_parameters() refuses dtypes cuDNN's Python side does not list (bfloat16): every call then
        # copies the weights into a new buffer (torch warns "compacted at every call"), which the backward keeps.
        flat = x.new_empty(_elements(params))
    output, hy, cy, _reserve, _ = torch._cudnn_rnn(
        x, list(params), per_layer, flat, h, c, mode, hidden, proj, num_layers, batch_first, dropout, train,
        bidirectional, [], None)
    return (output, hy, cy) if mode == 2 else (output, hy)
