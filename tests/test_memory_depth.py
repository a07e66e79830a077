"""A deep model's memory trace from copies with fewer layers (lstm_inspect/analyses/memory_depth.py).

The extension of the copies' traces is compared with the model's own full-depth trace, point by point (every
segment's label and peak, the live total after every allocating op, the op count), on transformers' models
written as their authors write them (Mamba, RWKV, GPT-2, Llama; 18 layers, tiny widths), in infer and in train
with SGD; where the layers are not a plain stack (RWKV's rescaling every 6 layers in inference, states made for
every layer before the first runs, layers of different widths) the extension must be refused, and the sweep
then traces at full depth with a note that says why.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_inspect.analyses import memory_depth
from lstm_inspect.analyses.memory import sweep_memory
from lstm_inspect.analyses.memory_depth import SHALLOW, canonical_names, extend, find_stack, relabel
from lstm_inspect.analyses.memory_estimate import trace_difference as difference
from lstm_inspect.analyses.memory_estimate import trace_increment
from lstm_inspect.analyses.memory_probes import untied_meta_copy, warm_up
from lstm_inspect.analyses.memory_step import make_step
from lstm_inspect.meta_memo import MetaMemo
from lstm_inspect.source import LoadedModel, token_batch_input
from lstm_inspect.sources import resolve_source

V = 97
DEPTH = 18


def _hf(tmp_path, kind: str, depth: int = DEPTH):
    import transformers as tf

    config = {
        "mamba": lambda: tf.MambaConfig(hidden_size=32, state_size=4, num_hidden_layers=depth, vocab_size=V, expand=2,
                                        conv_kernel=4, bos_token_id=0, eos_token_id=0, pad_token_id=0),
        "gpt2": lambda: tf.GPT2Config(n_embd=32, n_layer=depth, n_head=2, vocab_size=V, n_positions=256),
        "llama": lambda: tf.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=depth,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=V),
        "rwkv": lambda: tf.RwkvConfig(hidden_size=32, attention_hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=depth, vocab_size=V, context_length=256),
    }[kind]()
    tmp_path.mkdir(parents=True, exist_ok=True)
    config.to_json_file(str(tmp_path / "config.json"))
    return resolve_source(str(tmp_path / "config.json"))


class _Tracer:
    """The model and its two shallow copies (``depths`` layers deep) on meta, warmed up, each traced as the estimator
    traces; ``exceptional``: the repeated layers that run more ops than the others."""

    def __init__(self, loaded, train: bool, optimizer: str = "none", depth: int = DEPTH,
                 depths: tuple[int, int] = SHALLOW, exceptional: frozenset[int] = frozenset()) -> None:
        self.loaded, self.train, self.depths, self.exceptional = loaded, train, depths, exceptional
        full = untied_meta_copy(loaded.module)
        self.stack = find_stack(full)
        assert self.stack is not None and self.stack.depth == depth
        self.memo = MetaMemo()
        modules = [full] + [memory_depth.shallow_copy(full, self.stack, d, untied_meta_copy) for d in depths]
        self.steps = []
        for module in modules:
            module.train(train)
            step = make_step(train, "usual", optimizer)(module)
            warm_up(step, lambda: loaded.inputs(1, 1, "meta"), module, train)
            self.steps.append((module, step, canonical_names(module, self.stack)))

    def _trace(self, which: int, batch: int, seq: int):
        module, step, names = self.steps[which]
        try:
            traced = trace_increment(step, lambda: self.loaded.inputs(batch, seq, "meta"), contextlib.nullcontext(),
                                     module, memo=self.memo)
        finally:
            if self.train:
                module.zero_grad(set_to_none=True)
        return relabel(traced, names)

    def full(self, batch: int, seq: int):
        return self._trace(0, batch, seq)

    def extended(self, batch: int, seq: int):
        return extend(self._trace(1, batch, seq), self._trace(2, batch, seq), self.stack.depth, self.depths,
                      self.exceptional)


@pytest.mark.parametrize("kind, mode", [("mamba", "infer"), ("mamba", "sgd"), ("gpt2", "infer"), ("gpt2", "sgd"),
                                        ("llama", "infer"), ("llama", "sgd"), ("rwkv", "sgd")])
def test_the_extension_of_the_copies_is_the_full_models_trace(tmp_path, kind, mode):
    tracer = _Tracer(_hf(tmp_path, kind), train=mode != "infer", optimizer="sgd" if mode == "sgd" else "none")
    for batch, seq in [(2, 8), (1, 8), (4, 32), (3, 70)]:
        extended, why = tracer.extended(batch, seq)
        assert extended is not None, why
        full = tracer.full(batch, seq)
        assert difference(extended, full) is None, (batch, seq, difference(extended, full))
        # ... point for point, not only the summary: the same segments, allocations and op count
        assert (extended.segments, extended.profiles, extended.ops) == (full.segments, full.profiles, full.ops)


@settings(max_examples=6, deadline=None)
@given(batch=st.integers(1, 6), seq=st.integers(2, 48))
def test_the_extension_holds_at_any_size(tmp_path_factory, batch, seq):
    tracer = _TRACERS.get("mamba") or _TRACERS.setdefault("mamba", _Tracer(_hf(tmp_path_factory.mktemp("m"), "mamba"),
                                                                          train=True, optimizer="sgd"))
    extended, why = tracer.extended(batch, seq)
    assert extended is not None, why
    assert difference(extended, tracer.full(batch, seq)) is None


_TRACERS: dict[str, _Tracer] = {}


def test_an_op_every_few_layers_is_caught_by_the_check(tmp_path):
    # RWKV halves its hidden states after every 6th block in inference: the copies (4 and 5 blocks) never do, the
    # model does 3 times in 18 blocks. The extension misses those ops and the check says so.
    tracer = _Tracer(_hf(tmp_path, "rwkv"), train=False)
    extended, why = tracer.extended(2, 8)
    assert extended is not None, why
    full = tracer.full(2, 8)
    assert full.ops - extended.ops == DEPTH // 6
    assert difference(extended, full) == f"{extended.ops:,} ops against {full.ops:,}"


def test_the_sweep_gives_the_full_depth_figures_and_says_how(tmp_path, monkeypatch):
    loaded = _hf(tmp_path, "mamba")
    grid = dict(batch_sizes=[1, 2, 4], seq_lens=[8, 16, 40], method="estimate")
    for mode in ("infer", "train"):
        shallow = sweep_memory(loaded, mode=mode, trace_every_cell=True, **grid)
        assert any(n.startswith("estimate traced on copies of the model whose backbone.layers keeps its first 4 "
                                "and 5 of 18 layers") for n in shallow.notes), shallow.notes
        with monkeypatch.context() as patch:
            patch.setattr(memory_depth, "MIN_DEPTH", DEPTH + 1)
            full = sweep_memory(loaded, mode=mode, trace_every_cell=True, **grid)
        assert not any("copies of the model" in n for n in full.notes)
        assert [c.estimated_bytes for c in shallow.cells] == [c.estimated_bytes for c in full.cells]


def test_the_sweep_refuses_the_extension_with_a_reason(tmp_path):
    report = sweep_memory(_hf(tmp_path, "rwkv"), batch_sizes=[1, 2], seq_lens=[8, 16], method="estimate",
                          trace_every_cell=True)
    refused = [n for n in report.notes if n.startswith("estimate traced at the model's full depth")]
    assert len(refused) == 1 and "at 2×8 the extension differed from the model's own trace" in refused[0], report.notes


class _StatesUpFront(torch.nn.Module):
    """A stack of blocks whose forward makes every block's state before the first block runs, as transformers'
    xLSTM makes its cache (three tensors per block): the segment before the stack allocates once per block.
    ``growing``: block ``i``'s state is ``i + 1`` times as wide (the repeats are not alike). ``every``: the
    hidden states are halved after every ``every``-th block, as transformers' RWKV does in inference."""

    def __init__(self, depth: int = 16, width: int = 8, growing: bool = False, max_seq: int | None = None,
                 every: int = 0) -> None:
        super().__init__()
        self.growing, self.max_seq, self.every = growing, max_seq, every
        self.embed = torch.nn.Embedding(V, width)
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(depth))
        self.head = torch.nn.Linear(width, V)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.max_seq is not None and tokens.shape[1] > self.max_seq:
            raise ValueError(f"sequences longer than {self.max_seq} are not supported")
        x = self.embed(tokens)
        states = [torch.zeros(x.shape[0], x.shape[-1] * (i + 1 if self.growing else 1), device=x.device)
                  for i, _ in enumerate(self.blocks)]
        for i, (block, state) in enumerate(zip(self.blocks, states)):
            x = torch.tanh(block(x) + state[:, None, : x.shape[-1]])
            if self.every and (i + 1) % self.every == 0:
                x = x / 2
        return self.head(x)


