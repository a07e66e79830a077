"""MACs and FLOPs of one forward pass, counted through ``thop.profile`` on fake tensors.

Nothing is allocated: the model is a fake copy (FakeTensorMode on a fake cpu device), so a
billion-parameter model at batch 64 × seq 2048 is counted as fast as the default one. ``thop``
must run *outside* the mode (it creates real ``total_ops`` buffers and calls ``.item()``); calling
the fake module outside the mode still dispatches to fake kernels.

Conventions (also in the README):

* MACs: multiply-accumulates of the matrix products only (an embedding lookup is 0).
* FLOPs: 2·MACs + element-wise work per cell step and sequence (bias adds, gate activations,
  cell update; each activation evaluation = 1 FLOP), plus one add per output element of a biased Linear.
* Training step: forward + backward, backward ≈ 2× forward (gradients w.r.t. inputs and weights),
  so training ≈ 3× forward, applied to the whole count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from lstm_inspect.errors import AnalysisFailed, first_line
from lstm_inspect.hardware import DTYPE_BYTES, Accelerator
from lstm_inspect.thop_ops import GATES, Recorder, make_custom_ops

if TYPE_CHECKING:
    from torch import nn

    from lstm_inspect.source import LoadedModel
    from lstm_inspect.spec import ModelSpec

#: Training step = forward + backward; backward ≈ 2× forward.
TRAINING_FACTOR = 3

FLOPS_CONVENTION = (
    "MACs = multiply-accumulates of the matrix products (embedding lookup = 0); "
    "FLOPs = 2·MACs + element-wise work per cell step and sequence: LSTM bias adds 8H, activations 5H, "
    "cell update 4H; GRU bias 6H, activations 2H, n gate 3H, update 4H; RNN bias 2H, activation H; "
    "Linear bias 1 per output element"
)
TRAINING_RULE = "training step ≈ 3 × forward (backward ≈ 2 × forward: gradients w.r.t. inputs and weights)"
THOP_RAW_INCLUDES = (
    "thop 0.1.1's stock hooks: its LSTM/GRU/RNN figure adds bias adds and element-wise ops to the products "
    "and ignores proj_size (and on a real PackedSequence charges max(batch_sizes) × len(batch_sizes) steps); "
    "its Linear figure is in_features per output element (= MACs, no bias); Embedding is not counted"
)


@dataclass(frozen=True)
class ModuleRow:
    name: str
    type: str
    macs: int
    flops: int
    calls: int
    stock: bool = False      # counted by thop's stock hook (its own convention), not ours


@dataclass(frozen=True)
class ComponentRow:
    component: str           # "embedding", "recurrent layer 0 · forward", "projection", "other"
    module: str
    macs: int
    flops: int
    cell_steps: int | None = None


@dataclass(frozen=True)
class LayerCheck:
    component: str
    symbolic: str
    substituted: str
    expected: int
    counted: int

    @property
    def ok(self) -> bool:
        return self.expected == self.counted


@dataclass(frozen=True)
class PackedComparison:
    lengths: tuple[int, ...]
    padded_batch: int
    padded_seq_len: int
    packed_cell_steps: int
    padded_cell_steps: int
    packed_macs: int
    packed_flops: int
    padded_macs: int
    padded_flops: int

    @property
    def waste_macs(self) -> int:
        return self.padded_macs - self.packed_macs

    @property
    def waste_ratio(self) -> float:
        return self.waste_macs / self.padded_macs if self.padded_macs else 0.0


@dataclass(frozen=True)
class TimeEstimate:
    """Lower bound for one forward: max(FLOPs / peak, bytes / bandwidth). An estimate."""

    hardware: str | None          # accelerator key, None for a bare --peak-tflops
    hardware_name: str | None
    dtype: str
    peak_tflops: float
    bandwidth_gbs: float | None
    source: str | None
    flops: int
    weight_bytes: int
    activation_bytes: int
    compute_s: float
    memory_s: float | None

    @property
    def bytes_moved(self) -> int:
        return self.weight_bytes + self.activation_bytes

    @property
    def lower_bound_s(self) -> float:
        return max(self.compute_s, self.memory_s or 0.0)

    @property
    def bound(self) -> str:
        return "memory" if self.memory_s is not None and self.memory_s > self.compute_s else "compute"

    @property
    def training_compute_s(self) -> float:
        return TRAINING_FACTOR * self.compute_s


@dataclass(frozen=True)
class FlopsReport:
    model: dict[str, Any]
    batch_size: int
    seq_len: int
    macs: int
    flops: int
    modules: tuple[ModuleRow, ...]
    components: tuple[ComponentRow, ...]
    checks: tuple[LayerCheck, ...]
    thop_raw: int
    packed: PackedComparison | None
    time: TimeEstimate | None
    notes: tuple[str, ...]

    @property
    def elementwise_flops(self) -> int:
        return self.flops - 2 * self.macs

    @property
    def training_macs(self) -> int:
        return TRAINING_FACTOR * self.macs

    @property
    def training_flops(self) -> int:
        return TRAINING_FACTOR * self.flops

    @property
    def checks_ok(self) -> bool:
        return all(c.ok for c in self.checks)


@dataclass(frozen=True)
class GridCell:
    batch_size: int
    seq_len: int
    macs: int
    flops: int


@dataclass(frozen=True)
class FlopsGrid:
    model: dict[str, Any]
    batch_sizes: tuple[int, ...]
    seq_lens: tuple[int, ...]
    cells: tuple[GridCell, ...]
    notes: tuple[str, ...]

    def cell(self, batch: int, seq: int) -> GridCell:
        return next(c for c in self.cells if c.batch_size == batch and c.seq_len == seq)

    @property
    def max_macs(self) -> int:
        return max(c.macs for c in self.cells)


def nothing_counted(module: "nn.Module", macs: int) -> str | None:
    """Why a count of 0 MACs is no answer, or None when 0 can be true.

    A model with a weight matrix outside its embeddings multiplies by it; 0 MACs then means the forward
    ran operations the module hooks cannot see (functional calls on parameters, closures), not that it
    costs nothing. An embedding-only model (lookups) or one with only norms really has 0 MACs.
    """
    from torch import nn

    if macs:
        return None
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Embedding):
            continue
        for pname, param in sub.named_parameters(recurse=False):
            if param.dim() >= 2:
                where = f"{name}.{pname}" if name else pname
                return (f"counted 0 MACs, yet the model multiplies by {where} {list(param.shape)}: its forward runs "
                        "operations that module hooks cannot see (functional calls), so there is no MACs figure")
    return None


# --------------------------------------------------------------------------------------------
# counting


@dataclass
class _Count:
    recorder: Recorder
    macs: int
    flops: int
    stock: dict[str, tuple[str, int, int]]   # modules counted by thop's stock hooks: name -> (type, MACs, FLOPs)


def _profile(module: "nn.Module", inputs: tuple, loaded: "LoadedModel", where: str) -> _Count:
    """One thop.profile pass with our custom_ops (outside the fake mode); ``where`` names the input's options."""
    import thop

    recorder = Recorder(names={id(m): name for name, m in module.named_modules()})
    try:
        with _quiet():
            total, _params, layers = thop.profile(module, inputs, custom_ops=make_custom_ops(recorder),
                                                  verbose=False, ret_layer_info=True)
    except Exception as exc:  # a user's model may fail in any way
        from lstm_inspect.building import is_size_overflow, too_large

        if is_size_overflow(exc):
            raise too_large(where, exc) from None
        raise AnalysisFailed(f"counting a forward pass of {loaded.name} failed: {first_line(exc)}") from None
    from torch.nn.modules.conv import _ConvNd

    by_name = dict(module.named_modules())
    stock: dict[str, tuple[str, int, int]] = {}
    for name, ops in _leaves(layers, ""):
        if name not in recorder.modules and ops:
            sub = by_name.get(name)
            # thop's convolution hook counts multiply-accumulates; its other hooks (norms, pooling,
            # activations, softmax) count element-wise operations
            if isinstance(sub, _ConvNd):
                stock[name] = (type(sub).__name__, ops, 2 * ops)
            else:
                stock[name] = (type(sub).__name__, 0, ops)
    macs = sum(m.macs for m in recorder.modules.values()) + sum(v[1] for v in stock.values())
    flops = (2 * sum(m.macs for m in recorder.modules.values()) + sum(m.elementwise for m in recorder.modules.values())
             + sum(v[2] for v in stock.values()))
    return _Count(recorder, macs, flops, stock)


