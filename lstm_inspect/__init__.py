"""lstm-inspect: what a recurrent language model costs before you train or ship it.

Analyse your own model in three lines::

    from lstm_inspect import inspect_model
    report = inspect_model(my_lstm_model).flops(batch=4, seq=64)
    print(report.macs, report.to_dict()["flops"])

The lower-level service layer and analyses the CLI uses are exported too (``resolve_source``,
``count_params``, ``sweep_memory`` ...). Importing this package does not import torch; the names below
load on first use (type checkers see them through the ``TYPE_CHECKING`` imports).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "inspect_model": "lstm_inspect.api",
    "Inspection": "lstm_inspect.api",
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
    "FlopsReport": "lstm_inspect.analyses.flops",
    "FlopsGrid": "lstm_inspect.analyses.flops",
    "sweep_memory": "lstm_inspect.analyses.memory",
    "MemoryReport": "lstm_inspect.analyses.memory",
    "resolve_source": "lstm_inspect.sources",
    "compare_models": "lstm_inspect.analyses.compare",
    "CompareReport": "lstm_inspect.analyses.compare",
    "run_report": "lstm_inspect.analyses.report",
    "FullReport": "lstm_inspect.analyses.report",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:
    from lstm_inspect.analyses.compare import CompareReport, compare_models
    from lstm_inspect.analyses.flops import FlopsGrid, FlopsReport, count_flops, count_grid
    from lstm_inspect.analyses.memory import MemoryReport, sweep_memory
    from lstm_inspect.analyses.params import ParamReport, count_params
    from lstm_inspect.analyses.report import FullReport, run_report
    from lstm_inspect.analyses.structure import StructureReport, describe_structure
    from lstm_inspect.api import Inspection, inspect_model
    from lstm_inspect.building import build_meta, build_real, resolve_device
    from lstm_inspect.errors import AnalysisFailed, BudgetExceeded, InvalidInput, LstmInspectError
    from lstm_inspect.source import LoadedModel, load_builtin
    from lstm_inspect.sources import resolve_source
    from lstm_inspect.spec import ModelSpec
    from lstm_inspect.vocab import vocab_from_tokenizer


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lstm_inspect' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
