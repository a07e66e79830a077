"""fake_copy: a forward-ready fake copy that leaves the original (real or meta) untouched."""

from __future__ import annotations

import torch
from torch._subclasses.fake_tensor import FakeTensor

from lstm_inspect.building import build_real
from lstm_inspect.source import LoadedModel, token_batch_input
from lstm_inspect.spec import ModelSpec
from lstm_inspect.tracing import fake_copy, meta_copy as _meta_copy


def _real_loaded(spec):
    return LoadedModel(build_real(spec, torch.device("cpu")), spec, {"source": "test", "name": "t"}, token_batch_input(spec))


def test_fake_copy_of_a_real_model_copies_no_storage():
    spec = ModelSpec(embed_dim=32, hidden_dim=32, vocab_size=64, tie_weights=True)
    loaded = _real_loaded(spec)
    before = loaded.module.embed.weight.detach().clone()
    meta = _meta_copy(loaded.module)
    assert all(p.device.type == "meta" for p in meta.parameters())
    assert meta.proj.weight is meta.embed.weight  # tying survives the copy
    with fake_copy(loaded) as (module, mode):
        assert all(isinstance(p, FakeTensor) for p in module.parameters())
        with mode:
            out = module(*loaded.sample_input(3, 7, "cpu"))
        assert tuple(out.shape) == (3, 7, 64)
    assert loaded.module.embed.weight.device.type == "cpu"
    assert loaded.module.proj.weight is loaded.module.embed.weight
    assert torch.equal(loaded.module.embed.weight, before)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _shapes(value):
    from torch.nn.utils.rnn import PackedSequence

    if isinstance(value, PackedSequence):
        return ("packed", tuple(value.data.shape), tuple(value.batch_sizes.tolist()))
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    return tuple(_shapes(v) for v in value)


@settings(max_examples=30, deadline=None)
@given(cell=st.sampled_from(["LSTM", "GRU", "RNN"]), layers=st.integers(1, 3), bidirectional=st.booleans(),
       batch_first=st.booleans(), proj=st.booleans(), kind=st.sampled_from(["batched", "unbatched", "packed"]),
       batch=st.integers(1, 4), seq=st.integers(1, 6))
def test_shape_only_recurrent_forward_matches_the_real_one(cell, layers, bidirectional, batch_first, proj, kind, batch, seq):
    """The stand-in forward used for shape-only analyses returns exactly the real module's shapes."""
    import types

    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence

    from lstm_inspect.shape_forwards import recurrent_shapes as _recurrent_shapes

    kwargs = dict(input_size=5, hidden_size=6, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    if cell == "LSTM" and proj:
        kwargs["proj_size"] = 3
    real = getattr(nn, cell)(**kwargs)
    if kind == "unbatched":
        x = torch.zeros(seq, 5)
    else:
        x = torch.zeros((batch, seq, 5) if batch_first else (seq, batch, 5))
    if kind == "packed":
        lengths = torch.tensor([max(1, seq - i) for i in range(batch)])
        x = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    expected = _shapes(real(x))
    stand_in = types.MethodType(_recurrent_shapes, real)
    assert _shapes(stand_in(x)) == expected


def _builtin_gru_in_a_child(*lines: str) -> list[str]:
    """Run ``lines`` in a fresh interpreter after building the built-in bidirectional GRU as ``m`` (imports
    are the point of these tests: a child starts from none); its printed words."""
    import subprocess
    import sys

    code = "\n".join((
        "import sys",
        "from lstm_inspect.spec import ModelSpec",
        "from lstm_inspect.source import load_builtin",
        "from lstm_inspect.analyses.flops import count_flops",
        "from lstm_inspect.analyses.structure import describe_structure",
        "m = load_builtin(ModelSpec(cell='gru', bidirectional=True))",
        *lines,
    ))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_builtin_family_is_traced_without_fake_tensors():
    """structure and flops of the built-in model stay on meta: torch._dynamo (~1 s) is never imported."""
    assert _builtin_gru_in_a_child(
        "r = count_flops(m, batch=2, seq=64)",
        "p = count_flops(m, batch=3, seq=9, lengths=[9, 4, 4])",
        "s = describe_structure(m, batch=2, seq=8)",
        "print(r.macs > 0, p.macs < r.macs, 'torch._dynamo' in sys.modules)",
    ) == ["True", "True", "False"]


def test_plain_builtin_count_runs_no_meta_kernel_that_imports_sympy():
    """The embedding lookup is shape-only too: torch's meta kernel for it imports sympy (~0.4 s) through
    ``torch._check``; a plain (unpacked) count of the built-in family never does."""
    assert _builtin_gru_in_a_child(
        "r = count_flops(m, batch=2, seq=64)",
        "s = describe_structure(m, batch=2, seq=8)",
        "print(r.macs > 0, 'sympy' in sys.modules)",
    ) == ["True", "False"]


def test_shape_only_embedding_refuses_float_input_as_pytorch_does():
    import pytest
    from torch import nn

    from lstm_inspect.shape_forwards import embedding_shapes

    embed = nn.Embedding(10, 4, device="meta")
    out = embedding_shapes(embed, torch.zeros(2, 3, dtype=torch.long, device="meta"))
    assert tuple(out.shape) == (2, 3, 4) and out.dtype == embed.weight.dtype
    with pytest.raises(RuntimeError, match="indices"):
        nn.Embedding(10, 4)(torch.zeros(2, 3))          # what PyTorch says
    with pytest.raises(RuntimeError, match="indices.*Long, Int"):
        embedding_shapes(embed, torch.zeros(2, 3, device="meta"))
