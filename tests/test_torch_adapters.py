"""The torch internals lstm-inspect leans on (``lstm_inspect/torch_adapters.py``) are still where it reads them.

These tests fail loudly on a torch release that moves any of them, before an estimate silently drifts.
"""

from __future__ import annotations

import torch

from lstm_inspect import torch_adapters as ta


def test_the_running_torch_is_declared_or_the_estimate_says_so():
    from lstm_inspect.analyses.memory import _notes

    notes = _notes("estimate", "infer", "none", torch.device("cpu"), None)
    assert ta.validated() or any("validated on torch" in n for n in notes)


def test_onednn_lstm_layer_arguments_are_where_the_estimate_reads_them():
    schema = torch.ops.aten.mkldnn_rnn_layer.default._schema
    names = [a.name for a in schema.arguments]
    assert names[ta.MKLDNN_HX] == "hx_"
    assert names[ta.MKLDNN_HIDDEN_SIZE] == "hidden_size"
    assert names[ta.MKLDNN_TRAIN] == "train"
    assert ta.mkldnn_layer(torch.ops.aten.mkldnn_rnn_layer.default) == "forward"
    assert ta.mkldnn_layer(torch.ops.aten.mkldnn_rnn_layer_backward.default) == "backward"
    assert ta.mkldnn_layer(torch.ops.aten.mm.default) is None


def test_the_profiler_event_tree_still_gives_cpu_allocations():
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        x = torch.empty(1 << 16)
        del x
    events = ta.profiler_allocations(prof)
    sizes = [size for _, size, _, device in events if device == "cpu"]
    assert (1 << 18) in sizes and -(1 << 18) in sizes   # 65,536 float32: allocated, then freed


def test_fake_tensors_and_the_packing_kernels_are_where_the_tracing_finds_them():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        fake = torch.empty(2, 3)
    assert ta.is_fake(fake) and not ta.is_fake(torch.empty(2, 3))
    del mode
    for name in ta.PACKING_KERNELS:
        assert callable(getattr(torch._VF, name))
