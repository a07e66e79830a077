"""``lstm-inspect flops`` on the command line: JSON, grid, packed, budgets, bad values."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lstm_inspect.cli import app

TINY = ["--vocab-size", "13", "--embed-dim", "4", "--hidden-dim", "6", "--num-layers", "2"]


def run(*args: str):
    return CliRunner().invoke(app, ["flops", *args])


def tiny_macs(tokens: int) -> int:
    # LSTM layer 0: 4·6·(4 + 6), layer 1: 4·6·(6 + 6) per token; head 6·13 per token
    return tokens * (4 * 6 * (4 + 6) + 4 * 6 * (6 + 6) + 6 * 13)


def test_json_detail_has_integer_macs_and_flops():
    result = run(*TINY, "--batch", "2", "--seq", "3", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["schema"] == "lstm-inspect.flops/1"
    assert doc["view"] == "detail"
    assert doc["macs"] == tiny_macs(6) and isinstance(doc["macs"], int)
    assert isinstance(doc["flops"], int) and doc["flops"] > 2 * doc["macs"]
    assert doc["training"]["macs"] == 3 * doc["macs"] and doc["training"]["method"] == "closed form"
    assert doc["training"]["flops"] == doc["flops"] + doc["training"]["backward"]["flops"]
    assert doc["checks_ok"] is True
    assert [c["component"] for c in doc["components"]] == [
        "embedding", "recurrent layer 0 · forward", "recurrent layer 1 · forward", "projection"]
    assert all(0.0 <= m["macs_ratio"] <= 1.0 for m in doc["modules"])


def test_default_detail_table():
    result = run()
    assert result.exit_code == 0, result.output
    assert "1,537,130,496" in result.stdout
    assert "MISMATCH" not in result.stdout


def test_grid_json_cells():
    result = run(*TINY, "--batch-sizes", "1,4", "--seq-lens", "2,8", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["view"] == "grid"
    cells = {(c["batch_size"], c["seq_len"]): c for c in doc["cells"]}
    assert set(cells) == {(1, 2), (1, 8), (4, 2), (4, 8)}
    for (b, s), c in cells.items():
        assert c["macs"] == tiny_macs(b * s)


def test_grid_default_for_missing_list_and_source_spelling():
    result = run(*TINY, "--batch_sizes", "1", "2", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["batch_sizes"] == [1, 2] and doc["seq_lens"] == [32, 64, 128, 256]


def test_packed_lengths_json_and_file(tmp_path):
    result = run(*TINY, "--lengths", "5,3,1", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["macs"] == tiny_macs(9)
    assert doc["seq_len"] == 5 and doc["batch_size"] == 3
    assert doc["packed"]["padded_macs"] == tiny_macs(15)
    assert doc["packed"]["waste_ratio"] == pytest.approx(6 / 15)
    path = tmp_path / "lengths.txt"
    path.write_text("5\n3\n\n1\n")
    from_file = json.loads(run(*TINY, "--lengths", str(path), "--seq", "8", "--json").stdout)
    assert from_file["macs"] == tiny_macs(9) and from_file["packed"]["padded_macs"] == tiny_macs(24)


def test_time_estimate_json():
    result = run(*TINY, "--hardware", "a100-80gb", "--dtype", "bfloat16", "--json")
    assert result.exit_code == 0, result.output
    t = json.loads(result.stdout)["time_estimate"]
    assert t["peak_tflops"] == 312.0 and t["bound"] in ("compute", "memory")
    assert t["lower_bound_seconds"] == max(t["compute_seconds"], t["memory_seconds"])


def test_budget_exceeded_exits_1_naming_figure_and_budget():
    result = run(*TINY, "--max-macs", "100", "--json")
    assert result.exit_code == 1
    json.loads(result.stdout)  # the report is still printed
    assert "MACs" in result.stderr and "--max-macs" in result.stderr
    assert f"{tiny_macs(32):,}" in result.stderr
    ok = run(*TINY, "--max-macs", "1G")
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize("args, needle", [
    (["--batch-sizes", ""], "--batch-sizes"),
    (["--seq-lens", "4,,8"], "--seq-lens"),
    (["--batch", "0"], "--batch"),
    (["--seq", "-3"], "--seq"),
    (["--batch-sizes", "1,-2"], "--batch-sizes"),
    (["--lengths", "40,2", "--seq", "8"], "--lengths"),
    (["--lengths", "0,2"], "--lengths"),
    (["--hardware", "tpu-v9"], "h100-sxm"),
    (["--hardware", "t4", "--dtype", "bfloat16"], "bfloat16"),
    (["--dtype", "int4"], "--dtype"),
    (["--peak-tflops", "0"], "--peak-tflops"),
    (["--max-macs", "lots"], "--max-macs"),
    (["--lengths", "3,2", "--batch", "2"], "--batch"),
])
def test_bad_values_exit_2_one_line(args, needle):
    result = run(*TINY, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert needle in result.stderr
    assert "Traceback" not in result.output


def test_help_mentions_conventions():
    result = run("--help")
    assert result.exit_code == 0
    assert "--batch-sizes" in result.stdout and "--hardware" in result.stdout


def test_output_file_holds_the_same_json(tmp_path):
    path = tmp_path / "flops.json"
    result = run(*TINY, "--output", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(path.read_text()) == json.loads(result.stdout)