def _quiet():
    """Silence torch's kernel-choice notice (oneDNN has no LSTM projection): no kernel runs here."""
    import contextlib
    import warnings

    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.filterwarnings("ignore", message=".*not supported with oneDNN.*")
    return stack


def _leaves(layers: dict, prefix: str):
    for name, (ops, _params, children) in layers.items():
        path = f"{prefix}.{name}" if prefix else name
        if children:
            yield from _leaves(children, path)
        else:
            yield path, int(round(float(ops)))


def _stock_profile(module: "nn.Module", inputs: tuple) -> int:
    """thop's own figure with its stock hooks, for reference."""
    import thop

    try:
        with _quiet():
            total, _params = thop.profile(module, inputs, verbose=False)
    except Exception:  # only a reference figure: never fail the report for it
        return -1
    return int(round(float(total)))


def _inputs(loaded: "LoadedModel", mode: Any, device: str, batch: int, seq: int,
            lengths: Sequence[int] | None = None) -> tuple:
    with mode:
        if lengths is None:
            return loaded.sample_input(batch, seq, device)
        return loaded.sample_input(batch, seq, device, lengths=list(lengths))


def count_flops(
    loaded: "LoadedModel",
    *,
    batch: int = 1,
    seq: int = 32,
    lengths: Sequence[int] | None = None,
    accelerator: Accelerator | None = None,
    peak_tflops: float | None = None,
    dtype: str = "float32",
) -> FlopsReport:
    """Count one forward pass at ``batch`` × ``seq`` (or a packed batch of ``lengths``).

    Args:
        loaded: any model; closed-form checks only when ``loaded.spec`` is set.
        batch: sequences (ignored with ``lengths``: the batch is ``len(lengths)``).
        seq: time steps; with ``lengths`` the padded length (``>= max(lengths)``).
        lengths: one length per sequence: the packed batch, compared with the padded one.
        accelerator: named hardware for the time estimate (peak per dtype, bandwidth).
        peak_tflops: a peak that overrides the accelerator's (or stands alone: compute bound only).
        dtype: element type for the bytes moved and the peak.

    Returns:
        A FlopsReport; ``macs``/``flops`` are the packed figures when ``lengths`` is given.
    """
    from lstm_inspect.tracing import shape_copy

    notes: list[str] = []
    packed: PackedComparison | None = None
    with shape_copy(loaded) as (module, mode, device):
        if lengths is not None:
            batch = len(lengths)
            count = _profile(module, _inputs(loaded, mode, device, batch, seq, lengths), loaded, "--lengths")
            padded_inputs = _inputs(loaded, mode, device, batch, seq)
            padded = _profile(module, padded_inputs, loaded, f"--lengths (padded to {batch} × {seq})")
            packed = PackedComparison(
                lengths=tuple(lengths), padded_batch=batch, padded_seq_len=seq,
                packed_cell_steps=sum(lengths), padded_cell_steps=batch * seq,
                packed_macs=count.macs, packed_flops=count.flops, padded_macs=padded.macs, padded_flops=padded.flops,
            )
            thop_raw = _stock_profile(module, padded_inputs)
            notes.append("thop's raw figure is for the padded batch: thop 0.1.1 on a real PackedSequence also "
                         "charges the recurrent stack the padded rectangle")
        else:
            inputs = _inputs(loaded, mode, device, batch, seq)
            count = _profile(module, inputs, loaded, f"--batch {batch} × --seq {seq}")
            thop_raw = _stock_profile(module, inputs)
        params = _param_numels(module)

    recorder = count.recorder
    modules = [ModuleRow(m.name, m.type, m.macs, 2 * m.macs + m.elementwise, m.calls)
               for m in recorder.modules.values()]
    modules += [ModuleRow(name, kind, macs, flops, 1, stock=True) for name, (kind, macs, flops) in count.stock.items()]
    if count.stock:
        notes.append("modules outside LSTM/GRU/RNN/Linear/Embedding are counted by thop's stock hooks: a "
                     "convolution's figure as MACs, any other module's (norms, pooling, activations) as element-wise FLOPs")
    notes.append("operations outside modules (functional calls in a forward) are not seen by thop's module hooks")
    if any("attention" in type(m).__name__.lower() for m in loaded.module.modules()):
        notes.append("attention score and context products (Q·Kᵀ, softmax·V) are functional calls, so they are NOT "
                     "in these counts: add about 2·layers·batch·seq²·hidden MACs for full self-attention")
    components = _components(recorder, count.stock)
    checks: tuple[LayerCheck, ...] = ()
    if loaded.spec is not None:
        steps = sum(lengths) if lengths is not None else batch * seq
        checks = _closed_form_checks(loaded.spec, recorder, steps)
    else:
        notes.append("closed-form checks apply to the built-in model family only; this model is counted, not checked")
    time = None
    if accelerator is not None or peak_tflops is not None:
        sequential = max(lengths) if lengths is not None else None
        time = _time_estimate(count, params, accelerator, peak_tflops, dtype, sequential)
    return FlopsReport(
        model=loaded.description, batch_size=batch, seq_len=seq, macs=count.macs, flops=count.flops,
        modules=tuple(modules), components=tuple(components), checks=checks, thop_raw=thop_raw,
        packed=packed, time=time, notes=tuple(notes),
    )


