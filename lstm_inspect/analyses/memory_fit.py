"""A fitted law for the estimate: a few traces stand for a whole grid when a model runs one op per time step.

A model whose forward loops over time steps in Python (transformers' reference Mamba, RWKV and xLSTM paths,
GRU/RNN on the CPU) costs one fake-tensor trace per step: minutes for a default grid. Its peak follows a law
instead. The traced step is cut into segments (between module calls, gradient accumulations and the
optimizer's step; the same segments at every size when only the number of steps changes). Within a segment
the live total after each allocating op is bilinear in batch and sequence length, ``a + b·B + c·T + d·B·T``,
when every tensor live there is (activations, states, logits; a constant for workspaces and the optimizer's
temporaries); the segment's peak is the largest of those, and may move from one op to another as the sizes
grow (so each op where it can be gets its own law, :func:`aligned_columns`). Four traces at two batch sizes ×
two short sequence lengths fix the laws; the increment at any cell is the largest. A fifth trace, at the
group's middle batch and the grid's longest sequence, checks them where they are used: when the ops it ran
are not the ones the fit predicts (a code path chosen by length, such as xLSTM's chunked kernel from 64 on) or
a segment's prediction misses by more than :data:`TOLERANCE` of its traced peak (a quadratic term such as
attention scores, a segment that appears only at some sizes), the law is not used past the last of the grid's
lengths where it holds (checked there, at cells of the grid); the lengths past it get a law of their own where
there are three of them or more and it holds there, and their cells are traced otherwise (xLSTM's 64, 128 and
256: its op count is not affine in the number of chunks). That far check is made once, for the group of larger
batches (most of the grid); batch 1's own piece is checked at :data:`NEAR_CHECK` steps (the far check costs about
as much as every fit trace together, per step the same at any batch).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Sequence

from lstm_inspect.analyses.memory_estimate import Trace

#: The largest miss allowed at the check point, as a fraction of the traced peak there.
TOLERANCE = 0.01
#: The two short sequence lengths the law is fitted at (it is checked at the grid's longest).
FIT_SEQS = (8, 16)
#: Where batch 1's own piece is checked when a group of larger batches takes the check at the longest sequence.
NEAR_CHECK = 2 * FIT_SEQS[-1]


@dataclass(frozen=True)
class Piece:
    """The law for a range of batch sizes: per segment ``a + b·B + c·T + d·B·T`` bytes."""

    batches: tuple[int, int]
    seqs: tuple[int, int]
    check: tuple[int, int]
    check_error: float                              # the largest segment's miss at the check / traced peak
    terms: tuple[tuple[Fraction, Fraction, Fraction, Fraction], ...]

    def __call__(self, batch: int, seq: int) -> int:
        return max(max(0, round(_value(term, batch, seq))) for term in self.terms)

    def describe(self) -> str:
        (b1, b2), (t1, t2) = self.batches, self.seqs
        fitted = ", ".join(f"{b}×{t}" for b, t in dict.fromkeys([(b1, t1), (b2, t1), (b1, t2), (b2, t2)]))
        return f"fitted at {fitted}, checked at {self.check[0]}×{self.check[1]} (off by {self.check_error:.2%})"


@dataclass(frozen=True)
class Regime:
    """The law over a range of sequence lengths (``last`` None: no end): batch 1 has its own piece (a size-1
    dimension makes some copies no-ops); larger batches share one."""

    first: int
    last: int | None
    pieces: tuple[Piece, ...]

    def covers(self, seq: int) -> bool:
        return self.first <= seq and (self.last is None or seq <= self.last)

    def __call__(self, batch: int, seq: int) -> int:
        one = [p for p in self.pieces if p.batches == (1, 1)]
        return (one[0] if batch == 1 and one else self.pieces[-1])(batch, seq)

    def describe(self) -> str:
        return "; ".join(p.describe() for p in self.pieces)


@dataclass(frozen=True)
class FittedLaw:
    """The law of each range of sequence lengths the grid's cells fall in: one over every length, or two where the
    model changes its code path inside the grid (a length in neither is traced). The increment at a cell is the
    largest segment's."""

    regimes: tuple[Regime, ...]

    def covers(self, seq: int) -> bool:
        return any(r.covers(seq) for r in self.regimes)

    def __call__(self, batch: int, seq: int) -> int:
        for regime in self.regimes:
            if regime.covers(seq):
                return regime(batch, seq)
        raise ValueError(f"no law covers sequence length {seq}")

    def describe(self) -> str:
        laws = "bytes = a + b·batch + c·seq + d·batch·seq"
        if len(self.regimes) == 1 and self.regimes[0].last is None and self.regimes[0].first <= 1:
            return f"per segment of the step (between module calls), {laws}, {self.regimes[0].describe()}; " \
                   f"within {TOLERANCE:.0%}"
        if len(self.regimes) == 1:
            which = (f"for {_range(self.regimes[0])} only (past it the model runs other ops or the law misses; those "
                     f"cells are traced): {self.regimes[0].describe()}")
        else:
            which = ("one law per range of lengths (the model changes its code path between them; a length in neither "
                     "is traced): " + "; ".join(f"{_range(r)}: {r.describe()}" for r in self.regimes))
        return f"per segment of the step (between module calls), {laws}, {which}; within {TOLERANCE:.0%}"


