"""A fitted law for the estimate: a few traces stand for a whole grid when a model runs one op per time step.

A model whose forward loops over time steps in Python (transformers' reference Mamba, RWKV and xLSTM paths,
GRU/RNN on the CPU) costs one fake-tensor trace per step: minutes for a default grid. Its peak follows a law
instead. The traced step is cut into segments (between module calls, gradient accumulations and the
optimizer's step; the same segments at every size when only the number of steps changes), and the peak of
each segment is bilinear in batch and sequence length, ``a + b·B + c·T + d·B·T``, when every tensor live
in it is (activations, states, logits; a constant for workspaces and the optimizer's temporaries). Four
traces at two batch sizes × two short sequence lengths fix each segment's law; the increment at any cell
is the largest segment's. A fifth trace at a longer sequence checks every segment's prediction: when one
misses by more than :data:`TOLERANCE` of that segment's traced peak (a quadratic term such as attention scores, a
segment that appears only at some sizes), the law is not used and every cell is traced.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Sequence

from lstm_inspect.analyses.memory_estimate import Trace

#: The largest miss allowed at the check point, as a fraction of the traced peak there.
TOLERANCE = 0.01
#: The two short sequence lengths the law is fitted at, and the longer one it is checked at.
FIT_SEQS = (8, 16)
CHECK_SEQ = 32


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
class FittedLaw:
    """Batch 1 has its own piece (a size-1 dimension makes some copies no-ops); larger batches share one.
    The increment at a cell is the largest segment's."""

    pieces: tuple[Piece, ...]

    def __call__(self, batch: int, seq: int) -> int:
        one = [p for p in self.pieces if p.batches == (1, 1)]
        return (one[0] if batch == 1 and one else self.pieces[-1])(batch, seq)

    def describe(self) -> str:
        return (f"per segment of the step (between module calls), bytes = a + b·batch + c·seq + d·batch·seq, "
                f"{'; '.join(p.describe() for p in self.pieces)}; within {TOLERANCE:.0%}")


def fit_law(trace: Callable[[int, int], Trace], batch_sizes: Sequence[int], seq_lens: Sequence[int], *,
            force: bool = False) -> tuple[FittedLaw | None, dict[tuple[int, int], int]]:
    """(the law, or None where it does not hold or would not save traces; the peaks of every point traced).

    ``force``: fit even where the step runs as many ops whatever the length (tests)."""
    traced: dict[tuple[int, int], int] = {}
    if not force and (max(seq_lens) <= CHECK_SEQ or len(batch_sizes) * len(seq_lens) <= 5):
        return None, traced
    larger = sorted(b for b in set(batch_sizes) if b > 1)
    groups = ([[1]] if 1 in batch_sizes else []) + ([larger] if larger else [])
    pieces = []
    for group in groups:
        piece = _fit_piece(trace, (group[0], group[-1]), group[len(group) // 2], traced, force)
        if piece is None:
            return None, traced
        pieces.append(piece)
    return FittedLaw(tuple(pieces)), traced


def _fit_piece(trace: Callable[[int, int], Trace], batches: tuple[int, int], middle: int,
               traced: dict[tuple[int, int], int], force: bool) -> Piece | None:
    (b1, b2), (t1, t2), check = batches, FIT_SEQS, (middle, CHECK_SEQ)
    fit_points = list(dict.fromkeys([(b1, t1), (b2, t1), (b1, t2), (b2, t2)]))
    traces = {p: trace(*p) for p in fit_points}
    traced.update({p: t.peak for p, t in traces.items()})
    if traces[(b1, t1)].ops == traces[(b1, t2)].ops and not force:
        return None  # as many ops whatever the length (fused kernels): tracing every cell costs as much
    traces[check] = trace(*check)
    traced[check] = traces[check].peak
    peaks = aligned_segments([traces[p] for p in [*fit_points, check]])
    if peaks is None:
        return None
    terms = tuple(_bilinear(dict(zip(fit_points, column)), (b1, b2), (t1, t2)) for column in zip(*peaks[:-1]))
    expected = max(traced[check], 1)
    # Every segment must follow its law, not only the largest: a small one may grow fastest beyond the check.
    error = max(abs(_value(term, *check) - got) / max(got, 1) for term, got in zip(terms, peaks[-1]))
    if error > TOLERANCE:
        return None
    piece = Piece((b1, b2), (t1, t2), check, float(abs(max(_value(t, *check) for t in terms) - expected) / expected),
                  terms)
    return piece


def aligned_segments(traces: Sequence[Trace]) -> list[list[int]] | None:
    """Each trace's segment peaks, on the segments every trace has: a mark that does not occur equally
    often in every trace (a module called once per time step) is merged into its neighbours. None when
    the remaining marks differ in order."""
    counts = [Counter(label for label, _ in t.segments) for t in traces]
    kept = {label for label, n in counts[0].items() if all(c.get(label) == n for c in counts[1:])}
    labels: list[list[Any]] = []
    peaks: list[list[int]] = []
    for t in traces:
        own_labels, own_peaks, running = [], [], 0
        for label, peak in t.segments:
            running = max(running, peak)
            if label in kept:
                own_labels.append(label)
                own_peaks.append(running)
                running = 0
        labels.append(own_labels)
        peaks.append(own_peaks)
    if any(own != labels[0] for own in labels[1:]) or not labels[0]:
        return None
    return peaks


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