def count_grid(loaded: "LoadedModel", batch_sizes: Sequence[int], seq_lens: Sequence[int]) -> FlopsGrid:
    """MACs and FLOPs of one forward for every (batch, seq) pair; one fake copy for all cells."""
    from lstm_inspect.tracing import shape_copy

    cells = []
    with shape_copy(loaded) as (module, mode, device):
        for b in batch_sizes:
            for s in seq_lens:
                count = _profile(module, _inputs(loaded, mode, device, b, s), loaded,
                                 f"--batch-sizes × --seq-lens cell {b} × {s}")
                cells.append(GridCell(b, s, count.macs, count.flops))
    return FlopsGrid(loaded.description, tuple(batch_sizes), tuple(seq_lens), tuple(cells), notes=())


# --------------------------------------------------------------------------------------------
# aggregation


def _components(recorder: Recorder, stock: dict[str, tuple[str, int, int]]) -> list[ComponentRow]:
    from lstm_inspect.analyses.classify import component

    rows: list[ComponentRow] = []
    recurrent_modules = {d.module for d in recorder.directions.values()}
    for m in recorder.modules.values():
        if m.name in recurrent_modules:
            for d in sorted((d for d in recorder.directions.values() if d.module == m.name),
                            key=lambda d: (d.layer, d.direction)):
                label = f"recurrent layer {d.layer} · {'reverse' if d.direction else 'forward'}"
                rows.append(ComponentRow(label, m.name, d.macs, 2 * d.macs + d.elementwise, d.cell_steps))
            continue
        kind = {"Embedding": "Embedding", "Linear": "Linear/Conv"}.get(m.type, "Other")
        rows.append(ComponentRow(component(m.name, kind), m.name, m.macs, 2 * m.macs + m.elementwise))
    for name, (_kind, macs, flops) in stock.items():
        rows.append(ComponentRow("other", name, macs, flops))
    return rows


