"""Two or more models side by side: source document 003's original-vs-pruned comparison.

Every model after the first is compared with the first (``original`` = the first, ``pruned`` = the
other, whatever the labels): totals with ``reduced`` and ``reduction_ratio``, per component and layer
type, per decoder layer (attention, MLP, head counts, intermediate size) or per recurrent layer and
direction (hidden size), the hyperparameters that changed, and the layers removed entirely.
``reduced`` is negative (and so is the ratio) when the other model is the larger one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from lstm_inspect.analyses.layers import LayerReport, describe_layers
from lstm_inspect.errors import AnalysisFailed, first_line
from lstm_inspect.analyses.params import ParamReport, count_params
from lstm_inspect.reporting import Rendered

if TYPE_CHECKING:
    from lstm_inspect.source import LoadedModel


@dataclass(frozen=True)
class Delta:
    """One quantity in the original and the other model."""

    original: int
    pruned: int

    @property
    def reduced(self) -> int:
        return self.original - self.pruned

    @property
    def reduction_ratio(self) -> float:
        return self.reduced / self.original if self.original else 0.0


@dataclass(frozen=True)
class Change:
    """A hyperparameter whose value differs (``hidden_dim: 768 -> 614``)."""

    name: str
    original: Any
    pruned: Any


@dataclass(frozen=True)
class LayerDelta:
    layer_idx: int
    direction: str | None              # recurrent layers: "forward" | "reverse"; decoder layers: None
    total: Delta
    attention: Delta | None = None
    mlp: Delta | None = None
    norm: Delta | None = None
    changes: tuple[Change, ...] = ()   # num_heads, num_kv_heads, intermediate_size / hidden_size, input_size...
    is_zero_layer: bool = False        # the other model has nothing left of this layer (but its norms)
    mixer: Delta | None = None         # a recurrent/SSM block (Mamba mixer, RWKV time mixing, mLSTM, RG-LRU)


@dataclass(frozen=True)
class CostSummary:
    """The FLOPs and memory estimate of one model at the compared batch × seq (None where unavailable)."""

    macs: int | None = None
    flops: int | None = None
    memory_bytes: int | None = None   # the estimated increment of one forward (source document 000's quantity)
    weights_bytes: int | None = None  # the weights at float32, resident before the step
    note: str | None = None
    state_fixed_bytes: int | None = None      # generation: the state per sequence, whatever the context
    state_per_token_bytes: int | None = None  # generation: per sequence per token (a KV cache)

    def state_at(self, context: int) -> int | None:
        """Generation state per sequence at ``context`` tokens (None: not available)."""
        if self.state_fixed_bytes is None or self.state_per_token_bytes is None:
            return None
        return self.state_fixed_bytes + self.state_per_token_bytes * context


@dataclass(frozen=True)
class PairComparison:
    original_name: str
    pruned_name: str
    total: Delta
    embedding: Delta
    lm_head: Delta
    layer_params: Delta
    components: tuple[tuple[str, Delta], ...]
    layer_types: tuple[tuple[str, Delta], ...]
    layers: tuple[LayerDelta, ...]
    changed: tuple[Change, ...]
    zero_layers: tuple[int, ...]
    macs: Delta | None = None
    flops: Delta | None = None
    memory_bytes: Delta | None = None
    weights_bytes: Delta | None = None
    notes: tuple[str, ...] = ()
    #: Generation: the first context at which the other model's state per sequence reaches the first's
    #: (None: never, or not available), and the same for weights + one sequence's state.
    state_crossing: int | None = None
    total_crossing: int | None = None


@dataclass(frozen=True)
class CompareReport(Rendered):
    names: tuple[str, ...]
    models: tuple[dict[str, Any], ...]
    batch: int
    seq: int
    params: tuple[ParamReport, ...]
    layers: tuple[LayerReport, ...]
    costs: tuple[CostSummary | None, ...]
    comparisons: tuple[PairComparison, ...]    # each model after the first, against the first
    contexts: tuple[int, ...] = ()             # the generation rows' context lengths


def compare_models(models: Sequence["LoadedModel"], names: Sequence[str], *, batch: int = 1, seq: int = 32,
                   costs: bool = True) -> CompareReport:
    """Compare ``models[1:]`` each with ``models[0]``.

    Args:
        models: two or more loaded models.
        names: their labels, one each.
        batch, seq: the token batch at which FLOPs and memory are estimated.
        costs: estimate FLOPs and memory too (where those analyses are available).
    """
    if len(models) < 2 or len(models) != len(names):
        raise ValueError("compare needs two or more models, one name each")
    params = tuple(count_params(m) for m in models)
    layers = tuple(describe_layers(m) for m in models)
    summaries = tuple(cost_summary(m, batch, seq) if costs else None for m in models)
    pairs = tuple(
        _with_model_notes(_pair(names[0], names[i], params[0], params[i], layers[0], layers[i], summaries[0],
                                summaries[i]), (names[0], names[i]), (models[0], models[i]))
        for i in range(1, len(models))
    )
    from lstm_inspect.analyses.generation import DEFAULT_CONTEXTS

    return CompareReport(tuple(names), tuple(m.description for m in models), batch, seq, params, layers,
                         summaries, pairs, DEFAULT_CONTEXTS if costs else ())


def _with_model_notes(pair: PairComparison, names: Sequence[str], models: Sequence["LoadedModel"]) -> PairComparison:
    """The pair's notes after what its two models' sources say (weights that contradict a config...)."""
    import dataclasses

    own = tuple(f"{name}: {note}" for name, model in zip(names, models) for note in model.notes)
    return dataclasses.replace(pair, notes=(*own, *pair.notes)) if own else pair


def cost_summary(loaded: "LoadedModel", batch: int, seq: int) -> CostSummary:
    """FLOPs and the memory estimate of one forward at ``batch`` × ``seq``.

    Memory is the estimate (fake tensors, nothing allocated) of one forward's increment, and the
    weights' bytes, for every model alike. An analysis that fails on this model leaves its fields None
    and says why in the note, rather than failing the comparison.
    """
    from lstm_inspect.analyses.flops import count_flops
    from lstm_inspect.analyses.memory import sweep_memory

    fields: dict[str, Any] = {}
    notes: list[str] = []
    try:
        counted = count_flops(loaded, batch=batch, seq=seq)
        fields.update(macs=counted.macs, flops=counted.flops)
    except AnalysisFailed as exc:   # one analysis failing on one model must not sink the comparison
        notes.append(f"flops: {first_line(exc, 160)}")
    try:
        swept = sweep_memory(loaded, batch_sizes=[batch], seq_lens=[seq], method="estimate")
        fields["weights_bytes"] = int(swept.weights_bytes)
        cell = swept.cells[0]
        if cell.estimated_bytes is not None:
            fields["memory_bytes"] = int(cell.estimated_bytes)
        else:
            notes.append(f"memory: {cell.reason}")
    except AnalysisFailed as exc:
        notes.append(f"memory: {first_line(exc, 160)}")
    try:
        from lstm_inspect.analyses.generation import generation_memory

        gen = generation_memory(loaded, contexts=[1], batch_sizes=[1])
        fields.update(state_fixed_bytes=gen.fixed_bytes, state_per_token_bytes=gen.per_token_bytes)
    except AnalysisFailed as exc:
        notes.append(f"generation: {first_line(exc, 160)}")
    return CostSummary(note="; ".join(notes) or None, **fields)


def _shares(a: tuple, b: tuple) -> tuple[tuple[str, Delta], ...]:
    first = {s.name: s.count for s in a}
    other = {s.name: s.count for s in b}
    order = [s.name for s in a] + [s.name for s in b if s.name not in first]
    return tuple((name, Delta(first.get(name, 0), other.get(name, 0))) for name in order)


def _pair(name_a: str, name_b: str, pa: ParamReport, pb: ParamReport, la: LayerReport, lb: LayerReport,
          ca: CostSummary | None, cb: CostSummary | None) -> PairComparison:
    notes: list[str] = []
    if la.kind != lb.kind:
        notes.append(f"the models' layers are of different kinds ({la.kind} vs {lb.kind}): "
                     "no per-layer comparison")
        layers: tuple[LayerDelta, ...] = ()
    elif la.kind == "decoder":
        layers = _decoder_deltas(la, lb)
    elif la.kind == "recurrent":
        layers = _recurrent_deltas(la, lb)
    else:
        layers = ()
    zero = tuple(sorted({l.layer_idx for l in layers if l.is_zero_layer}))

    def cost(attr: str) -> Delta | None:
        a, b = getattr(ca, attr, None), getattr(cb, attr, None)
        return Delta(a, b) if isinstance(a, int) and isinstance(b, int) else None

    return PairComparison(
        original_name=name_a, pruned_name=name_b,
        total=Delta(pa.total, pb.total),
        embedding=Delta(la.embedding_params, lb.embedding_params),
        lm_head=Delta(la.lm_head_params, lb.lm_head_params),
        layer_params=Delta(la.layer_params, lb.layer_params),
        components=_shares(pa.components, pb.components),
        layer_types=_shares(pa.layer_types, pb.layer_types),
        layers=layers,
        changed=_changes(la.hyperparameters, lb.hyperparameters),
        zero_layers=zero,
        macs=cost("macs"), flops=cost("flops"), memory_bytes=cost("memory_bytes"), weights_bytes=cost("weights_bytes"),
        notes=tuple(notes), **_crossings(ca, cb),
    )


def _crossings(ca: CostSummary | None, cb: CostSummary | None) -> dict[str, int | None]:
    """Where the two models' generation curves cross: state per sequence, and weights + one sequence's state."""
    from lstm_inspect.analyses.generation import crossing_context

    if ca is None or cb is None or ca.state_at(0) is None or cb.state_at(0) is None:
        return {}
    fa, pa, fb, pb = ca.state_fixed_bytes, ca.state_per_token_bytes, cb.state_fixed_bytes, cb.state_per_token_bytes
    if fa is None or pa is None or fb is None or pb is None:
        return {}
    crossings: dict[str, int | None] = {"state_crossing": crossing_context(fa, pa, fb, pb)}
    if ca.weights_bytes is not None and cb.weights_bytes is not None:
        crossings["total_crossing"] = crossing_context(fa + ca.weights_bytes, pa, fb + cb.weights_bytes, pb)
    return crossings


def _changes(a: dict[str, Any], b: dict[str, Any]) -> tuple[Change, ...]:
    keys = list(a) + [k for k in b if k not in a]
    return tuple(Change(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k))


def _decoder_deltas(la: LayerReport, lb: LayerReport) -> tuple[LayerDelta, ...]:
    other = {l.layer_idx: l for l in lb.decoder_layers}
    out = []
    count = max(len(la.decoder_layers), len(lb.decoder_layers))
    mine = {l.layer_idx: l for l in la.decoder_layers}
    for idx in range(count):
        a, b = mine.get(idx), other.get(idx)
        total = Delta(a.total if a else 0, b.total if b else 0)
        attention = Delta(a.attention.total if a and a.attention else 0, b.attention.total if b and b.attention else 0)
        mlp = Delta(a.mlp.total if a and a.mlp else 0, b.mlp.total if b and b.mlp else 0)
        norm = Delta(a.norm if a else 0, b.norm if b else 0)
        # a recurrent/SSM block is its own row part, never folded into attention
        has_mixer = (a is not None and a.mixer is not None) or (b is not None and b.mixer is not None)
        mixer = Delta(a.mixer.total if a and a.mixer else 0, b.mixer.total if b and b.mixer else 0) if has_mixer else None
        changes = []
        for name, get in (("num_heads", lambda l: l.attention.num_heads if l.attention else 0),
                          ("num_kv_heads", lambda l: l.attention.num_kv_heads if l.attention else 0),
                          ("intermediate_size", lambda l: l.mlp.intermediate_size if l.mlp else 0)):
            va, vb = (get(a) if a else 0), (get(b) if b else 0)
            changes.append(Change(name, va, vb))
        if has_mixer:
            for name, get in (("mixer", lambda l: l.mixer.kind if l.mixer else None),
                              ("state_size", lambda l: l.mixer.state_size if l.mixer else None)):
                changes.append(Change(name, get(a) if a else None, get(b) if b else None))
        out.append(LayerDelta(idx, None, total, attention, mlp, norm, tuple(changes),
                              is_zero_layer=a is not None and not a.is_zero_layer and (b is None or b.is_zero_layer),
                              mixer=mixer))
    return tuple(out)


def _recurrent_deltas(la: LayerReport, lb: LayerReport) -> tuple[LayerDelta, ...]:
    mine = {(l.layer_idx, l.direction): l for l in la.recurrent_layers}
    other = {(l.layer_idx, l.direction): l for l in lb.recurrent_layers}
    keys = sorted(set(mine) | set(other), key=lambda k: (k[0], k[1] != "forward"))
    out = []
    for key in keys:
        a, b = mine.get(key), other.get(key)
        total = Delta(a.params if a else 0, b.params if b else 0)
        changes = tuple(
            Change(name, getattr(a, name) if a else 0, getattr(b, name) if b else 0)
            for name in ("hidden_size", "input_size", "proj_size")
        )
        out.append(LayerDelta(key[0], key[1], total, changes=changes,
                              is_zero_layer=total.original > 0 and total.pruned == 0))
    return tuple(out)
