"""Every command at 40, 80 and 200 columns: the answer within the first 40 lines at 80 columns (figures computed
here, from closed forms or sum(p.numel()) of the model built the way its authors write it), and no shape,
name or number broken across lines or cut at any width."""

from __future__ import annotations

import functools
import json
import re

import pytest
import torch
from typer.testing import CliRunner

from lstm_inspect.cli import app
from lstm_inspect.units import grouped, human_bytes, human_count, mib
from tests.user_models import SimpleLSTMModel, unique_params

runner = CliRunner()
FIRST_SCREEN = 40
V, E, H, T = 50258, 768, 768, 32          # the built-in model and its sample input (batch 1 × seq 32)
GRID = ["--batch-sizes", "1,2", "--seq-lens", "8,16"]
COMMANDS = {
    "structure": ["structure"], "params": ["params"], "flops": ["flops"], "memory": ["memory", *GRID],
    "generation": ["generation"], "report": ["report", *GRID],
}
#: The words of the line naming the columns a narrow table leaves out (never a figure).
NOTE_WORDS = set("not shown at this width widen the terminal give --width or use --json column".split())
GLYPHS = re.compile(r"[\u2500-\u259f\s┆]+")
STAMP = re.compile(r"\d{4}-\d\d-\d\dT[\d:]+Z")     # report's generated_at differs from run to run


