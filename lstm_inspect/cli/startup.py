"""The command line's start-up: Python's cyclic garbage collector waits until the model is loaded.

A command imports torch and transformers (tens of thousands of classes, functions and modules) and builds its
model on meta before it does any work; the collector ran six full passes over those long-lived objects meanwhile,
and one more during the work (0.7 s of the 4.7 s ``memory --model hf:xlstm`` took). So :func:`entry` turns the
collector off, and once the model is loaded what exists is frozen (``gc.freeze``: moved to a permanent generation
that no later pass walks) and the collector is turned back on for the command's own work. The model is on meta
then (no tensor data), so nothing large can be kept alive by a cycle frozen with it. Only the console script and
``python -m lstm_inspect`` do this; the Python API and Typer's test runner leave the collector alone.
"""

from __future__ import annotations

import gc

_deferred = False


def defer_collection() -> None:
    """Turn the cyclic collector off until :func:`model_loaded` (where it is on)."""
    global _deferred
    if gc.isenabled():
        gc.disable()
        _deferred = True


def model_loaded() -> None:
    """Where :func:`defer_collection` turned the collector off: freeze what exists and turn it back on."""
    global _deferred
    if _deferred:
        _deferred = False
        gc.freeze()
        gc.enable()
