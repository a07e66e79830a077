"""compare and report with the FLOPs and memory analyses: MACs against closed forms written here."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from lstm_inspect.cli import app
from tests.sources_helpers import pruned_state_dict, stack_total

runner = CliRunner()
ORIGINAL = "vocab_size=50,embed_dim=8,hidden_dim=12,num_layers=3"


def lstm_macs(tokens: int, vocab: int, embed: int, widths: list[int]) -> int:
    """Per token: each layer G·H·(I + H) multiply-accumulates (input and recurrent products), then the
    projection H_last·V; the embedding is a lookup (no MACs)."""
    per_token, inp = 0, embed
    for h in widths:
        per_token += 4 * h * (inp + h)
        inp = h
    return tokens * (per_token + inp * vocab)


def test_compare_costs_against_closed_forms(tmp_path):
    path = tmp_path / "pruned.pt"
    torch.save(pruned_state_dict("lstm", 50, 8, [12, 7]), path)
    result = runner.invoke(app, ["compare", ORIGINAL, str(path), "--batch", "3", "--seq", "5", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    original, pruned = lstm_macs(15, 50, 8, [12, 12, 12]), lstm_macs(15, 50, 8, [12, 7])
    assert doc["macs"] == {"original": original, "pruned": pruned, "reduced": original - pruned,
                           "reduction_ratio": (original - pruned) / original}
    assert doc["costs"][0]["macs"] == original and doc["costs"][1]["macs"] == pruned
    total_a, total_b = stack_total("lstm", 50, 8, [12, 12, 12]), stack_total("lstm", 50, 8, [12, 7])
    assert doc["weights_bytes"]["original"] == 4 * total_a and doc["weights_bytes"]["pruned"] == 4 * total_b
    memory = doc["memory_bytes"]
    assert memory is not None and memory["original"] > 0 and memory["pruned"] > 0
    assert memory["reduced"] == memory["original"] - memory["pruned"]

    # The memory figure is the memory command's estimate for the same cell.
    alone = runner.invoke(app, ["memory", "--json", "--model", ORIGINAL, "--batch-sizes", "3", "--seq-lens", "5",
                                "--method", "estimate"])
    assert alone.exit_code == 0, alone.output
    cells = json.loads(alone.stdout)["cells"]
    assert cells[0]["estimated_bytes"] == memory["original"]


def test_report_flops_and_memory_sections():
    result = runner.invoke(app, ["report", "--json", "--vocab-size", "40", "--embed-dim", "6", "--hidden-dim", "5",
                                 "--batch", "2", "--seq", "7", "--batch-sizes", "1,2", "--seq-lens", "4,8",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["flops"]["macs"] == lstm_macs(14, 40, 6, [5, 5])
    assert doc["memory"]["method"] == "estimate"
    assert [(c["batch_size"], c["seq_len"]) for c in doc["memory"]["cells"]] == [(1, 4), (1, 8), (2, 4), (2, 8)]
    assert doc["memory"]["weights_bytes"] == 4 * stack_total("lstm", 40, 6, [5, 5])
    assert doc["notes"] == []
