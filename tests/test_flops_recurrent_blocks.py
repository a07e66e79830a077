"""Closed forms per recurrent/SSM block of transformers' modern recurrent LMs (issue 10): Mamba's selective scan,
RWKV, xLSTM's mLSTM; Mamba2 and RecurrentGemma counted with per-layer mixer sections; notes true to each
architecture; no library notice on stderr."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lstm_inspect.analyses.flops import count_flops
from lstm_inspect.analyses.layers import describe_layers
from lstm_inspect.sources import resolve_source

V = 97


def _config(tmp_path, kind):
    import transformers as tf

    ids = dict(bos_token_id=0, eos_token_id=0, pad_token_id=0)
    config = {
        "mamba": lambda: tf.MambaConfig(hidden_size=32, state_size=4, num_hidden_layers=2, vocab_size=V, expand=2,
                                        conv_kernel=4, **ids),
        "mamba2": lambda: tf.Mamba2Config(hidden_size=32, state_size=8, num_heads=8, head_dim=8, expand=2, n_groups=1,
                                          num_hidden_layers=2, vocab_size=V, chunk_size=16,
                                          time_step_limit=(0.0, 100.0), **ids),   # the default (0, inf) is no JSON
        "rwkv": lambda: tf.RwkvConfig(hidden_size=32, attention_hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, vocab_size=V, context_length=128, bos_token_id=0,
                                      eos_token_id=0),
        # hidden 128: transformers' cache rounds qk_dim up to a multiple of 64 while the layer does not
        "xlstm": lambda: tf.xLSTMConfig(hidden_size=128, num_heads=2, num_blocks=2, vocab_size=V, **ids),
        "recurrent_gemma": lambda: tf.RecurrentGemmaConfig(
            num_hidden_layers=3, vocab_size=V, hidden_size=32, intermediate_size=64, num_attention_heads=2,
            lru_width=32, attention_window_size=16, conv1d_width=4, block_types=["recurrent", "recurrent", "attention"],
            **ids),
    }[kind]()
    config.to_json_file(str(tmp_path / "config.json"))
    return resolve_source(str(tmp_path / "config.json"))


def _params(module):
    return sum(p.numel() for p in module.parameters())


def test_mamba_total_is_the_closed_forms_of_its_parts(tmp_path):
    # per layer: in_proj h -> 2·inner, x_proj inner -> rank + 2·N, dt_proj rank -> inner (functional), out_proj
    # inner -> h; the depthwise conv runs on the input padded by k - 1 on both sides, then cut: (T + k - 1)
    # outputs of k taps per channel; the scan: one state·C product per token and channel (inner · N)
    h, N, L, inner, k, B, T = 32, 4, 2, 64, 4, 1, 64
    rank = -(-h // 16)
    loaded = _config(tmp_path, "mamba")
    report = count_flops(loaded, batch=B, seq=T)
    linears = B * T * (h * 2 * inner + inner * (rank + 2 * N) + rank * inner + inner * h)
    conv = B * (T + k - 1) * inner * k
    scan = B * T * inner * N
    assert report.macs == L * (linears + conv + scan) + B * T * h * V
    assert report.uncounted_ops == ()


def test_rwkv_layers_and_closed_form(tmp_path):
    h, a, f, L, B, T = 32, 32, 64, 2, 2, 16     # transformers runs RWKV only with a == h
    loaded = _config(tmp_path, "rwkv")
    layers = describe_layers(loaded)
    blocks = list(loaded.module.rwkv.blocks)
    assert [l.total for l in layers.decoder_layers] == [_params(b) for b in blocks]
    assert all(l.attention is None and l.mixer.kind == "wkv" and l.mixer.total == _params(b.attention)
               for l, b in zip(layers.decoder_layers, blocks))
    report = count_flops(loaded, batch=B, seq=T)
    # time mixing: key, value, receptance h -> a, output a -> h; channel mixing: key h -> f, value f -> h,
    # receptance h -> h; the WKV recurrence itself is element-wise (no MACs)
    per_token = L * (3 * h * a + a * h + 2 * h * f + h * h) + h * V
    assert abs(report.macs - B * T * per_token) <= 0.01 * B * T * per_token
    assert not any("attention" in n for n in report.notes)


def test_xlstm_layers_and_closed_form(tmp_path):
    h, heads, L, B, T = 128, 2, 2, 1, 32
    loaded = _config(tmp_path, "xlstm")
    config = loaded.module.config
    dqk, dv = int(h * config.qk_dim_factor) // heads, int(h * config.v_dim_factor) // heads
    ffn = -(-int(h * config.ffn_proj_factor) // config.ffn_round_up_to_multiple_of) * config.ffn_round_up_to_multiple_of
    layers = describe_layers(loaded)
    blocks = list(loaded.module.backbone.blocks)
    assert [l.total for l in layers.decoder_layers] == [_params(b) for b in blocks]
    assert all(l.mixer.kind == "mlstm" and l.mixer.total == _params(b.mlstm_layer) and l.mlp.total == _params(b.ffn)
               for l, b in zip(layers.decoder_layers, blocks))
    report = count_flops(loaded, batch=B, seq=T)
    # q, k: h -> heads·dqk; v, output gate: h -> heads·dv; input/forget gates h -> heads; out_proj; the FFN's
    # gate, up, down; T < chunk_size runs the recurrent step per token: per head k·vᵀ into C (dqk·dv),
    # q·C (dqk·dv), q·n (dqk)
    projections = 2 * h * heads * dqk + 2 * h * heads * dv + 2 * h * heads + heads * dv * h + 3 * h * ffn
    recurrence = heads * (2 * dqk * dv + dqk)
    expected = B * T * (L * (projections + recurrence) + h * V)
    assert T < config.chunk_size
    assert abs(report.macs - expected) <= 0.01 * expected
    assert not any("attention" in n for n in report.notes)


@pytest.mark.parametrize("kind,mixer", [("mamba2", "ssd"), ("recurrent_gemma", "rg_lru")])
def test_mamba2_and_recurrent_gemma_count_with_mixer_sections(tmp_path, kind, mixer):
    loaded = _config(tmp_path, kind)
    layers = describe_layers(loaded)
    assert layers.kind == "decoder" and layers.decoder_layers
    with_mixer = [l for l in layers.decoder_layers if l.mixer is not None]
    assert with_mixer and all(l.mixer.kind == mixer and 0 < l.mixer.total <= l.total for l in with_mixer)
    if kind == "recurrent_gemma":          # block_types: recurrent, recurrent, attention
        assert [l.mixer is not None for l in layers.decoder_layers] == [True, True, False]
        assert layers.decoder_layers[2].attention is not None
    report = count_flops(loaded, batch=1, seq=16)
    assert report.macs > 0 and report.uncounted_ops == ()
    assert {c.component for c in report.components if ".mixer" in c.module or ".temporal_block" in c.module} >= {
        "recurrent"}


def test_params_json_has_mixer_sections(tmp_path):
    from typer.testing import CliRunner

    from lstm_inspect.cli import app

    loaded = _config(tmp_path, "mamba")
    result = CliRunner().invoke(app, ["params", "--model", str(tmp_path / "config.json"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    blocks = list(loaded.module.backbone.layers)
    mixers = [l["mixer"] for l in doc["layers"]["layers"]]
    assert [m["total"] for m in mixers] == [_params(b.mixer) for b in blocks]
    assert {(m["kind"], m["state_size"], m["conv_kernel"], m["inner_size"]) for m in mixers} == {
        ("selective_scan", 4, 4, 64)}
    assert all(l["attention"] is None for l in doc["layers"]["layers"])
    assert doc["layers"]["hyperparameters"]["state_size"] == 4


def test_compare_shows_the_mixer_not_attention(tmp_path):
    from typer.testing import CliRunner

    from lstm_inspect.cli import app

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _config(tmp_path / "a", "mamba")
    from transformers import MambaConfig

    MambaConfig(hidden_size=32, state_size=8, num_hidden_layers=2, vocab_size=V, expand=2, conv_kernel=4,
                bos_token_id=0, eos_token_id=0, pad_token_id=0).to_json_file(str(tmp_path / "b" / "config.json"))
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "a" / "config.json"),
                                      str(tmp_path / "b" / "config.json"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    text = json.dumps(doc)
    assert '"mixer"' in text
    pair = doc["comparisons"][0] if "comparisons" in doc else doc
    layer = pair["layers"][0]
    # A: inner 64 channels × N 4 (A_log) ; B: N 8: A_log and x_proj's B/C outputs grow with N
    inner = 64
    grow = inner * 4 + inner * 2 * 4
    assert layer["mixer"]["pruned"] - layer["mixer"]["original"] == grow
    assert layer["mixer"]["state_size"] == {"original": 4, "pruned": 8}
    assert "attention" not in layer or layer["attention"]["original"] == layer["attention"]["pruned"] == 0


@pytest.mark.parametrize("kind", ["mamba", "mamba2", "rwkv", "xlstm", "recurrent_gemma"])
def test_no_library_notice_on_stderr(tmp_path, kind):
    # a fresh process: transformers warns once per process, so an earlier test could hide a notice
    _config(tmp_path, kind)
    out = subprocess.run([sys.executable, "-m", "lstm_inspect", "flops", "--model", str(tmp_path / "config.json"),
                          "--seq", "8", "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    doc = json.loads(out.stdout)
    assert doc["macs"] > 0
    if kind in ("mamba", "rwkv", "xlstm", "mamba2"):
        assert not any("attention" in n for n in doc["notes"])