def _range(regime: Regime) -> str:
    if regime.last is None:
        return f"seq >= {regime.first}"
    return f"seq <= {regime.last}" if regime.first <= 1 else f"seq {regime.first}-{regime.last}"


#: ``trace(batch, seq)``: one tracked step.
Tracer = Callable[[int, int], Trace]


def fit_law(trace: Tracer, batch_sizes: Sequence[int], seq_lens: Sequence[int], *,
            force: bool = False, why: list[str] | None = None) -> tuple[FittedLaw | None, dict[tuple[int, int], int]]:
    """(the law, or None where it does not hold or would not save traces; the peaks of every point traced).

    ``force``: fit even where the step runs as many ops whatever the length, or where tracing every cell
    would cost less (tests). ``why``: receives, in words, why a law that was tried does not hold (nothing when
    none was tried: fused kernels, a grid too small to save traces).

    When the law fitted at :data:`FIT_SEQS` misses at the grid's longest length (a code path chosen by length,
    as xLSTM's chunked kernel from 64 on), it is checked at the grid's lengths in turn and kept up to the last
    one it holds at; the lengths past it get a law of their own, fitted at their two shortest and checked at
    their longest, where there are three or more of them (else their cells are traced). Every point those
    checks and fits trace is a cell of the grid, so trying costs no more than tracing every cell."""
    known: dict[tuple[int, int], Trace] = {}

    def cached(batch: int, seq: int) -> Trace:
        if (batch, seq) not in known:
            known[(batch, seq)] = trace(batch, seq)
        return known[(batch, seq)]

    def peaks() -> dict[tuple[int, int], int]:
        return {p: t.peak for p, t in known.items()}

    why = [] if why is None else why
    longest = max(seq_lens)
    larger = sorted(b for b in set(batch_sizes) if b > 1)
    groups = ([[1]] if 1 in batch_sizes else []) + ([larger] if larger else [])
    # The far check once, for the last group (the larger batches); batch 1 is checked near when they take it.
    checks = [min(longest, NEAR_CHECK) if g is not groups[-1] else longest for g in groups]
    # A trace costs about one unit per time step: the law's traces against every cell's.
    law_cost = sum((1 if len(g) == 1 else 2) * sum(FIT_SEQS) + check for g, check in zip(groups, checks))
    if not force and (longest <= FIT_SEQS[-1] or law_cost >= len(set(batch_sizes)) * sum(set(seq_lens))):
        return None, {}
    pieces = _fit_pieces(cached, groups, FIT_SEQS, checks, force, why)
    if pieces is not None:
        return FittedLaw((Regime(1, None, pieces),)), peaks()
    if force:
        return None, peaks()
    regimes = _split(cached, groups, sorted(set(seq_lens)), why)
    return (FittedLaw(regimes) if regimes else None), peaks()


