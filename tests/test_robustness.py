"""Bad input, one case per line: every option of every command, wrong type, out of range, empty, huge,
unknown names, missing / unreadable / corrupt files.

Each case states the documented exit code (0 ok, 1 budget exceeded, 2 invalid input, 3 the work failed)
and the text the last line of stderr must name (the option, or the file). On every case: no traceback
anywhere; on an error, stdout is empty and the last line of stderr is one ``error: ...`` (or
``budget exceeded: ...``) line. Files are made in ``tmp_path``; ``{tmp}`` in an argument stands for it.
Models are tiny (``TINY``) unless the case is about size; "huge" cases must answer without allocating
(structure, params, flops, memory's estimate) or be refused cleanly (memory's measurement).
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

import pytest
from typer.testing import CliRunner

from lstm_inspect.cli import app

runner = CliRunner()

TINY = ["--embed-dim", "8", "--hidden-dim", "8", "--vocab-size", "50"]
#: What each command gets before the case's own arguments (Click keeps the last value of an option,
#: so a case overrides these by giving the option again).
BASE = {
    "structure": TINY + ["--seq", "4"],
    "params": TINY,
    "flops": TINY,
    "memory": TINY + ["--batch-sizes", "1,2", "--seq-lens", "4", "--method", "estimate"],
    "report": TINY + ["--batch-sizes", "1", "--seq-lens", "4", "--seq", "4", "--device", "cpu"],
    "compare": [],
    "generation": TINY + ["--contexts", "1,8"],
}
#: A model big enough to overflow any memory if it were allocated (2**20 hidden, 1024 layers: ~2**55 bytes).
HUGE = ["--hidden-dim", "1048576", "--num-layers", "1024", "--embed-dim", "8", "--vocab-size", "50"]
BIG = str(2**31 - 1)


class Case(NamedTuple):
    command: str
    args: list
    code: int | tuple          # expected exit code (a tuple: any of these)
    names: str                 # text the last line of stderr must contain on an error ("" on success)
    base: bool = True          # prepend BASE[command]
    printed: bool = False      # the report is still printed on stdout before the error (no figure in it)


CASES = [
    # ---- model flags (shared by structure, params, flops, memory, report) ----------------------------
    Case("params", ["--cell", "lsmt"], 2, "--cell"),
    Case("params", ["--cell", ""], 2, "--cell"),
    Case("structure", ["--cell", "transformer"], 2, "--cell"),
    Case("params", ["--vocab-size", "abc"], 2, "--vocab-size"),
    Case("params", ["--vocab-size", ""], 2, "--vocab-size"),
    Case("params", ["--vocab-size", "0"], 2, "--vocab-size"),
    Case("params", ["--vocab-size", "-3"], 2, "--vocab-size"),
    Case("params", ["--vocab-size", "1.5"], 2, "--vocab-size"),
    Case("params", ["--vocab-size", "99999999999999999999999"], 2, "--vocab-size"),
    Case("params", ["--embed-dim", "x"], 2, "--embed-dim"),
    Case("params", ["--embed-dim", "0"], 2, "--embed-dim"),
    Case("params", ["--embed-dim", "4611686018427387904"], 2, "--embed-dim"),
    Case("params", ["--hidden-dim", "-1"], 2, "--hidden-dim"),
    Case("params", ["--hidden-dim", ""], 2, "--hidden-dim"),
    Case("params", ["--hidden-dim", "1e3"], 2, "--hidden-dim"),
    Case("params", ["--num-layers", "0"], 2, "--num-layers"),
    Case("params", ["--num-layers", "two"], 2, "--num-layers"),
    Case("params", ["--num-layers", "100000000"], 2, "--num-layers"),
    Case("params", ["--proj-size", "-1"], 2, "--proj-size"),
    Case("params", ["--proj-size", "8"], 2, "--proj-size"),           # must be < hidden
    Case("params", ["--proj-size", "4", "--cell", "gru"], 2, "--proj-size"),
    Case("params", ["--proj-size", "z"], 2, "--proj-size"),
    Case("params", ["--dropout", "1.5"], 2, "--dropout"),
    Case("params", ["--dropout", "-0.1"], 2, "--dropout"),
    Case("params", ["--dropout", "nan"], 2, "--dropout"),
    Case("params", ["--dropout", "half"], 2, "--dropout"),
    Case("params", ["--bidirectional=yes"], 2, "--bidirectional"),
    Case("params", ["--no-bias=1"], 2, "--no-bias"),
    Case("params", ["--batch-first=0"], 2, "--batch-first"),
    Case("params", ["--tie-weights", "--embed-dim", "16"], 2, "--tie-weights"),   # widths differ
    Case("params", ["--tie-weights", "--bidirectional"], 2, "--tie-weights"),
    Case("params", ["--tokenizer", ""], 2, "--tokenizer", base=False),
    Case("params", ["--tokenizer", "{tmp}/no-such-dir"], 2, "--tokenizer", base=False),
    Case("params", ["--tokenizer", "{tmp}/lengths.txt"], 2, "--tokenizer", base=False),     # a file, not a dir
    Case("params", ["--tokenizer", "{tmp}/bad-tokenizer"], 2, "--tokenizer", base=False),   # corrupt tokenizer.json
    Case("params", ["--tokenizer", "no-such-org/no-such-tokenizer"], 2, "--tokenizer", base=False),
    Case("params", ["--tokenizer", "{tmp}/bad-tokenizer", "--vocab-size", "50"], 2, "--tokenizer", base=False),
    Case("params", ["--vocab-size"], 2, "--vocab-size"),                # no value at all
    Case("params", ["--frobnicate", "3"], 2, "--frobnicate"),            # unknown option
    # ---- --model: unknown names, missing / unreadable / corrupt files -----------------------------------
    Case("params", ["--model", ""], 2, "--model", base=False),
    Case("params", ["--model", "hf:"], 2, "--model", base=False),
    Case("params", ["--model", "hf:no_such_model_type"], 2, "--model", base=False),
    Case("params", ["--model", "no_such_pkg.models:build"], 2, "--model", base=False),
    Case("params", ["--model", "os.path:no_such_factory"], 2, "--model", base=False),
    Case("params", ["--model", "os:sep"], 2, "--model", base=False),             # not callable
    Case("params", ["--model", "os:getcwd"], 3, "--model", base=False),          # returns a str, not a Module
    Case("params", ["--model", "hidden_dim=abc"], 2, "hidden_dim", base=False),
    Case("params", ["--model", "hidden_size=8"], 2, "hidden_size", base=False),  # unknown key
    Case("params", ["--model", "hidden_dim=0"], 2, "hidden_dim", base=False),
    Case("params", ["--model", "hidden_dim=1048577"], 2, "hidden_dim", base=False),
    Case("params", ["--model", "nonsense"], 2, "--model", base=False),
    Case("params", ["--model", "{tmp}/missing.pt"], 2, "missing.pt", base=False),
    Case("params", ["--model", "{tmp}/missing.safetensors"], 2, "missing.safetensors", base=False),
    Case("params", ["--model", "{tmp}/notes.txt"], 2, "notes.txt", base=False),       # unsupported type
    Case("params", ["--model", "{tmp}"], 2, "config.json", base=False),               # dir without config
    Case("params", ["--model", "{tmp}/corrupt.pt"], 3, "corrupt.pt", base=False),
    Case("params", ["--model", "{tmp}/empty.pt"], 3, "empty.pt", base=False),
    Case("params", ["--model", "{tmp}/corrupt.safetensors"], 3, "corrupt.safetensors", base=False),
    Case("params", ["--model", "{tmp}/corrupt.json"], 3, "corrupt.json", base=False),
    Case("params", ["--model", "{tmp}/list.json"], 3, "list.json", base=False),
    Case("params", ["--model", "{tmp}/badkey.json"], 2, "hidden_size", base=False),
    Case("params", ["--model", "{tmp}/badvalue.toml"], 2, "hidden_dim", base=False),
    Case("params", ["--model", "{tmp}/corrupt.toml"], 3, "corrupt.toml", base=False),
    Case("params", ["--model", "{tmp}/hf-bad-type.json"], 2, "hf-bad-type.json", base=False),
    Case("params", ["--model", "{tmp}/deep.json"], 3, "deep.json", base=False),           # nested 100000 deep
    Case("params", ["--model", "{tmp}/deep.toml"], 3, "deep.toml", base=False),
    Case("params", ["--model", "{tmp}/hf-deep"], (2, 3), "hf-deep", base=False),          # its config.json
    Case("params", ["--model", "{tmp}/linear.pt"], 0, "", base=False),                    # another architecture: counted
    Case("structure", ["--model", "{tmp}/linear.pt"], 3, "linear.pt", base=False),        # ... but it cannot run
    Case("params", ["--model", "{tmp}/module.pt"], 3, "module.pt", base=False),           # a pickled module: refused
    Case("params", ["--model", "{tmp}/module.pt", "--trust-pickle"], 0, "", base=False),  # ... unless trusted
    Case("compare", ["builtin", "{tmp}/module.pt"], 3, "model 2", base=False),
    Case("compare", ["builtin", "{tmp}/module.pt", "--trust-pickle"], 0, "", base=False),
    Case("params", ["--model", "{tmp}/list.pt"], 3, "list.pt", base=False),
    Case("params", ["--model", "{tmp}/truncated.pt"], 3, "truncated.pt", base=False),
    Case("params", ["--model", "{tmp}/unreadable.pt"], (2, 3), "unreadable.pt", base=False),
    Case("params", ["--model", "{tmp}/unreadable.json"], (2, 3), "unreadable.json", base=False),
    Case("params", ["--model", "{tmp}/tiny.pt", "--hidden-dim", "16"], 2, "--hidden-dim", base=False),
    Case("structure", ["--model", "{tmp}/corrupt.pt"], 3, "corrupt.pt", base=False),
    Case("flops", ["--model", "hf:no_such_model_type"], 2, "--model", base=False),
    Case("memory", ["--model", "{tmp}/missing.pt", "--batch-sizes", "1", "--seq-lens", "4"], 2, "missing.pt",
         base=False),
    Case("report", ["--model", "{tmp}/corrupt.safetensors", "--batch-sizes", "1", "--seq-lens", "4"], 3,
         "corrupt.safetensors", base=False),
    # ---- huge: answered without allocating, or refused cleanly --------------------------------------------
    Case("params", HUGE + ["--json"], 0, "", base=False),
    Case("structure", HUGE + ["--depth", "1"], 0, "", base=False),
    Case("flops", HUGE + ["--json"], 0, "", base=False),
    Case("memory", HUGE + ["--batch-sizes", "1", "--seq-lens", "4", "--method", "estimate", "--json"], 0, "",
         base=False),
    Case("memory", HUGE + ["--batch-sizes", "1", "--seq-lens", "4", "--method", "measure", "--device", "cpu"],
         3, "weights", base=False),
    # estimate only, nothing allocated; the one cell overflows torch's storage size: no figure, so exit 3
    Case("memory", ["--batch-sizes", BIG, "--seq-lens", BIG, "--json"], 3, "1 of 1 cells failed", printed=True),
    Case("memory", ["--batch-sizes", str(2**31), "--seq-lens", "4"], 2, "--batch-sizes"),
    Case("memory", ["--trace-every-cell=yes"], 2, "--trace-every-cell"),
    Case("memory", ["--seq-lens", "99999999999999999999"], 2, "--seq-lens"),
    Case("structure", ["--batch", "65536", "--seq", "65536", "--json"], 0, ""),
    Case("structure", ["--batch", BIG, "--seq", BIG], 2, "--batch"),
    Case("structure", ["--batch", str(2**31)], 2, "--batch"),
    Case("flops", ["--batch", "16777216", "--seq", "16777216", "--vocab-size", "50258"], 2, "--batch"),
    Case("flops", ["--batch", "16777217"], 2, "--batch"),
    Case("report", ["--batch", BIG, "--seq", BIG], 2, "--batch"),
    Case("compare", ["builtin", "hidden_dim=8", "--batch", BIG, "--seq", BIG], (0, 2), "--batch"),
    # ---- structure -----------------------------------------------------------------------------------
    Case("structure", ["--batch", "0"], 2, "--batch"),
    Case("structure", ["--batch", "abc"], 2, "--batch"),
    Case("structure", ["--batch", ""], 2, "--batch"),
    Case("structure", ["--seq", "-4"], 2, "--seq"),
    Case("structure", ["--seq", "2.5"], 2, "--seq"),
    Case("structure", ["--depth", "0"], 2, "--depth"),
    Case("structure", ["--output", "{tmp}/no-such-folder/s.json"], 2, "--output"),
    Case("params", ["--output", "{tmp}"], 2, "--output"),
    Case("memory", ["--batch-sizes", "1", "--seq-lens", "4", "--output", ""], 2, "--output"),
    Case("structure", ["--depth", "deep"], 2, "--depth"),
    Case("structure", ["--json=1"], 2, "--json"),
    Case("structure", ["--proj-size", "8"], 2, "--proj-size"),
    Case("structure", ["--dropout", "1"], 2, "--dropout"),
    # ---- params --------------------------------------------------------------------------------------
    Case("params", ["--top", "0"], 2, "--top"),
    Case("params", ["--top", "-5"], 2, "--top"),
    Case("params", ["--top", "many"], 2, "--top"),
    Case("params", ["--all=no"], 2, "--all"),
    Case("structure", ["--all=no"], 2, "--all"),
    Case("memory", ["--plot", "chart.gif"], 2, "--plot"),
    Case("compare", ["hidden_dim=8", "hidden_dim=4", "--plot", "chart.txt"], 2, "--plot"),
    Case("generation", ["--plot", "chart.jpg"], 2, "--plot"),
    Case("memory", ["--chart=no"], 2, "--chart"),
    Case("generation", ["--chart=no"], 2, "--chart"),
    Case("compare", ["hidden_dim=8", "hidden_dim=4", "--chart=no"], 2, "--chart"),
    Case("flops", ["--all=no"], 2, "--all"),
    Case("params", ["--max-params", "abc"], 2, "--max-params"),
    Case("params", ["--max-params", ""], 2, "--max-params"),
    Case("params", ["--max-params", "0"], 2, "--max-params"),
    Case("params", ["--max-params", "-5M"], 2, "--max-params"),
    Case("params", ["--max-params", "5 parsecs"], 2, "--max-params"),
    Case("params", ["--max-params", "1e400"], 2, "--max-params"),
    Case("params", ["--max-params", "nan"], 2, "--max-params"),
    Case("params", ["--max-params", "10"], 1, "--max-params"),
    # ---- flops ---------------------------------------------------------------------------------------
    Case("flops", ["--batch", "0"], 2, "--batch"),
    Case("flops", ["--batch", "x"], 2, "--batch"),
    Case("flops", ["--seq", "0"], 2, "--seq"),
    Case("flops", ["--seq", ""], 2, "--seq"),
    Case("flops", ["--batch-sizes", ""], 2, "--batch-sizes"),
    Case("flops", ["--batch-sizes", "1,,2"], 2, "--batch-sizes"),
    Case("flops", ["--batch-sizes", "one"], 2, "--batch-sizes"),
    Case("flops", ["--batch-sizes", "0,1"], 2, "--batch-sizes"),
    Case("flops", ["--batch-sizes", "99999999999"], 2, "--batch-sizes"),
    Case("flops", ["--seq-lens", "-4"], 2, "--seq-lens"),
    Case("flops", ["--seq-lens", "4.5"], 2, "--seq-lens"),
    Case("flops", ["--batch-sizes", "1", "--batch", "2"], 2, "--batch"),
    Case("flops", ["--lengths", ""], 2, "--lengths"),
    Case("flops", ["--lengths", "3,0"], 2, "--lengths"),
    Case("flops", ["--lengths", "3,x"], 2, "--lengths"),
    Case("flops", ["--lengths", "5,3", "--seq", "4"], 2, "--lengths"),
    Case("flops", ["--lengths", "3", "--batch", "2"], 2, "--lengths"),
    Case("flops", ["--lengths", "99999999"], 2, "--lengths"),
    Case("flops", ["--lengths", "{tmp}/missing-lengths.txt"], 2, "--lengths"),
    Case("flops", ["--lengths", "{tmp}/empty.txt"], 2, "--lengths"),
    Case("flops", ["--lengths", "{tmp}/junk-lengths.txt"], 2, "--lengths"),
    Case("flops", ["--lengths", "{tmp}/binary.bin"], 2, "--lengths"),
    Case("flops", ["--lengths", "{tmp}"], 2, "--lengths"),                            # a folder
    Case("flops", ["--lengths", "{tmp}/unreadable-lengths.txt"], 2, "--lengths"),
    Case("flops", ["--lengths", "{tmp}/lengths.txt", "--json"], 0, ""),
    Case("flops", ["--hardware", "abacus"], 2, "--hardware"),
    Case("flops", ["--hardware", ""], 2, "--hardware"),
    Case("flops", ["--peak-tflops", "0"], 2, "--peak-tflops"),
    Case("flops", ["--peak-tflops", "-1"], 2, "--peak-tflops"),
    Case("flops", ["--peak-tflops", "nan"], 2, "--peak-tflops"),
    Case("flops", ["--peak-tflops", "inf"], 2, "--peak-tflops"),
    Case("flops", ["--peak-tflops", "fast"], 2, "--peak-tflops"),
    Case("flops", ["--dtype", "float8"], 2, "--dtype"),
    Case("flops", ["--dtype", ""], 2, "--dtype"),
    Case("flops", ["--cell", "GRUU"], 2, "--cell"),
    Case("flops", ["--tie-weights", "--hidden-dim", "16"], 2, "--tie-weights"),
    Case("flops", ["--num-layers", "-2"], 2, "--num-layers"),
    Case("flops", ["--hardware", "t4", "--batch-sizes", "1"], 2, "--hardware"),
    Case("flops", ["--max-macs", "lots"], 2, "--max-macs"),
    Case("flops", ["--max-macs", "0"], 2, "--max-macs"),
    Case("flops", ["--max-macs", "1Q"], 2, "--max-macs"),
    Case("flops", ["--max-macs", "10"], 1, "--max-macs"),
    Case("flops", ["--output", "{tmp}/no-such-folder/f.json"], 2, "--output"),
    Case("flops", ["--output", "{tmp}"], 2, "--output"),                               # a folder
    Case("flops", ["--output", ""], 2, "--output"),
    Case("flops", ["--output", "{tmp}/ro/f.json"], 2, "--output"),                     # unwritable folder
    # ---- memory --------------------------------------------------------------------------------------
    Case("memory", ["--batch-sizes", ""], 2, "--batch-sizes"),
    Case("memory", ["--batch-sizes", "a,b"], 2, "--batch-sizes"),
    Case("memory", ["--batch-sizes", "0"], 2, "--batch-sizes"),
    Case("memory", ["--batch-sizes", "2,2"], 2, "--batch-sizes"),
    Case("memory", ["--seq-lens", ","], 2, "--seq-lens"),
    Case("memory", ["--seq-lens", "-1"], 2, "--seq-lens"),
    Case("memory", ["--lengths", "0"], 2, "--lengths"),
    Case("memory", ["--lengths", "{tmp}/missing-lengths.txt"], 2, "--lengths"),
    Case("memory", ["--lengths", "{tmp}/junk-lengths.txt"], 2, "--lengths"),
    Case("memory", ["--lengths", "3,2", "--budget", "1GiB"], 2, "--budget"),
    Case("memory", ["--method", "guess"], 2, "--method"),
    Case("memory", ["--method", ""], 2, "--method"),
    Case("memory", ["--mode", "eval"], 2, "--mode"),
    Case("memory", ["--optimizer", "lion", "--mode", "train"], 2, "--optimizer"),
    Case("memory", ["--optimizer", "adam"], 2, "--optimizer"),                          # needs --mode train
    Case("memory", ["--dtype", "int8"], 2, "--dtype"),
    Case("memory", ["--train-loop", "fast", "--mode", "train"], 2, "--train-loop"),
    Case("memory", ["--train-loop", "lean"], 2, "--train-loop"),                        # needs --mode train
    Case("memory", ["--mode", "train", "--train-loop", "lean", "--json"], 0, ""),
    Case("generation", ["--contexts", "0"], 2, "--contexts"),
    Case("generation", ["--contexts", "1,1"], 2, "--contexts"),
    Case("generation", ["--contexts", str(2**30)], 2, "--contexts"),
    Case("generation", ["--batch-sizes", "a"], 2, "--batch-sizes"),
    Case("generation", ["--dtype", "int4"], 2, "--dtype"),
    Case("generation", ["--budget", "lots"], 2, "--budget"),
    Case("generation", ["--json=yes"], 2, "--json"),
    Case("generation", ["--output", ""], 2, "--output"),
    Case("generation", HUGE + ["--json"], 0, ""),
    Case("generation", ["--budget", "1KiB", "--json"], 0, ""),
    Case("memory", ["--device", "tpu"], 2, "--device"),
    Case("memory", ["--device", ""], 2, "--device"),
    Case("memory", ["--device", "cuda:abc"], 2, "--device"),
    Case("memory", ["--device", "cuda:-1"], 2, "--device"),
    Case("memory", ["--budget", "0GiB"], 2, "--budget"),
    Case("memory", ["--budget", "big"], 2, "--budget"),
    Case("memory", ["--budget", "24 parsecs"], 2, "--budget"),
    Case("memory", ["--max-memory", ""], 2, "--max-memory"),
    Case("memory", ["--max-memory", "-1MiB"], 2, "--max-memory"),
    Case("memory", ["--max-memory", "1B"], 1, "--max-memory"),
    Case("memory", ["--json=true"], 2, "--json"),
    Case("memory", ["--cell", "lstm-gru"], 2, "--cell"),
    Case("memory", ["--dropout", "nan"], 2, "--dropout"),
    Case("memory", ["--tokenizer", "{tmp}/no-such-dir"], 2, "--tokenizer", base=False),
    Case("memory", ["--lengths", "{tmp}/lengths.txt", "--json"], 0, ""),
    Case("memory", ["--method", "measure", "--device", "cpu", "--json"], 0, ""),
    Case("memory", ["--mode", "train", "--optimizer", "adam", "--method", "both", "--device", "cpu", "--json"], 0, ""),
    # ---- report --------------------------------------------------------------------------------------
    Case("report", ["--batch", "0"], 2, "--batch"),
    Case("report", ["--seq", "x"], 2, "--seq"),
    Case("report", ["--batch-sizes", "1,x"], 2, "--batch-sizes"),
    Case("report", ["--seq-lens", ""], 2, "--seq-lens"),
    Case("report", ["--seq-lens", "0"], 2, "--seq-lens"),
    Case("report", ["--batch-sizes", "99999999999999999999"], 2, "--batch-sizes"),
    Case("report", ["--seq-lens", "4," + BIG + "0"], 2, "--seq-lens"),
    Case("report", ["--device", "tpu"], 2, "--device"),
    Case("report", ["--device", ""], 2, "--device"),
    Case("report", ["--depth", "0"], 2, "--depth"),
    Case("report", ["--top", "-1"], 2, "--top"),
    Case("report", ["--top", "abc"], 2, "--top"),
    Case("report", ["--output", "{tmp}/no-such-folder/r.json"], 2, "--output"),
    Case("report", ["--batch-sizes", "2,2"], 2, "--batch-sizes"),
    Case("report", ["--output", ""], 2, "--output"),
    Case("report", ["--cell", "lstm2"], 2, "--cell"),
    Case("report", ["--max-params", "lots"], 2, "--max-params"),
    Case("report", ["--max-macs", "0"], 2, "--max-macs"),
    Case("report", ["--max-memory", "1x"], 2, "--max-memory"),
    Case("report", ["--batch-sizes", "1", "--seq-lens", "4", "--max-params", "10", "--max-macs", "10",
                    "--max-memory", "1KiB"], 1, "--max-memory"),
    Case("report", ["--dropout", "2"], 2, "--dropout"),
    Case("report", ["--proj-size", "9"], 2, "--proj-size"),
    Case("report", ["--json=yes"], 2, "--json"),
    # ---- compare -------------------------------------------------------------------------------------
    Case("compare", [], 2, "'sources'"),
    Case("compare", ["builtin"], 2, "two"),
    Case("compare", ["builtin", "hidden_dim=8", "--batch", "0"], 2, "--batch"),
    Case("compare", ["builtin", "hidden_dim=8", "--batch", "x"], 2, "--batch"),
    Case("compare", ["builtin", "hidden_dim=8", "--seq", "-1"], 2, "--seq"),
    Case("compare", ["builtin", "hidden_dim=8", "--seq", ""], 2, "--seq"),
    Case("compare", ["hidden_dim=8", "{tmp}/missing.pt"], 2, "missing.pt"),
    Case("compare", ["hidden_dim=8", "{tmp}/corrupt.pt"], 3, "corrupt.pt"),
    Case("compare", ["hidden_dim=8", "hf:no_such_model_type"], 2, "no_such_model_type"),
    Case("compare", ["hidden_dim=8", "no_such_pkg.models:build"], 2, "no_such_pkg"),
    Case("compare", ["hidden_dim=8", "hidden_dim=banana"], 2, "hidden_dim"),
    Case("compare", ["hidden_dim=8", ""], 2, "model 2"),
    Case("compare", ["hidden_dim=8", "hidden_dim=4", "--output", "{tmp}/no-such-folder/c.json"], 2, "--output"),
    Case("compare", ["hidden_dim=8", "hidden_dim=4", "--name-a", "x", "--name-b"], 2, "--name-b"),
    Case("compare", ["hidden_dim=8", "hidden_dim=4", "--verbose=1"], 2, "--verbose"),
    Case("compare", ["hidden_dim=8", "hidden_dim=4", "--json=1"], 2, "--json"),
    Case("compare", ["hidden_dim=8", "hidden_dim=4", "--name-a", "", "--name-b", "", "--json"], 0, ""),
    # ---- paths that are not regular files, cannot be looked up, or are unbounded (issue 13) ---------------
    Case("params", ["--model", "{tmp}/fifo.json"], 2, "FIFO", base=False),             # would block forever
    Case("params", ["--model", "{tmp}/fifo.pt"], 2, "FIFO", base=False),
    Case("params", ["--model", "{tmp}/fifo.safetensors"], 2, "FIFO", base=False),
    Case("params", ["--model", "{tmp}/zero.json"], 2, "character device", base=False),  # link to /dev/zero
    Case("params", ["--model", "{tmp}/random.toml"], 2, "character device", base=False),  # link to /dev/urandom
    Case("params", ["--model", "{tmp}/hf-fifo"], 2, "config.json", base=False),         # its config.json is a FIFO
    Case("params", ["--model", "{tmp}/huge.json"], 3, "huge.json", base=False),         # past the spec size bound
    Case("params", ["--model", "{tmp}/" + "m" * 300 + ".pt"], 2, "longer than", base=False),
    Case("flops", ["--lengths", "{tmp}/fifo.txt"], 2, "--lengths"),
    Case("flops", ["--lengths", "{tmp}/zero.txt"], 2, "--lengths"),
    Case("memory", ["--lengths", "{tmp}/" + "l" * 300 + ".txt"], 2, "--lengths"),
    Case("params", ["--tokenizer", "{tmp}/fifo-tokenizer"], 2, "--tokenizer", base=False),  # tokenizer.json a FIFO
    Case("params", ["--output", "{tmp}/" + "o" * 300 + ".json"], 2, "--output"),
    Case("params", ["--output", "{tmp}/" + "o" * 250 + ".json", "--json"], 0, ""),     # long, allowed: a short temp name
    Case("params", ["--output", "{tmp}/newdir/"], 2, "--output"),                       # not a file named newdir
    Case("report", ["--output", "{tmp}/newdir/"], 2, "--output"),
    Case("params", ["--output", "/dev/full"], 3, "--output /dev/full"),                 # a real full device
    Case("flops", ["--output", "/dev/null", "--json"], 0, ""),                          # a device: written in place
    # permission: a folder without search permission on the way (run as an unprivileged user)
    Case("params", ["--model", "{tmp}/noexec/tiny.pt"], 2, "permission denied", base=False),
    Case("params", ["--model", "{tmp}/noexec/spec.json"], 2, "permission denied", base=False),
    Case("flops", ["--lengths", "{tmp}/noexec/lengths.txt"], 2, "--lengths"),
    Case("params", ["--tokenizer", "{tmp}/noexec/tokenizer"], 2, "--tokenizer", base=False),
    Case("params", ["--output", "{tmp}/noexec/out.json"], 2, "--output"),
    # ---- grids and widths are bounded -----------------------------------------------------------------
    Case("flops", ["--batch-sizes", ",".join(map(str, range(1, 101))), "--seq-lens", ",".join(map(str, range(1, 101)))],
         2, "--seq-lens"),
    Case("memory", ["--batch-sizes", ",".join(map(str, range(1, 41))), "--seq-lens", ",".join(map(str, range(1, 41)))],
         2, "--seq-lens"),
    Case("report", ["--batch-sizes", ",".join(map(str, range(1, 41))), "--seq-lens", ",".join(map(str, range(1, 41)))],
         2, "--seq-lens"),
    # ---- a user's factory that exits, or raises a BaseException: the factory failed ----------------------
    Case("params", ["--model", "robust_factories:exit0"], 3, "sys.exit(0)", base=False),
    Case("params", ["--model", "robust_factories:exit_bye"], 3, "sys.exit('bye')", base=False),
    Case("params", ["--model", "robust_factories:odd"], 3, "Odd", base=False),
    Case("report", ["--model", "robust_factories:exit0"], 3, "the factory failed", base=False),
    # ---- no figure: never exit 0, never a budget met ------------------------------------------------------
    Case("memory", ["--model", "robust_factories:elsewhere", "--method", "estimate", "--json"], 3,
         "20 of 20 cells failed", base=False, printed=True),
    Case("memory", ["--model", "robust_factories:elsewhere", "--method", "measure", "--device", "cpu",
                    "--batch-sizes", "1,2", "--seq-lens", "4", "--max-memory", "1KiB"], 3, "2 of 2 cells failed",
         base=False, printed=True),
    Case("report", ["--model", "robust_factories:elsewhere", "--batch-sizes", "1", "--seq-lens", "4",
                    "--max-memory", "1KiB"], 3, "--max-memory", base=False, printed=True),
    Case("flops", ["--model", "robust_factories:functional"], 3, "0 MACs", base=False, printed=True),
    Case("flops", ["--model", "robust_factories:functional", "--max-macs", "1G"], 3, "--max-macs", base=False,
         printed=True),
    Case("flops", ["--model", "robust_factories:functional", "--batch-sizes", "1,2"], 3, "0 MACs", base=False,
         printed=True),
    Case("report", ["--model", "robust_factories:functional", "--batch-sizes", "1", "--seq-lens", "4",
                    "--max-macs", "1G"], 3, "--max-macs", base=False, printed=True),
    # ---- the root ------------------------------------------------------------------------------------
    Case("params", ["--width", "5"], 2, "--width"),
    Case("params", ["--width", "abc"], 2, "--width"),
    Case("params", ["--width", "99999999"], 2, "--width"),
    Case("frobnicate", [], 2, "frobnicate", base=False),
]


FACTORIES = """
import sys
import torch
from torch import nn
def exit0():
    sys.exit(0)