def _user(module: torch.nn.Module) -> LoadedModel:
    return LoadedModel(module=module, spec=None, description={"source": "test", "name": "states"},
                       sample_input=token_batch_input(None))


def test_states_made_for_every_layer_up_front_are_repeated_to_full_depth(monkeypatch):
    grid = dict(batch_sizes=[1, 2, 4], seq_lens=[8, 16, 40], method="estimate", trace_every_cell=True)
    loaded = _user(_StatesUpFront())
    shallow = sweep_memory(loaded, **grid)
    assert any(n.startswith("estimate traced on copies of the model whose blocks keeps its first 4 and 5 of 16")
               for n in shallow.notes), shallow.notes
    monkeypatch.setattr(memory_depth, "MIN_DEPTH", 17)
    full = sweep_memory(loaded, **grid)
    assert [c.estimated_bytes for c in shallow.cells] == [c.estimated_bytes for c in full.cells]


def test_states_that_differ_per_layer_are_caught_by_the_check():
    # Each block's state is wider than the one before: the copies' repeats are not alike, the extension is wrong
    # and the check at full depth says so; the sweep traces the model at full depth.
    report = sweep_memory(_user(_StatesUpFront(growing=True)), batch_sizes=[1, 2], seq_lens=[8, 16],
                          method="estimate", trace_every_cell=True)
    refused = [n for n in report.notes if n.startswith("estimate traced at the model's full depth")]
    assert refused and "extension differed from the model's own trace" in refused[0], report.notes