@functools.lru_cache(maxsize=None)
def _screen(args: tuple[str, ...], width: int) -> str:
    """The command's stdout at ``width`` columns (80: through COLUMNS, as a terminal gives it)."""
    if width == 80:
        result = runner.invoke(app, list(args), env={"COLUMNS": "80"})
    else:
        result = runner.invoke(app, ["--width", str(width), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def _json(args: tuple[str, ...]) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _first(args: list[str]) -> str:
    text = _screen(tuple(args), 80)
    return "\n".join(text.splitlines()[:FIRST_SCREEN])


def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.device("meta"):
        return GPT2LMHeadModel(GPT2Config())


def _builtin():
    with torch.device("meta"):
        return SimpleLSTMModel()


def _lstm_macs(h: int) -> int:
    """Two LSTM layers (the first fed E-wide embeddings) and the projection, T steps: D·N·G·H·(I + H_r)."""
    return T * 4 * h * (E + h) + T * 4 * h * (h + h) + T * h * V


def _lstm_params(h: int) -> int:
    return V * E + (4 * h * (E + h) + 8 * h) + (4 * h * (h + h) + 8 * h) + h * V + V


# ---- the first screen -------------------------------------------------------------------------------------

def _largest_leaf(model) -> int:
    return max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())


@pytest.mark.parametrize("source", ["builtin", "hf:gpt2"])
def test_structure_first_screen_has_the_total_and_the_largest_part(source):
    model = _builtin() if source == "builtin" else _gpt2()
    head = _first(["structure", "--model", source])
    assert human_count(unique_params(model)) in head
    assert human_count(_largest_leaf(model)) in head


@pytest.mark.parametrize("source", ["builtin", "hf:gpt2"])
def test_params_first_screen_has_the_total_and_the_largest_part(source):
    head = _first(["params", "--model", source])
    if source == "builtin":
        assert grouped(unique_params(_builtin())) in head
        assert re.search(rf"projection\s+│\s+{grouped(H * V + V)}", head)        # the largest component
    else:
        assert grouped(unique_params(_gpt2())) in head
        layers, d = 12, 768   # GPT-2's MLP: c_fc [768, 3072] + c_proj [3072, 768] and their biases, per block
        assert re.search(rf"Feed-forward\s+│\s+{grouped(layers * (2 * d * 4 * d + 4 * d + d))}", head)


def test_flops_first_screen_has_macs_flops_and_the_largest_part():
    head = _first(["flops"])
    macs = _lstm_macs(H)
    assert human_count(macs, "MACs") in head and grouped(macs) in head
    assert human_count(_json(("flops",))["flops"], "FLOPs") in head
    assert re.search(rf"projection \(proj\)\s+│\s+│\s+{grouped(T * H * V)}", head)
    # GPT-2, per block: qkv and output projections, scores and weighted values, the MLP; then the head
    d, ff = 768, 3072
    block = T * d * 3 * d + T * d * d + 2 * T * T * d + 2 * T * d * ff
    head = _first(["flops", "--model", "hf:gpt2"])
    assert human_count(12 * block + T * d * 50257, "MACs") in head and grouped(12 * block + T * d * 50257) in head
    assert grouped(12 * 2 * T * d * ff) in head          # feed-forward of all 12 blocks, the largest part


def test_memory_first_screen_has_the_largest_cell_marked():
    doc = _json(tuple(COMMANDS["memory"]))
    top = max(doc["cells"], key=lambda c: c["estimated_bytes"])
    head = _first(COMMANDS["memory"])
    assert f"{mib(top['estimated_bytes'])} █" in head
    assert f"largest: batch {top['batch_size']} × seq {top['seq_len']}" in head


@pytest.mark.parametrize("source", ["builtin", "hf:gpt2"])
def test_generation_first_screen_has_the_state_and_the_largest_total(source):
    context, batch = 131072, 32
    if source == "builtin":
        state, weights, vocab = 2 * 2 * H * 4, 4 * unique_params(_builtin()), V   # h and c of 2 layers
    else:
        state, weights, vocab = 2 * 12 * 768 * 4 * context, 4 * unique_params(_gpt2()), 50257   # K and V
    head = _first(["generation", "--model", source])
    assert human_bytes(state) in head
    assert human_bytes(weights + batch * (state + 4 * vocab)) in head   # + each sequence's logits row


def test_compare_first_screen_has_both_totals_and_costs():
    head = _first(["compare", "builtin", "hidden_dim=384"])
    for h in (768, 384):
        assert grouped(_lstm_params(h)) in head
        assert human_count(_lstm_macs(h), "MACs") in head
    assert "Side by side" in head


def test_report_opens_with_the_summary():
    doc = _json(tuple(COMMANDS["report"]))
    top = max(doc["memory"]["cells"], key=lambda c: c["estimated_bytes"])
    head = "\n".join(_screen(tuple(COMMANDS["report"]), 80).splitlines()[:20])
    assert grouped(unique_params(_builtin())) in head
    assert human_count(_lstm_macs(H), "MACs") in head and human_count(doc["flops"]["flops"], "FLOPs") in head
    assert re.search(r"largest\s+projection 44\.\d\d%", head) and "most FLOPs   projection" in head
    assert human_bytes(top["estimated_bytes"]) in head and f"batch {top['batch_size']} × seq {top['seq_len']}" in head


# ---- no token split, no number cut ------------------------------------------------------------------------

def _words(text: str) -> set[str]:
    return {w.strip(",;:()") for w in GLYPHS.split(STAMP.sub(" ", text))} - {""}


def _broken_shapes(text: str) -> list[str]:
    """Lines where a shape ``[1, 32, 768]`` opens and does not close (in a table: in the same cell)."""
    bad = []
    for line in text.splitlines():
        for cell in re.split(r"[│┃]", line):
            rest = re.sub(r"\[[\d, ]*\]", "", cell).strip()
            if re.search(r"\[[\d, ]*$", rest) or re.match(r"^[\d, ]+\]", rest):
                bad.append(line)
    return bad


CASES = [(name, source) for name in COMMANDS for source in ("builtin", "hf:gpt2")] + [("compare", "builtin")]


@pytest.mark.parametrize("width", [40, 80])
@pytest.mark.parametrize("name,source", CASES)
def test_no_token_split_and_no_number_cut(name, source, width):
    if name == "compare":
        args: tuple[str, ...] = ("compare", "builtin", "hidden_dim=384")
    else:
        args = (*COMMANDS[name], "--model", source)
    text, wide = _screen(args, width), _screen(args, 200)
    assert max(len(line) for line in text.splitlines()) <= width
    assert max(len(line) for line in wide.splitlines()) <= 200
    # Every word at this width is a word of the 200-column output: a number cut (86,696…) or split over two
    # lines, a name folded mid-word, would be a word of its own.
    assert _words(text) - _words(wide) - NOTE_WORDS - {str(n) for n in range(1, 10)} == set()
    assert _broken_shapes(text) == [] and _broken_shapes(wide) == []
