"""Transformers configs (built without weights) and factories: totals against closed forms from the config."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from lstm_inspect.cli import app
from lstm_inspect.sources import resolve_source

runner = CliRunner()


def llama_total(c) -> int:
    """Embedding V·h, per layer q/o h·(n·d), k/v h·(kv·d), MLP 3·h·i, two RMSNorms h; final norm h; untied head V·h."""
    h, v, i, n, L = c.hidden_size, c.vocab_size, c.intermediate_size, c.num_attention_heads, c.num_hidden_layers
    kv = c.num_key_value_heads or n
    d = getattr(c, "head_dim", None) or h // n
    per_layer = 2 * h * n * d + 2 * h * kv * d + 3 * h * i + 2 * h
    head = 0 if c.tie_word_embeddings else v * h
    return v * h + L * per_layer + h + head


def test_hf_llama_default_config_total_and_per_layer_fields():
    from transformers import LlamaConfig

    c = LlamaConfig()
    result = runner.invoke(app, ["params", "--json", "--model", "hf:llama"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["total_params"] == llama_total(c)
    assert doc["checks"] == []
    layers = doc["layers"]
    h, n, kv, i = c.hidden_size, c.num_attention_heads, c.num_key_value_heads or c.num_attention_heads, c.intermediate_size
    d = h // n
    assert layers["kind"] == "decoder" and len(layers["layers"]) == c.num_hidden_layers
    assert layers["embedding_params"] == c.vocab_size * h
    assert layers["lm_head_params"] == c.vocab_size * h
    first = layers["layers"][0]
    assert first["attention"]["q_proj"] == h * n * d and first["attention"]["k_proj"] == h * kv * d
    assert first["attention"]["o_proj"] == n * d * h
    assert first["attention"]["num_heads"] == n and first["attention"]["num_kv_heads"] == kv
    assert first["mlp"]["gate_proj"] == first["mlp"]["up_proj"] == first["mlp"]["down_proj"] == h * i
    assert first["mlp"]["intermediate_size"] == i
    assert first["norm"] == 2 * h
    assert first["total"] == first["attention"]["total"] + first["mlp"]["total"] + first["norm"]
    assert first["is_zero_layer"] is False
    assert layers["layer_summary"]["total_layer_params"] == c.num_hidden_layers * first["total"]


def gpt2_total(n_layer: int, e: int, v: int, p: int, inner: int) -> int:
    """wte V·E + wpe P·E; per block: 2 LayerNorms 4E, c_attn E·3E+3E, c_proj E·E+E, c_fc E·I+I, c_proj I·E+E;
    ln_f 2E; lm_head tied to wte."""
    block = 4 * e + (e * 3 * e + 3 * e) + (e * e + e) + (e * inner + inner) + (inner * e + e)
    return v * e + p * e + n_layer * block + 2 * e


def test_local_gpt2_config(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=300, n_positions=48).to_json_file(tmp_path / "config.json")
    expected = gpt2_total(2, 64, 300, 48, 4 * 64)
    for source in (tmp_path / "config.json", tmp_path):
        result = runner.invoke(app, ["params", "--json", "--model", str(source)])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert doc["total_params"] == expected
        first = doc["layers"]["layers"][0]
        assert first["attention"]["qkv_proj"] == 64 * 192 + 192 and first["attention"]["q_proj"] is None
        assert first["attention"]["num_heads"] == 4 and first["mlp"]["intermediate_size"] == 256
        assert doc["layers"]["lm_head_params"] == 0   # tied to wte
    result = runner.invoke(app, ["structure", "--json", "--model", str(tmp_path / "config.json"), "--seq", "8"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tree"]["children"][-1]["output_shape"] == [1, 8, 300]


def test_hf_source_never_touches_the_network(monkeypatch):
    """Offline is forced for the call, and a socket guard fails the test on any connection attempt."""
    import os
    import socket

    attempts: list = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise AssertionError(f"network access attempted: {address!r}")

    def refuse_create(address, *args, **kwargs):
        attempts.append(address)
        raise AssertionError(f"network access attempted: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse_create)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: refuse_create(a[0] if a else None))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    loaded = resolve_source("hf:gpt2")
    assert attempts == []
    assert loaded.description["config"]["num_hidden_layers"] == 12
    assert "HF_HUB_OFFLINE" not in os.environ   # forced only for the call, then restored
    assert all(p.device.type == "meta" for p in loaded.module.parameters())


def test_factory_default_and_custom_sample_input(tmp_path, monkeypatch):
    (tmp_path / "factories_5a.py").write_text(
        "import torch\nfrom torch import nn\n"
        "def tiny():\n    return nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3))\n"
        "def conv():\n    return nn.Conv1d(3, 5, kernel_size=3)\n"
        "conv.sample_input = lambda batch, seq, device: torch.zeros(batch, 3, seq, device=device)\n"
        "def not_a_module():\n    return 42\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        result = runner.invoke(app, ["params", "--json", "--model", "factories_5a:tiny"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["total_params"] == 10 * 4 + 4 * 3 + 3
        result = runner.invoke(app, ["structure", "--json", "--model", "factories_5a:conv", "--batch", "2", "--seq", "9"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["tree"]["output_shape"] == [2, 5, 7]
        result = runner.invoke(app, ["params", "--model", "factories_5a:not_a_module"])
        assert result.exit_code == 3 and "not a torch.nn.Module" in result.stderr
        result = runner.invoke(app, ["params", "--model", "factories_5a:missing"])
        assert result.exit_code == 2 and "no attribute" in result.stderr
    finally:
        sys.modules.pop("factories_5a", None)


def test_params_json_with_decoder_layers_matches_its_schema(tmp_path):
    from transformers import GPT2Config

    from tests.schema_helpers import validate

    GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=16).to_json_file(tmp_path / "config.json")
    doc = json.loads(runner.invoke(app, ["params", "--json", "--model", str(tmp_path / "config.json")]).stdout)
    validate(doc)
    doc["layers"]["kind"] = "encoder"
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        validate(doc)
