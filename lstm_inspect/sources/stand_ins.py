"""Parameter-free stand-ins for the parts of a transformers model that a pruned checkpoint removed (source
document 003's ZeroAttention/ZeroMLP), and a forward that says why a block cannot run at its pruned widths."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lstm_inspect.errors import AnalysisFailed


class ZeroAttention(nn.Module):
    """An attention pruned away: no parameters; returns zeros so the residual passes through."""

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
        return torch.zeros_like(hidden_states), None


class ZeroMLP(nn.Module):
    """An MLP pruned away: no parameters; returns zeros so the residual passes through."""

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return torch.zeros_like(hidden_states)


class _CannotRun:
    """A module's ``forward`` that refuses with the reason (kept by ``copy.deepcopy``, unlike a closure's state)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise AnalysisFailed(self.reason)


def forward_unavailable(module: nn.Module) -> str | None:
    """Why a forward pass of ``module`` cannot run at the weights' widths (None when it can)."""
    for sub in module.modules():
        blocked = sub.__dict__.get("forward")
        if isinstance(blocked, _CannotRun):
            return blocked.reason
    return None


# --------------------------------------------------------------------------------------------
# finding and reading the weights
# --------------------------------------------------------------------------------------------