def _split(trace: Tracer, groups: list[list[int]], seqs: list[int], why: list[str]) -> tuple[Regime, ...]:
    """The regimes of the grid's lengths where the law over every length missed (see :func:`fit_law`)."""
    above = [s for s in seqs if s > FIT_SEQS[-1]]
    low, last = None, None
    for seq in above[:-1]:                      # the longest was checked already
        refused: list[str] = []
        pieces = _fit_pieces(trace, groups, FIT_SEQS, [seq] * len(groups), False, refused)
        if pieces is None:
            break
        low, last = pieces, seq
    if low is None or last is None:
        return ()
    regimes = [Regime(1, last, low)]
    rest = [s for s in above if s > last]
    if len(rest) >= 3:
        refused = []
        high = _fit_pieces(trace, groups, (rest[0], rest[1]), [rest[-1]] * len(groups), False, refused)
        if high is not None:
            regimes.append(Regime(rest[0], None, high))
        else:
            why += refused
    return tuple(regimes)


def _fit_pieces(trace: Tracer, groups: list[list[int]], fit_seqs: tuple[int, int], checks: Sequence[int],
                force: bool, why: list[str]) -> tuple[Piece, ...] | None:
    pieces = []
    for group, check in zip(groups, checks):
        piece = _fit_piece(trace, (group[0], group[-1]), fit_seqs, (group[len(group) // 2], check), force, why)
        if piece is None:
            return None
        pieces.append(piece)
    return tuple(pieces)


def _fit_piece(trace: Tracer, batches: tuple[int, int], fit_seqs: tuple[int, int], check: tuple[int, int],
               force: bool, why: list[str]) -> Piece | None:
    """The law for ``batches``, fitted at ``fit_seqs`` and checked at ``check``: the group's middle batch at
    the grid's longest sequence, so that the law is verified at the far end of where it is used (a model that
    changes its code path at some length, as xLSTM's chunked kernel from 64 on, is caught there); batch 1's
    own piece at :data:`NEAR_CHECK` when the larger batches take the far check."""
    (b1, b2), (t1, t2) = batches, fit_seqs
    fit_points = list(dict.fromkeys([(b1, t1), (b2, t1), (b1, t2), (b2, t2)]))
    traces = {p: trace(*p) for p in fit_points}
    ops = {p: t.ops for p, t in traces.items()}
    if ops[(b1, t1)] == ops[(b1, t2)] and not force:
        return None  # as many ops whatever the length (fused kernels): tracing every cell costs as much
    traces[check] = trace(*check)
    at = f"{check[0]} × {check[1]}"
    if not force and not _same_code_path(ops, traces[check].ops, batches, fit_seqs, check):
        why.append(f"the check at {at} ran other ops than the traces at seq {t1} and {t2} predict (a code path "
                   "chosen by size or batch)")
        return None
    columns = aligned_columns([traces[p] for p in [*fit_points, check]])
    if columns is None:
        why.append(f"the allocations of the traces at seq {t1}, {t2} and the check at {at} do not line up")
        return None
    terms, error = [], 0.0
    fitted: dict[tuple[int, ...], tuple[Fraction, Fraction, Fraction, Fraction]] = {}
    at_check: dict[tuple[int, ...], Fraction] = {}      # each fitted column's value at the check
    for segment in columns:        # per segment: one column per point a peak can be at, or its peak alone
        # (a column seen before, in this segment or another, has the same law: layers of a stack repeat theirs)
        distinct = dict.fromkeys(segment[:-1])
        for column in distinct:
            if column not in fitted:
                fitted[column] = _bilinear(dict(zip(fit_points, column)), (b1, b2), (t1, t2))
                at_check[column] = _value(fitted[column], *check)
        got = segment[-1][0]
        # Every segment must follow its law, not only the largest: a small one may grow fastest.
        error = max(error, float(abs(max(at_check[column] for column in distinct) - got) / max(got, 1)))
        terms += [fitted[column] for column in distinct]
    if error > TOLERANCE:
        why.append(f"a segment missed its law by {error:.1%} at the check {at} (more than {TOLERANCE:.0%})")
        return None
    expected = max(traces[check].peak, 1)
    unique = tuple(_undominated(terms))
    return Piece((b1, b2), (t1, t2), check, float(abs(max(_value(t, *check) for t in unique) - expected) / expected),
                 unique)


def _same_code_path(ops: dict[tuple[int, int], int], check_ops: int, batches: tuple[int, int],
                    fit_seqs: tuple[int, int], check: tuple[int, int]) -> bool:
    """Whether the check ran the ops the fit points predict: as many at every batch size, and a count affine in
    the length (a code path chosen by size, such as a chunked kernel past some length, breaks either)."""
    (b1, b2), (t1, t2) = batches, fit_seqs
    if ops[(b1, t1)] != ops[(b2, t1)] or ops[(b1, t2)] != ops[(b2, t2)]:
        return False
    per_step = Fraction(ops[(b1, t2)] - ops[(b1, t1)], t2 - t1)
    return ops[(b1, t1)] + per_step * (check[1] - t1) == check_ops


def _undominated(terms: list[tuple[Fraction, Fraction, Fraction, Fraction]]):
    """The terms that can be the largest somewhere (batch, seq >= 1): one no larger in every coefficient than
    another never is.

    Compared as integers (every coefficient times the common denominator: a deep stack's train step gives some
    10,000 distinct terms, and Fraction comparisons made this the sweep's largest cost); a kept term that
    dominates another moves to the front, where the next terms, close in the sorted order, meet it first."""
    import math

    unique = sorted(set(terms), reverse=True)
    scale = math.lcm(*(c.denominator for term in unique for c in term)) if unique else 1
    scaled = [tuple(int(c * scale) for c in term) for term in unique]
    kept: list[int] = []                          # indices into unique / scaled
    for i, (a, b, c, d) in enumerate(scaled):
        for j, other in enumerate(kept):
            ka, kb, kc, kd = scaled[other]
            if ka >= a and kb >= b and kc >= c and kd >= d:
                if j:
                    kept.insert(0, kept.pop(j))
                break
        else:
            kept.append(i)
    return [unique[i] for i in sorted(kept)]


def aligned_segments(traces: Sequence[Trace]) -> list[list[int]] | None:
    """Each trace's segment peaks, on the segments every trace has: a mark that does not occur equally
    often in every trace (a module called once per time step) is merged into its neighbours. None when
    the remaining marks differ in order."""
    merged = _merged(traces)
    return None if merged is None else [[peak for peak, _, _ in row] for row in merged]


def aligned_columns(traces: Sequence[Trace]) -> list[list[tuple[int, ...]]] | None:
    """Per aligned segment: the fit traces' values at each point the segment's peak can be at, one tuple
    per point, then ``(the last trace's peak,)`` (the check). None as :func:`aligned_segments`.

    The points are the segment's start and its allocating ops, where they correspond in every fit trace:
    the ops of the longest common beginning and end of the segment's op sequences (all of them when the
    sequences are equal). The peak may move from one op to another as the sizes grow; each op's total follows
    its own law. A loop over time steps inside the segment makes it longer at longer lengths: its first steps
    are in the common beginning, its last ones in the common end, and a total that grows or shrinks steadily
    over the steps peaks at one of those (else the check misses and the law is refused). The segment's peak is
    one more point (what a segment with a loop peaks at when its beginning and end cannot be matched).
    """
    merged = _merged(traces)
    if merged is None:
        return None
    columns = []
    for segment in zip(*merged):
        *fits, (check_peak, _, _) = segment
        profiles = [profile for _, profile, _ in fits]
        head, tail = _corresponding_ends([names for _, _, names in fits])
        peaks = tuple(peak for peak, _, _ in fits)
        if all(profiles) and head + tail:
            ends = [p[:head] + p[len(p) - tail:] for p in profiles]
            columns.append([*zip(*ends), peaks, (check_peak,)])
        else:
            columns.append([peaks, (check_peak,)])
    return columns


def _corresponding_ends(ops: list[tuple[Any, ...]]) -> tuple[int, int]:
    """(points from the beginning, points from the end) that are the same op in every sequence: all of them
    when the sequences are equal; else the common beginning and end, each within half the shortest (a loop
    of the same ops makes names match past the loop's end in the shortest)."""
    if all(o == ops[0] for o in ops):
        return len(ops[0]), 0
    head, tail = _common_ends(ops)
    half = min(map(len, ops)) // 2
    return min(head, half), min(tail, half)


def _common_ends(sequences: list[tuple[Any, ...]]) -> tuple[int, int]:
    """(length of the longest common beginning, of the longest common end not overlapping it in the shortest)."""
    shortest = min(map(len, sequences))
    if all(s == sequences[0] for s in sequences):
        return shortest, 0
    head = next((i for i in range(shortest) if any(s[i] != sequences[0][i] for s in sequences)), shortest)
    tail = next((i for i in range(shortest - head) if any(s[-1 - i] != sequences[0][-1 - i] for s in sequences)),
                shortest - head)
    return head, tail


def _merged(traces: Sequence[Trace]) -> list[list[tuple[int, tuple[int, ...], tuple[Any, ...]]]] | None:
    counts = [Counter(label for label, _ in t.segments) for t in traces]
    kept = {label for label, n in counts[0].items() if all(c.get(label) == n for c in counts[1:])}
    labels: list[list[Any]] = []
    rows: list[list[tuple[int, tuple[int, ...], tuple[Any, ...]]]] = []
    for t in traces:
        profiles = t.profiles or tuple(() for _ in t.segments)
        names = t.profile_ops or tuple(() for _ in t.segments)
        own_labels: list[Any] = []
        own_rows: list[tuple[int, tuple[int, ...], tuple[Any, ...]]] = []
        points: list[int] = []
        ops: list[Any] = []
        running, recorded = 0, True
        for (label, peak), profile, op_names in zip(t.segments, profiles, names):
            running = max(running, peak)
            recorded = recorded and bool(profile)
            points += profile
            ops += op_names
            if label in kept:
                own_labels.append(label)
                own_rows.append((running, tuple(points), tuple(ops)) if recorded else (running, (), ()))
                running, points, ops, recorded = 0, [], [], True
        labels.append(own_labels)
        rows.append(own_rows)
    if any(own != labels[0] for own in labels[1:]) or not labels[0]:
        return None
    return rows


def _bilinear(values: dict[tuple[int, int], int], batches: tuple[int, int],
              seqs: tuple[int, int]) -> tuple[Fraction, Fraction, Fraction, Fraction]:
    """(a, b, c, d) of ``a + b·B + c·T + d·B·T`` through the values at the fit points (affine in T alone
    when the grid has one batch size)."""
    (b1, b2), (t1, t2) = batches, seqs
    v11, v12 = Fraction(values[(b1, t1)]), Fraction(values[(b1, t2)])
    c0 = (v12 - v11) / (t2 - t1)
    if b1 == b2:
        return v11 - c0 * t1, Fraction(0), c0, Fraction(0)
    v21, v22 = Fraction(values[(b2, t1)]), Fraction(values[(b2, t2)])
    d = (v22 - v21 - v12 + v11) / ((b2 - b1) * (t2 - t1))
    b = (v21 - v11) / (b2 - b1) - d * t1
    c = c0 - d * b1
    a = v11 - b * b1 - c * t1 - d * b1 * t1
    return a, b, c, d


def _value(term: tuple[Fraction, Fraction, Fraction, Fraction], batch: int, seq: int) -> Fraction:
    a, b, c, d = term
    return a + b * batch + c * seq + d * batch * seq