def _closed_form_checks(spec: "ModelSpec", recorder: Recorder, steps: int) -> tuple[LayerCheck, ...]:
    """Per recurrent layer (both directions) and the projection: closed form next to the counted value."""
    G, H, D, Hr, P = GATES[spec.cell], spec.hidden_dim, spec.num_directions, spec.state_dim, spec.proj_size
    checks = []
    for layer in range(spec.num_layers):
        I = spec.layer_input_dim(layer)
        per_step = G * H * (I + Hr) + (P * H if P else 0)
        symbolic = ("D·N·(G·H·(I + H_r) + H_r·H)" if P else "D·N·G·H·(I + H_r)")
        substituted = (f"{D}·{steps}·({G}·{H}·({I} + {Hr}) + {P}·{H})" if P
                       else f"{D}·{steps}·{G}·{H}·({I} + {Hr})")
        counted = sum(d.macs for d in recorder.directions.values() if d.module == "rnn" and d.layer == layer)
        checks.append(LayerCheck(f"recurrent layer {layer}", symbolic, substituted, D * steps * per_step, counted))
    proj = recorder.modules.get("proj")
    checks.append(LayerCheck("projection", "N·(D·H_r)·V", f"{steps}·{spec.output_dim}·{spec.vocab_size}",
                             steps * spec.output_dim * spec.vocab_size, proj.macs if proj else 0))
    return tuple(checks)


