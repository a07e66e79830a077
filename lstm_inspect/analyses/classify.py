"""Which component and which layer type a parameter belongs to (source document 004's categories)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

COMPONENTS = ("embedding", "recurrent", "projection", "other")
LAYER_TYPES = ("Embedding", "Recurrent", "Linear/Conv", "Attention", "Feed-forward", "Normalization", "Other")

#: Class names of recurrent and state-space blocks in transformers' modern recurrent LMs: Mamba/Mamba2 mixers,
#: RWKV's time mixing (its "attention" is the WKV recurrence), xLSTM's mLSTM layer, RecurrentGemma's RG-LRU block.
RECURRENT_BLOCK = re.compile(r"mixer|rwkvselfattention|xlstmlayer|mlstm|slstm|rglru|recurrentblock|ssm", re.I)

_PROJECTION_NAMES = ("proj", "lm_head", "decoder", "output", "out", "head", "classifier", "fc", "linear")


def layer_type(owner: "nn.Module", ancestors: list["nn.Module"]) -> str:
    """The owner's own kind first (Embedding, Recurrent, Normalization), then what it sits inside."""
    from torch import nn

    if isinstance(owner, (nn.Embedding, nn.EmbeddingBag)):
        return "Embedding"
    if isinstance(owner, (nn.RNNBase, nn.RNNCellBase)):
        return "Recurrent"
    if "norm" in type(owner).__name__.lower():
        return "Normalization"
    for block in (owner, *reversed(ancestors)):
        if RECURRENT_BLOCK.search(type(block).__name__):
            return "Recurrent"
    for parent in reversed(ancestors):
        kind = type(parent).__name__.lower()
        if "attention" in kind:
            return "Attention"
        if "mlp" in kind or "feedforward" in kind:
            return "Feed-forward"
    if isinstance(owner, (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)):
        return "Linear/Conv"
    return "Other"


def component(module_path: str, kind: str) -> str:
    """Embedding / recurrent / projection / other, from the layer type and the module's name."""
    if kind == "Embedding":
        return "embedding"
    if kind == "Recurrent":
        return "recurrent"
    last = module_path.rsplit(".", 1)[-1].lower()
    if kind == "Linear/Conv" and last in _PROJECTION_NAMES:
        return "projection"
    return "other"