def exit_bye():
    raise SystemExit("bye")
class Odd(BaseException):
    pass
def odd():
    raise Odd("not an Exception")
class Elsewhere(nn.Module):      # its forward mixes devices: every memory cell fails
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 3)
        self.register_buffer("state", torch.zeros(3, device="meta"))
    def forward(self, x):
        return self.proj(torch.zeros(x.shape[0], x.shape[1], 4, device=x.device)) + self.state.to("meta")
def elsewhere():
    return Elsewhere()
class Functional(nn.Module):     # multiplies by a parameter through an op that has no MACs formula
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.w = nn.Parameter(torch.zeros(8, 8))
    def forward(self, x):
        return torch.linalg.solve(self.w, self.embed(x).transpose(-1, -2))
def functional():
    return Functional()
"""


@pytest.fixture(scope="module")
def files():
    """Every file a case names, made once, in a folder an unprivileged user can reach (permission cases)."""
    import shutil
    import tempfile
    from pathlib import Path

    import torch

    from lstm_inspect.model import RecurrentLanguageModel
    from lstm_inspect.spec import ModelSpec

    tmp = Path(tempfile.mkdtemp(prefix="lstm-inspect-robust-"))
    tmp.chmod(0o755)
    (tmp / "robust_factories.py").write_text(FACTORIES, encoding="utf-8")
    for name in ("fifo.json", "fifo.pt", "fifo.safetensors", "fifo.txt"):
        os.mkfifo(tmp / name)
    (tmp / "zero.json").symlink_to("/dev/zero")
    (tmp / "zero.txt").symlink_to("/dev/zero")
    (tmp / "random.toml").symlink_to("/dev/urandom")
    (tmp / "hf-fifo").mkdir()
    os.mkfifo(tmp / "hf-fifo" / "config.json")
    (tmp / "fifo-tokenizer").mkdir()
    os.mkfifo(tmp / "fifo-tokenizer" / "tokenizer.json")
    with open(tmp / "huge.json", "wb") as handle:       # sparse: 17 MiB of spaces that take no disk
        handle.truncate(17 * 2**20)
    (tmp / "noexec").mkdir()
    (tmp / "noexec" / "spec.json").write_text('{"hidden_dim": 8}', encoding="utf-8")
    (tmp / "noexec" / "lengths.txt").write_text("5\n", encoding="utf-8")
    (tmp / "noexec" / "tokenizer").mkdir()
    (tmp / "corrupt.pt").write_bytes(b"\x80\x02this is not a pickle or a zip archive" * 10)
    (tmp / "empty.pt").write_bytes(b"")
    (tmp / "corrupt.safetensors").write_bytes(b"\xff" * 64)
    (tmp / "corrupt.json").write_text('{"hidden_dim": 8,', encoding="utf-8")
    (tmp / "list.json").write_text("[1, 2, 3]", encoding="utf-8")
    (tmp / "badkey.json").write_text('{"hidden_size": 8}', encoding="utf-8")
    (tmp / "badvalue.toml").write_text('hidden_dim = "wide"\n', encoding="utf-8")
    (tmp / "corrupt.toml").write_text("hidden_dim = = 8\n[[[\n", encoding="utf-8")
    (tmp / "hf-bad-type.json").write_text('{"model_type": "no_such_model_type"}', encoding="utf-8")
    (tmp / "notes.txt").write_text("hello\n", encoding="utf-8")
    (tmp / "deep.json").write_text("[" * 100_000, encoding="utf-8")
    (tmp / "deep.toml").write_text("a = " + "[" * 100_000, encoding="utf-8")
    (tmp / "hf-deep").mkdir()
    (tmp / "hf-deep" / "config.json").write_text('{"model_type": ' + "[" * 100_000, encoding="utf-8")
    torch.save(torch.nn.Linear(3, 4).state_dict(), tmp / "linear.pt")
    torch.save(torch.nn.Linear(3, 4), tmp / "module.pt")
    torch.save([1, 2], tmp / "list.pt")
    (tmp / "lengths.txt").write_text("# one per line\n5\n3\n\n2\n", encoding="utf-8")
    (tmp / "empty.txt").write_text("\n# nothing\n", encoding="utf-8")
    (tmp / "junk-lengths.txt").write_text("5\nfive\n", encoding="utf-8")
    (tmp / "binary.bin").write_bytes(b"\xff\xfe\x00\x01" * 16)
    (tmp / "unreadable-lengths.txt").write_text("5\n", encoding="utf-8")
    (tmp / "bad-tokenizer").mkdir()
    (tmp / "bad-tokenizer" / "tokenizer.json").write_text("{not json", encoding="utf-8")
    (tmp / "bad-tokenizer" / "tokenizer_config.json").write_text('{"tokenizer_class": "PreTrainedTokenizerFast"}',
                                                                  encoding="utf-8")
    spec = ModelSpec(vocab_size=50, embed_dim=8, hidden_dim=8, num_layers=1)
    torch.save(RecurrentLanguageModel(spec).state_dict(), tmp / "tiny.pt")
    (tmp / "unreadable.pt").write_bytes((tmp / "tiny.pt").read_bytes())
    (tmp / "truncated.pt").write_bytes((tmp / "tiny.pt").read_bytes()[:200])
    (tmp / "unreadable.json").write_text('{"hidden_dim": 8}', encoding="utf-8")
    (tmp / "noexec" / "tiny.pt").write_bytes((tmp / "tiny.pt").read_bytes())
    (tmp / "ro").mkdir()
    for name in ("unreadable.pt", "unreadable.json", "unreadable-lengths.txt"):
        (tmp / name).chmod(0)
    (tmp / "ro").chmod(0o555)
    (tmp / "noexec").chmod(0o666)       # readable, not searchable: stat() of anything in it fails
    yield tmp
    for name in ("unreadable.pt", "unreadable.json", "unreadable-lengths.txt"):
        (tmp / name).chmod(0o600)
    (tmp / "ro").chmod(0o700)
    (tmp / "noexec").chmod(0o700)
    shutil.rmtree(tmp, ignore_errors=True)


#: Cases that rely on file permissions, which do not stop root.
NEEDS_PERMISSIONS = ("unreadable", "/ro/", "/noexec/")


def _id(case: Case) -> str:
    return f"{case.command} {' '.join(a if a else repr(a) for a in case.args)}"[:90]


def unprivileged_prefix() -> list[str] | None:
    """A command prefix that runs a program as an unprivileged user (nobody), or None where there is none,
    or where nobody cannot run this checkout's Python (a clone inside a folder only its owner may enter)."""
    import pwd
    import shutil

    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return None
    group = next((g for g in ("nogroup", "nobody") if _group_exists(g)), None)
    if shutil.which("setpriv") and group:
        prefix = ["setpriv", "--reuid=nobody", f"--regid={group}", "--clear-groups"]
    elif shutil.which("runuser"):
        prefix = ["runuser", "-u", "nobody", "--"]
    else:
        return None
    return prefix if _nobody_can_import(tuple(prefix)) else None


