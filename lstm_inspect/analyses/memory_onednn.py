"""What oneDNN's LSTM layer on the CPU allocates that its fake kernel does not show: the memory tracker's model of
``aten::mkldnn_rnn_layer`` (what nn.LSTM runs there) and its backward, fitted to the profiler's allocation
events (see :mod:`~lstm_inspect.analyses.memory_estimate`)."""

from __future__ import annotations

from lstm_inspect.torch_adapters import mkldnn_hidden_and_batch, mkldnn_layer, mkldnn_training


def transient_bytes(func, args) -> int:
    """Memory a kernel allocates and frees inside one call, which its outputs do not show.

    oneDNN's LSTM layer on the CPU (``aten::mkldnn_rnn_layer``, what nn.LSTM runs there) reorders
    both weight matrices into its own layout on every call and keeps the gates of every step in a
    scratchpad of ``T·B·4·H`` elements (seen in the profiler's allocation events; the scratchpad
    also has a small, size-dependent padding that is not modelled). Its backward
    (``mkldnn_rnn_layer_backward``) reorders the weights again and accumulates the weight gradients
    in oneDNN's layout (float32) before copying them out, plus the same scratchpad.
    All of it lives only during the call, so it raises the peak without changing what is live after.
    """
    layer = mkldnn_layer(func)
    if layer is None or len(args) < 3:
        return 0
    x, w_ih, w_hh = args[0], args[1], args[2]
    weights = w_ih.numel() + w_hh.numel()
    elem = x.element_size()
    gates = w_ih.shape[0]                       # 4·H
    steps_times_batch = x.numel() // x.shape[-1] if x.dim() else 0
    if layer == "backward":
        # The reordered weights (elem bytes each) and the float32 gradient accumulators (the weight
        # gradients it returns are float32 too, cast down afterwards: those are real outputs).
        per_weight = elem + 4
    else:
        per_weight = elem
    scratch = steps_times_batch * gates * elem
    inference = layer == "forward" and mkldnn_training(args) is False
    if inference and x.dim() == 3 and x.shape[1] == 1:
        scratch *= 2  # inference on a batch of one takes another oneDNN kernel: its scratchpad is twice the gates
    return int(weights * per_weight + scratch)


def rnn_workspace_bytes(func, args) -> int:
    """The workspace oneDNN's LSTM layer keeps for its backward (its last output), in train mode.

    The fake kernel returns it empty; the real one allocates, per layer and direction, the gates,
    states and cell states of every step in oneDNN's padded layout (a leading dimension ``n`` is
    rounded up to 64 bytes, plus 64 bytes more when it is a multiple of 256 elements). Fitted to the
    profiler's allocation events on this torch: ``T·B·3·(ld(4H) + ld(H)) + 16·B·ld(H)`` elements,
    within 1% from H = 64 to 768, B = 1 to 16, T = 10 to 256.
    """
    if mkldnn_layer(func) != "forward" or not mkldnn_training(args):
        return 0
    x = args[0]
    hidden, batch = mkldnn_hidden_and_batch(args)
    elem = 4  # oneDNN keeps the workspace of float32 and of reduced-precision layers in float32 lines
    steps_times_batch = x.numel() // x.shape[-1] if x.dim() else 0

    def ld(n: int) -> int:
        per_line = 64 // elem
        padded = -(-n // per_line) * per_line
        return padded + per_line if padded % 256 == 0 else padded

    elements = steps_times_batch * 3 * (ld(4 * hidden) + ld(hidden)) + 16 * batch * ld(hidden)
    return int(-(-elements * elem // 4096) * 4096)