def test_the_route_is_chosen_on_the_shallow_copy_and_rechecked_at_full_depth_when_they_do_not_stand_for_it(tmp_path):
    # Mamba: the copies stand for the model; its own fake-tensor copy is never made.
    grid = dict(batch_sizes=[1, 2], seq_lens=[8, 16], method="estimate", trace_every_cell=True)
    mamba = sweep_memory(_hf(tmp_path / "m", "mamba"), **grid)
    assert any("warm-up step at 2×2 of the model's shallow copy" in n for n in mamba.notes), mamba.notes
    assert not any(n.startswith("estimate traced at the model's full depth") for n in mamba.notes)
    # RWKV in inference: they do not (its rescaling every 6 blocks), so the model's own warm-up is compared too.
    rwkv = sweep_memory(_hf(tmp_path / "r", "rwkv"), **grid)
    notes = list(rwkv.notes)
    copy = next(i for i, n in enumerate(notes) if "of the model's shallow copy" in n)
    refused = next(i for i, n in enumerate(notes) if n.startswith("estimate traced at the model's full depth"))
    full = next(i for i, n in enumerate(notes) if n.endswith("warm-up step at 2×2 (same peak, segments and "
                                                              "allocations)"))
    assert copy < refused < full, notes


def test_only_a_deep_stack_of_like_layers_is_cut_short():
    deep = _StatesUpFront(depth=16)
    assert find_stack(deep) == memory_depth.Stack("blocks", 16)
    assert find_stack(_StatesUpFront(depth=15)) is None                 # fewer than MIN_DEPTH layers
    pruned = _StatesUpFront(depth=16)
    pruned.blocks[7] = torch.nn.Linear(8, 8, bias=False)                 # one layer unlike the others
    assert find_stack(pruned) is None
    first = _StatesUpFront(depth=16)
    first.blocks[0] = torch.nn.Linear(8, 8, bias=False)                  # the first layers may differ (RWKV's first
    assert find_stack(first) == memory_depth.Stack("blocks", 16)         # block has a layer norm of its own)


