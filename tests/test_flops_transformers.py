"""FLOPs of a transformers model: GPT-2's Conv1D projections and its attention products are counted."""

from __future__ import annotations

from lstm_inspect.analyses.flops import count_flops
from lstm_inspect.sources import resolve_source


def test_gpt2_macs_equal_the_closed_form_of_its_projections(tmp_path):
    from transformers import GPT2Config

    config = GPT2Config(n_layer=3, n_embd=48, n_head=4, vocab_size=321, n_positions=64, bos_token_id=0, eos_token_id=0)
    config.to_json_file(str(tmp_path / "config.json"))
    batch, seq = 2, 9
    report = count_flops(resolve_source(str(tmp_path / "config.json")), batch=batch, seq=seq)
    h, v, layers = 48, 321, 3
    # per layer: c_attn h->3h, attn c_proj h->h, mlp c_fc h->4h, mlp c_proj 4h->h; then lm_head h->v
    per_token = layers * (h * 3 * h + h * h + h * 4 * h + 4 * h * h) + h * v
    attention = batch * layers * 2 * seq * seq * h      # Q·Kᵀ and A·V over 4 heads of 12: heads·T·T·d twice
    assert report.macs == batch * seq * per_token + attention
