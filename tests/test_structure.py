"""The structure tree: shapes traced without allocation, recurrent detail, rendering limits."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lstm_inspect.analyses.structure import describe_structure
from lstm_inspect.cli import app
from lstm_inspect.source import load_builtin
from lstm_inspect.spec import ModelSpec

runner = CliRunner()


def _children(node):
    return {c["name"]: c for c in node["children"]}


@settings(max_examples=25, deadline=None)
@given(
    cell=st.sampled_from(["lstm", "gru", "rnn"]),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    batch=st.integers(1, 5),
    seq=st.integers(1, 40),
)
def test_traced_shapes_follow_the_spec(cell, layers, bidirectional, batch_first, batch, seq):
    spec = ModelSpec(cell=cell, vocab_size=97, embed_dim=12, hidden_dim=10, num_layers=layers,
                     bidirectional=bidirectional, batch_first=batch_first)
    report = describe_structure(load_builtin(spec), batch=batch, seq=seq)
    dirs = 2 if bidirectional else 1
    lead = [batch, seq] if batch_first else [seq, batch]
    kids = {c.name: c for c in report.root.children}
    assert report.root.output_shape == lead + [97]
    assert kids["embed"].output_shape == lead + [12]
    assert kids[cell].output_shape[0] == lead + [10 * dirs]
    detail = kids[cell].recurrent
    assert len(detail.layers) == layers * dirs
    assert detail.state_shapes["h_n"] == [layers * dirs, batch, 10]
    if cell == "lstm":
        assert detail.state_shapes["c_n"] == [layers * dirs, batch, 10]
    else:
        assert "c_n" not in detail.state_shapes
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    first = detail.layers[0].tensors
    assert {t.name: t.shape for t in first}["weight_ih_l0"] == (gates * 10, 12)


def test_proj_size_state_shapes_and_weight_hr():
    spec = ModelSpec(embed_dim=16, hidden_dim=32, proj_size=8, vocab_size=50, num_layers=2)
    rnn = next(c for c in describe_structure(load_builtin(spec), batch=3, seq=5).root.children if c.name == "lstm")
    assert rnn.recurrent.state_shapes == {"h_n": [2, 3, 8], "c_n": [2, 3, 32]}
    shapes = {t.name: t.shape for layer in rnn.recurrent.layers for t in layer.tensors}
    assert shapes["weight_hr_l0"] == (8, 32)
    assert shapes["weight_hh_l1"] == (128, 8)
    assert shapes["weight_ih_l1"] == (128, 8)


def test_huge_config_traces_without_allocating():
    """4 billion parameters would need 16 GB; tracing must not allocate them.

    In a child process: the test process's peak RSS holds whatever earlier tests allocated. The child reads
    its own high-water mark (``VmHWM``): ``ru_maxrss`` survives ``exec`` and starts at the RSS of the pytest
    process that forked the child, so it fails once earlier tests leave that process large.
    """
    import subprocess
    import sys

    child = (
        "import resource, json\n"
        "from lstm_inspect import ModelSpec, load_builtin, describe_structure\n"
        "report = describe_structure(load_builtin(ModelSpec(embed_dim=8192, hidden_dim=8192, num_layers=8)),"
        " batch=8, seq=2048)\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    peak = int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1])\n"
        "except (OSError, StopIteration):\n"
        "    pass\n"
        "print(json.dumps([report.root.params, report.root.output_shape, peak]))\n"
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    params, shape, peak_kib = json.loads(done.stdout.strip().splitlines()[-1])
    assert params > 4_000_000_000
    assert shape == [8, 2048, 50258]
    assert peak_kib < 2 * 1024 * 1024  # far below the 16 GB the weights would take


def test_structure_json_and_depth():
    result = runner.invoke(app, ["structure", "--json", "--hidden-dim", "16", "--embed-dim", "8", "--vocab-size", "40"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["schema"] == "lstm-inspect.structure/1"
    rnn = _children(doc["tree"])["lstm"]
    assert rnn["recurrent"]["gate_order"] == "i, f, g, o"
    assert rnn["recurrent"]["state_shapes"]["c_n"] == [2, 1, 16]
    assert {e["component"] for e in doc["explanations"]} >= {"nn.Embedding", "nn.LSTM", "nn.Linear"}

    shallow = runner.invoke(app, ["structure", "--depth", "1"])
    deep = runner.invoke(app, ["structure"])
    assert shallow.exit_code == 0 and deep.exit_code == 0
    assert "weight_ih_l0" in deep.stdout and "weight_ih_l0" not in shallow.stdout
    assert "Main components" in deep.stdout


def test_structure_rejects_bad_sizes():
    for args, fragment in ((["--batch", "0"], "--batch must be at least 1"),
                           (["--seq", "-1"], "--seq must be at least 1"),
                           (["--depth", "0"], "--depth must be at least 1")):
        result = runner.invoke(app, ["structure", *args])
        assert result.exit_code == 2
        assert fragment in result.stderr and "Traceback" not in result.output