def test_a_copy_that_fails_leaves_the_model_traced_at_full_depth(tmp_path, monkeypatch):

    def fail(self, *args):
        raise RuntimeError("copy broke")

    loaded = _hf(tmp_path, "mamba")
    grid = dict(batch_sizes=[1, 2], seq_lens=[8, 16], method="estimate", trace_every_cell=True)
    with monkeypatch.context() as patch:
        patch.setattr(memory_depth, "MIN_DEPTH", DEPTH + 1)
        full = sweep_memory(loaded, **grid)
    monkeypatch.setattr(memory_depth.ShallowCopies, "_extended", fail)
    report = sweep_memory(loaded, **grid)
    assert all(c.status == "ok" for c in report.cells)
    assert [c.estimated_bytes for c in report.cells] == [c.estimated_bytes for c in full.cells]
    assert any("the copies failed at" in n and n.endswith("where the model runs: copy broke")
               for n in report.notes), report.notes


def test_a_size_the_model_itself_cannot_run_fails_its_cells_and_keeps_the_copies():
    report = sweep_memory(_user(_StatesUpFront(max_seq=12)), batch_sizes=[1, 2], seq_lens=[8, 16],
                          method="estimate", trace_every_cell=True)
    assert [c.status for c in report.cells] == ["ok", "error", "ok", "error"]
    assert all("longer than 12" in (c.reason or "") for c in report.cells if c.status == "error")
    assert any(n.startswith("estimate traced on copies of the model") for n in report.notes), report.notes
    assert not any(n.startswith("estimate traced at the model's full depth") for n in report.notes), report.notes


# Layers that run more ops every few layers (RWKV halves its hidden states before every 6th block in inference): a
# copy deep enough to hold the first of them stands for all of them.

RWKV_DEPTH = 26     # its layers 6, 12, 18 and 24 run the halving; the last (25) does not, nor anything after it


@pytest.mark.parametrize("batch, seq", [(2, 8), (1, 8), (4, 32), (3, 70)])
def test_rwkv_layers_that_halve_their_input_are_taken_from_the_deeper_copy(tmp_path_factory, batch, seq):
    tracer = _TRACERS.get("rwkv") or _TRACERS.setdefault("rwkv", _Tracer(
        _hf(tmp_path_factory.mktemp("r"), "rwkv", RWKV_DEPTH), train=False, depth=RWKV_DEPTH, depths=(4, 8),
        exceptional=frozenset({6, 12, 18, 24})))
    extended, why = tracer.extended(batch, seq)
    assert extended is not None, why
    full = tracer.full(batch, seq)
    assert (extended.segments, extended.profiles, extended.ops) == (full.segments, full.profiles, full.ops)


def test_without_the_exceptional_layers_the_deeper_copy_does_not_stand_for_the_model(tmp_path):
    # The same copies, told of no exceptional layer: the deeper copy's layer 6 is unlike its others, refused.
    tracer = _Tracer(_hf(tmp_path, "rwkv", RWKV_DEPTH), train=False, depth=RWKV_DEPTH, depths=(4, 8))
    extended, why = tracer.extended(2, 8)
    assert extended is None and why == "the deeper copy's repeated layers are not affine in their index"