@functools.lru_cache(maxsize=None)
def _nobody_can_import(prefix: tuple[str, ...]) -> bool:
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        done = subprocess.run([*prefix, sys.executable, "-c", "import lstm_inspect.cli"], capture_output=True,
                              env=env, cwd="/", timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


class _Result(NamedTuple):
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None


def _run_unprivileged(prefix: list[str], argv: list[str], cwd) -> _Result:
    """The CLI in a child process as nobody: root reads through chmod 000, nobody does not."""
    import subprocess
    import sys

    home = cwd / "home-nobody"
    home.mkdir(exist_ok=True)
    home.chmod(0o777)
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([*prefix, sys.executable, "-m", "lstm_inspect", *argv], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)
    return _Result(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("case", CASES,
                         ids=[_id(c) if isinstance(c, Case) else _id(c.values[0]) for c in CASES])
def test_bad_input(case: Case, files, monkeypatch) -> None:
    import sys

    args = [a.replace("{tmp}", str(files)) for a in case.args]
    as_nobody = None
    if any(marker in a for a in args for marker in NEEDS_PERMISSIONS) and os.geteuid() == 0:
        # chmod does not stop root (CI containers run tests as root): such a case runs as nobody, in a child.
        as_nobody = unprivileged_prefix()
        if as_nobody is None:
            pytest.skip("running as root and no unprivileged user to run as: permissions do not stop root")
    monkeypatch.chdir(files)  # a stray relative --output lands in the scratch folder, not the checkout
    monkeypatch.setattr(sys, "path", list(sys.path))   # a factory case puts the folder on the import path
    argv = ([case.command] if case.command else []) + (BASE.get(case.command, []) if case.base else []) + args
    result = _run_unprivileged(as_nobody, argv, files) if as_nobody else runner.invoke(app, argv)
    codes = case.code if isinstance(case.code, tuple) else (case.code,)
    context = f"argv={argv}\nexit={result.exit_code}\nstdout={result.stdout[-300:]!r}\nstderr={result.stderr[-800:]}"
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, context
    assert result.exception is None or isinstance(result.exception, SystemExit), context
    assert result.exit_code in codes, context
    if result.exit_code == 0:
        assert result.stdout.strip(), context
        return
    if result.exit_code != 1 and not case.printed:  # a budget still prints its report; other failures print nothing
        assert result.stdout == "", context
    last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    assert last.startswith(("error: ", "budget exceeded: ")), context
    assert case.names in last, context


def test_a_cpu_measurement_too_large_for_the_host_is_not_run() -> None:
    """2**31 tokens would take the host's memory page by page (overcommit): the cell is OOM, not run."""
    import json
    import time

    from lstm_inspect.cli.sweep_policy import available_host_bytes

    if available_host_bytes() is None:
        pytest.skip("no /proc/meminfo: the guard is off and the real allocation would be attempted")
    start = time.monotonic()
    result = runner.invoke(app, ["memory", *TINY, "--batch-sizes", "1", "--seq-lens", f"4,{BIG}", "--method", "both",
                                 "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.stderr
    cells = {c["seq_len"]: c for c in json.loads(result.stdout)["cells"]}
    assert cells[4]["status"] == "ok" and cells[4]["measured_bytes"] > 0
    huge = cells[int(BIG)]
    assert huge["status"] == "oom" and "not run" in huge["reason"] and "measured_bytes" not in huge
    assert huge["estimated_bytes"] > int(BIG) * 8   # at least the int64 token ids
    assert time.monotonic() - start < 30


#: Root options that print something other than a report (help, completion, version): no bad values.
NOT_INPUTS = {"--help", "--install-completion", "--show-completion", "--version"}


def test_the_table_covers_every_option_of_every_command() -> None:
    """A new option (or command) without a bad-input line above fails here.

    The model flags are one definition injected into every command by ``@model_options``: a line for
    them under any command covers them for all.
    """
    import typer

    from lstm_inspect.cli.options import _MODEL_PARAMS

    group = typer.main.get_command(app)
    # Typer's Option("--name", ...) in Annotated keeps the first name as its ``default``.
    infos = [annotation.__metadata__[0] for _, annotation, _ in _MODEL_PARAMS]
    model_flags = {name for info in infos for decl in (info.default, *info.param_decls) if isinstance(decl, str)
                   for name in decl.split("/") if name.startswith("--")}
    assert "--cell" in model_flags and "--model" in model_flags
    covered: dict[str, set[str]] = {}
    for item in CASES:
        case = item if isinstance(item, Case) else item.values[0]
        names = {a.split("=", 1)[0] for a in case.args if a.startswith("--")}
        covered.setdefault(case.command, set()).update(names)
    every_command = set().union(*covered.values())
    missing = []
    for option in group.params:
        for name in option.opts:
            if name.startswith("--") and name not in NOT_INPUTS and name not in every_command:
                missing.append(f"(root) {name}")
    for command_name, command in group.commands.items():
        assert command_name in covered, f"no case for the command {command_name}"
        for param in command.params:
            for name in param.opts:
                if not name.startswith("--") or name in NOT_INPUTS:
                    continue
                if name in covered[command_name] or (name in model_flags and name in every_command):
                    continue
                missing.append(f"{command_name} {name}")
    assert not missing, f"options without a bad-input case: {missing}"
