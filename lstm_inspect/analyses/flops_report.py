"""What ``flops`` reports: the counts of one forward (or a grid of them) and how they were counted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lstm_inspect.analyses.flops_time import TRAINING_FACTOR, TimeEstimate
from lstm_inspect.analyses.flops_training import TrainingCount
from lstm_inspect.recurrence import Check
from lstm_inspect.reporting import Rendered

#: The closed-form check of one layer's MACs (kept under its old name for the Python API).
LayerCheck = Check


FLOPS_CONVENTION = (
    "MACs = multiply-accumulates of the matrix products (embedding lookup = 0); "
    "FLOPs = 2·MACs + element-wise work per cell step and sequence: LSTM bias adds 8H, activations 5H, "
    "cell update 4H; GRU bias 6H, activations 2H, n gate 3H, update 4H; RNN bias 2H, activation H; "
    "Linear bias 1 per output element"
)
TRAINING_RULE = "training step ≈ 3 × forward (backward ≈ 2 × forward: gradients w.r.t. inputs and weights)"
TRAINING_CONVENTION = (
    "training step = forward + backward, the backward from dL/d(output) (the loss itself not counted): run "
    "under the operator pass where it runs on fake tensors (counted); a shape-only module's backward by its "
    "closed form (each product's dW and dX, dX only where the input needs a gradient; a recurrent layer's "
    "dh at every step; bias gradients one add per element and step; gate and cell derivatives 2 × the "
    "forward's); the 3× rule only where the backward cannot run"
)
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
    counted_by: str = "hook"  # "hook" (our exact formulas), "thop_stock", or "operators" (the operator pass)


@dataclass(frozen=True)
class ComponentRow:
    component: str           # "embedding", "recurrent layer 0 · forward", "projection", "other"
    module: str
    macs: int
    flops: int
    cell_steps: int | None = None


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
    def waste_cell_steps(self) -> int:
        return self.padded_cell_steps - self.packed_cell_steps

    @property
    def waste_macs(self) -> int:
        return self.padded_macs - self.packed_macs

    @property
    def waste_ratio(self) -> float:
        return self.waste_macs / self.padded_macs if self.padded_macs else 0.0


@dataclass(frozen=True)
class FlopsReport(Rendered):
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
    uncounted_ops: tuple[tuple[str, int], ...] = ()    # (aten op, calls) that ran without a formula
    training: TrainingCount | None = None              # the counted step (None: the 3× rule)

    @property
    def elementwise_flops(self) -> int:
        return self.flops - 2 * self.macs

    @property
    def training_macs(self) -> int:
        return self.training.macs if self.training is not None else TRAINING_FACTOR * self.macs

    @property
    def training_flops(self) -> int:
        return self.training.flops if self.training is not None else TRAINING_FACTOR * self.flops

    @property
    def training_method(self) -> str:
        return self.training.method if self.training is not None else "rule"

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
class FlopsGrid(Rendered):
    model: dict[str, Any]
    batch_sizes: tuple[int, ...]
    seq_lens: tuple[int, ...]
    cells: tuple[GridCell, ...]
    notes: tuple[str, ...]
    uncounted_ops: tuple[tuple[str, int], ...] = ()

    def cell(self, batch: int, seq: int) -> GridCell:
        return next(c for c in self.cells if c.batch_size == batch and c.seq_len == seq)

    @property
    def max_macs(self) -> int:
        return max(c.macs for c in self.cells)