def test_the_sweep_takes_the_halving_layers_from_a_deeper_copy_and_says_so(tmp_path, monkeypatch):
    loaded = _hf(tmp_path, "rwkv", RWKV_DEPTH)
    grid = dict(batch_sizes=[1, 2, 4], seq_lens=[8, 16, 40], method="estimate", trace_every_cell=True)
    shallow = sweep_memory(loaded, **grid)
    assert any(n.startswith("estimate traced on copies of the model whose rwkv.blocks keeps its first 4 and 8 of 26 "
                            "layers") and "its layers 6, 12, 18 and 24 (counted from 0) run more ops than the "
                            "others, each as the 8-layer copy's layer 6 does" in n for n in shallow.notes), shallow.notes
    monkeypatch.setattr(memory_depth, "MIN_DEPTH", RWKV_DEPTH + 1)
    full = sweep_memory(loaded, **grid)
    assert not any("copies of the model" in n for n in full.notes)
    assert [c.estimated_bytes for c in shallow.cells] == [c.estimated_bytes for c in full.cells]


@pytest.mark.parametrize("mode", ["infer", "train"])
def test_an_op_every_few_layers_of_a_user_model_is_taken_from_a_deeper_copy(monkeypatch, mode):
    # Halved after every 5th block, and every block's state made up front (the segment before the stack repeats
    # once per layer, three times more in the 7-layer copy than in the 4-layer one). In training the halving's
    # backward runs in the layer before it (4, 9, ...), its forward in the layer after (5, 10, ...): one set of
    # exceptional layers does not describe both, so the model is traced at full depth, with a note.
    grid = dict(batch_sizes=[1, 2, 4], seq_lens=[8, 16, 40], method="estimate", trace_every_cell=True, mode=mode)
    loaded = _user(_StatesUpFront(depth=24, every=5))
    shallow = sweep_memory(loaded, **grid)
    copies = [n for n in shallow.notes if n.startswith("estimate traced on copies of the model whose blocks keeps its "
                                                        "first 4 and 7 of 24 layers")]
    refused = [n for n in shallow.notes if n.startswith("estimate traced at the model's full depth")]
    if mode == "infer":
        assert copies and "its layers 5, 10, 15 and 20 (counted from 0)" in copies[0] and not refused, shallow.notes
    else:
        assert refused and not copies, shallow.notes
    monkeypatch.setattr(memory_depth, "MIN_DEPTH", 25)
    full = sweep_memory(loaded, **grid)
    assert [c.estimated_bytes for c in shallow.cells] == [c.estimated_bytes for c in full.cells]


@pytest.mark.parametrize("depth, every", [(24, 2), (16, 7)])
def test_exceptional_layers_too_close_to_the_head_or_too_deep_are_traced_at_full_depth(depth, every):
    # every 2nd: the first repeated layer already differs; every 7th of 16: a copy of 9 layers (with the 4-layer
    # one) would cost more than half the model's depth.
    report = sweep_memory(_user(_StatesUpFront(depth=depth, every=every)), batch_sizes=[1, 2], seq_lens=[8, 16],
                          method="estimate", trace_every_cell=True)
    assert any(n.startswith("estimate traced at the model's full depth") for n in report.notes), report.notes
    assert not any(n.startswith("estimate traced on copies") for n in report.notes), report.notes


def test_the_first_trace_of_a_process_counts_as_the_later_ones():
    # The first meta op of a process imports torch's Python meta kernels (and runs ops of its own); inside the
    # first trace, that made the copies' fake-tensor and meta warm-ups differ, in a fresh process only.
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, torch; sys.path.insert(0, 'tests')\n"
            "from test_memory_depth import _StatesUpFront, _user\n"
            "from lstm_inspect.analyses.memory_probes import Estimator\n"
            "with Estimator(_user(_StatesUpFront()), torch.float32, train=False) as estimator:\n"
            "    print(estimator._shallow is not None, estimator.notes)\n")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("True"), done.stdout
