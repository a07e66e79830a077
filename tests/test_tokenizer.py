"""--tokenizer: a real tokenizer built in tmp_path and loaded through transformers, offline."""

from __future__ import annotations

import json
import time

from typer.testing import CliRunner

from lstm_inspect.cli import app
from lstm_inspect.vocab import vocab_from_tokenizer

runner = CliRunner()


def _save_tokenizer(folder, words, pad: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[UNK]", *words])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    kwargs = {"unk_token": "[UNK]"}
    if pad:
        kwargs["pad_token"] = "[PAD]"
    fast = PreTrainedTokenizerFast(tokenizer_object=core, **kwargs)
    fast.save_pretrained(str(folder))
    return len(fast)


def test_vocab_from_a_local_tokenizer_adds_a_pad_token(tmp_path):
    words = [f"w{i}" for i in range(41)]
    size = _save_tokenizer(tmp_path, words, pad=False)
    assert size == 42
    vocab = vocab_from_tokenizer(str(tmp_path))
    assert vocab.tokens == 42 and vocab.added_pad and vocab.vocab_size == 43

    result = runner.invoke(app, ["params", "--json", "--tokenizer", str(tmp_path), "--embed-dim", "8", "--hidden-dim", "8"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["model"]["spec"]["vocab_size"] == 43
    assert doc["model"]["vocab_from"] == str(tmp_path)
    assert doc["tensors"][0]["shape"] == [43, 8]


def test_tokenizer_with_pad_token_is_taken_as_is(tmp_path):
    size = _save_tokenizer(tmp_path, ["a", "b", "c"], pad=True)
    assert vocab_from_tokenizer(str(tmp_path)).vocab_size == size


def test_unknown_tokenizer_name_fails_fast_without_network(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    start = time.monotonic()
    result = runner.invoke(app, ["params", "--tokenizer", "surely-not-a-cached-model-xyz"])
    assert time.monotonic() - start < 30
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --tokenizer 'surely-not-a-cached-model-xyz': could not load")
    assert len(result.stderr.strip().splitlines()) == 1


def test_directory_without_tokenizer_files(tmp_path):
    result = runner.invoke(app, ["params", "--tokenizer", str(tmp_path)])
    assert result.exit_code == 2
    assert "could not load a tokenizer from that directory" in result.stderr