def _param_numels(module: "nn.Module") -> dict[str, list[tuple[str, int]]]:
    """Module name -> [(parameter name, numel)] of its own parameters.

    A tied tensor is listed under every module that holds it: the embedding's lookup and the
    projection's product each read it.
    """
    out: dict[str, list[tuple[str, int]]] = {}
    for mod_name, mod in module.named_modules(remove_duplicate=False):
        for p_name, p in mod.named_parameters(recurse=False, remove_duplicate=False):
            out.setdefault(mod_name, []).append((p_name, int(p.numel())))
    return out


_RE_READ = ("weight_hh", "weight_hr", "bias_hh")


def _time_estimate(count: _Count, params: dict[str, list[tuple[str, int]]], accelerator: Accelerator | None,
                   peak_tflops: float | None, dtype: str, sequential: int | None) -> TimeEstimate:
    """Bytes: weights read (recurrent W_hh/W_hr/b_hh re-read every time step, an embedding reads only the
    rows it looks up, the rest once) + activations (each module's outputs written once and read once)."""
    size = DTYPE_BYTES[dtype]
    weight_elems = 0
    activation_elems = 0
    for name, m in count.recorder.modules.items():
        numels = params.get(name, [])
        if m.type == "Embedding":
            weight_elems += min(sum(n for _, n in numels), m.output_elements)
        elif m.sequential_steps:
            steps = sequential if sequential is not None else m.sequential_steps
            weight_elems += sum(n * (steps if p.startswith(_RE_READ) else 1) for p, n in numels)
        else:
            weight_elems += sum(n for _, n in numels)
        activation_elems += 2 * m.output_elements
    for name in count.stock:
        weight_elems += sum(n for _, n in params.get(name, []))
    peak = peak_tflops if peak_tflops is not None else accelerator.peak(dtype)  # type: ignore[union-attr]
    bandwidth = accelerator.bandwidth_gbs if accelerator is not None else None
    weight_bytes, activation_bytes = weight_elems * size, activation_elems * size
    compute_s = count.flops / (peak * 1e12)
    memory_s = (weight_bytes + activation_bytes) / (bandwidth * 1e9) if bandwidth else None
    return TimeEstimate(
        hardware=accelerator.key if accelerator else None, hardware_name=accelerator.name if accelerator else None,
        dtype=dtype, peak_tflops=peak, bandwidth_gbs=bandwidth, source=accelerator.source if accelerator else None,
        flops=count.flops, weight_bytes=weight_bytes, activation_bytes=activation_bytes,
        compute_s=compute_s, memory_s=memory_s,
    )
