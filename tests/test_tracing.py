"""fake_copy: a forward-ready fake copy that leaves the original (real or meta) untouched."""

from __future__ import annotations

import torch
from torch._subclasses.fake_tensor import FakeTensor

from lstm_inspect.building import build_real
from lstm_inspect.source import LoadedModel, token_batch_input
from lstm_inspect.spec import ModelSpec
from lstm_inspect.tracing import _meta_copy, fake_copy


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
