"""lstm-inspect: what a recurrent language model costs before you train or ship it.

The Python API is the same service layer and analyses the CLI uses::

    from lstm_inspect import ModelSpec, load_builtin, count_params
    report = count_params(load_builtin(ModelSpec(hidden_dim=512)))
    report.total, report.trainable

Importing this package does not import torch; the names below load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ModelSpec": "lstm_inspect.spec",
    "LstmInspectError": "lstm_inspect.errors",
    "InvalidInput": "lstm_inspect.errors",
    "AnalysisFailed": "lstm_inspect.errors",
    "BudgetExceeded": "lstm_inspect.errors",
    "LoadedModel": "lstm_inspect.source",
    "load_builtin": "lstm_inspect.source",
    "build_meta": "lstm_inspect.building",
    "build_real": "lstm_inspect.building",
    "resolve_device": "lstm_inspect.building",
    "vocab_from_tokenizer": "lstm_inspect.vocab",
    "count_params": "lstm_inspect.analyses.params",
    "ParamReport": "lstm_inspect.analyses.params",
    "describe_structure": "lstm_inspect.analyses.structure",
    "StructureReport": "lstm_inspect.analyses.structure",
    "count_flops": "lstm_inspect.analyses.flops",
    "count_grid": "lstm_inspect.analyses.flops",
    "resolve_source": "lstm_inspect.sources",
    "compare_models": "lstm_inspect.analyses.compare",
    "run_report": "lstm_inspect.analyses.report",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lstm_inspect' has no attribute {name!r}")
