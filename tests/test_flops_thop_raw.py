"""``thop_raw`` is what it claims to be: the figure a real ``thop.profile(model, inputs, verbose=False)`` call with
thop's stock hooks returns, though it now comes out of the counting pass itself (no second forward)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_inspect.analyses.flops import count_flops
from lstm_inspect.source import load_builtin
from lstm_inspect.sources import resolve_source
from tests.test_flops import specs


def _thop_stock(model, inputs) -> int:
    """thop's own call on a real model with real inputs, its stock hooks only."""
    import thop

    total, _params = thop.profile(model, inputs, verbose=False)
    return int(round(float(total)))


def _real_builtin(spec):
    import torch

    from lstm_inspect.building import build_real

    return build_real(spec, torch.device("cpu"))


@settings(max_examples=25, deadline=None)
@given(spec=specs, batch=st.integers(1, 4), seq=st.integers(1, 20))
def test_builtin_thop_raw_is_thop_profile(spec, batch, seq):
    loaded = load_builtin(spec)
    expected = _thop_stock(_real_builtin(spec), loaded.inputs(batch, seq, "cpu"))
    assert count_flops(loaded, batch=batch, seq=seq).thop_raw == expected


@settings(max_examples=15, deadline=None)
@given(spec=specs, lengths=st.lists(st.integers(1, 12), min_size=1, max_size=4), extra=st.integers(0, 3))
def test_packed_thop_raw_is_thop_profile_of_the_padded_batch(spec, lengths, extra):
    # the report says thop's raw figure is for the padded batch (the same sequences padded to seq)
    seq = max(lengths) + extra
    loaded = load_builtin(spec)
    expected = _thop_stock(_real_builtin(spec), loaded.inputs(len(lengths), seq, "cpu"))
    assert count_flops(loaded, seq=seq, lengths=lengths).thop_raw == expected


def _real_copy(loaded):
    """A real (randomly initialised) copy of a transformers model loaded from its config on meta."""
    import torch

    torch.manual_seed(0)
    model = type(loaded.module)(loaded.module.config)
    return model.eval()


def _hf(tmp_path, config):
    config.to_json_file(str(tmp_path / "config.json"))
    return resolve_source(str(tmp_path / "config.json"))


def test_gpt2_thop_raw_is_thop_profile(tmp_path):
    from transformers import GPT2Config

    loaded = _hf(tmp_path, GPT2Config(n_layer=2, n_embd=48, n_head=4, vocab_size=101, n_positions=32,
                                      bos_token_id=0, eos_token_id=0))
    expected = _thop_stock(_real_copy(loaded), loaded.inputs(2, 9, "cpu"))
    assert expected > 0          # thop's LayerNorm hooks (its stock table has no Conv1D)
    assert count_flops(loaded, batch=2, seq=9).thop_raw == expected


def test_mamba_thop_raw_is_thop_profile(tmp_path):
    from transformers import MambaConfig

    loaded = _hf(tmp_path, MambaConfig(hidden_size=32, state_size=4, num_hidden_layers=2, vocab_size=97, expand=2,
                                       conv_kernel=4, bos_token_id=0, eos_token_id=0, pad_token_id=0))
    expected = _thop_stock(_real_copy(loaded), loaded.inputs(1, 16, "cpu"))
    assert expected > 0          # its nn.Linear projections, by thop's stock Linear hook
    assert count_flops(loaded, batch=1, seq=16).thop_raw == expected


def test_rwkv_thop_raw_is_thop_profile(tmp_path):
    from transformers import RwkvConfig

    loaded = _hf(tmp_path, RwkvConfig(hidden_size=32, attention_hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, vocab_size=97, context_length=128, bos_token_id=0,
                                      eos_token_id=0))
    expected = _thop_stock(_real_copy(loaded), loaded.inputs(1, 8, "cpu"))
    assert expected > 0
    assert count_flops(loaded, batch=1, seq=8).thop_raw == expected


def test_module_used_twice_is_charged_as_thop_charges_it():
    # thop's model.apply visits a shared module once per place in the tree and registers its hook at each visit,
    # then its dfs over named_children sums the module's figure at each place. (count_flops cannot take such a
    # model today: its fake copy fails to swap the shared module's weights twice, so the hooks are run directly.)
    import torch
    from torch import nn

    from lstm_inspect.analyses.flops_thop import _stock_hooks

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(11, 6)
            self.norm = nn.LayerNorm(6)
            self.block = nn.Sequential(self.norm, nn.Linear(6, 6))
            self.head = nn.Linear(6, 11)

        def forward(self, tokens):
            return self.head(self.block(self.norm(self.embed(tokens))))

    tokens = torch.zeros(2, 3, dtype=torch.long)
    # a fresh instance for thop: its profile leaves a hook behind on the shared module
    expected = _thop_stock(Twice(), (tokens,))
    # by hand: LayerNorm (affine) 2·2 per element and call, 2 calls × 2 hooks, summed at 2 places; Linear
    # in_features per output element
    elements = 2 * 3 * 6
    assert expected == 2 * (2 * 2 * (2 * 2) * elements) + 6 * elements + 6 * (2 * 3 * 11)
    model = Twice().eval()
    with torch.no_grad(), _stock_hooks(model) as thop_raw:
        model(tokens)
    assert thop_raw() == expected
    assert not any(m._forward_hooks for m in model.modules())      # ours are all removed
