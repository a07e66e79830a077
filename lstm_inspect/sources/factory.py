"""Any ``nn.Module`` from ``package.module:factory`` (a callable that takes no arguments).

The factory is imported (the current directory is on the import path, so a local ``mymodels.py``
works) and called with weight initialisation skipped on the ``meta`` device; when it cannot build
there (it reads weights, or moves them), it is called again normally, on the CPU.

The sample input is a batch × seq tensor of token ids by default. A model that takes something
else says so with a ``sample_input`` attribute, on the returned module or on the factory:
``sample_input(batch, seq, device) -> tensor or tuple of forward arguments``.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Callable

from lstm_inspect.paths import cwd_importable
from lstm_inspect.errors import AnalysisFailed, InvalidInput, first_line

FACTORY = re.compile(r"^([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*):([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)$")


def looks_like_factory(text: str) -> bool:
    return bool(FACTORY.match(text))


def load_factory(text: str) -> tuple[Any, Callable[..., tuple] | None]:
    """``(module, sample_input or None)`` from ``package.module:factory``."""


    match = FACTORY.match(text)
    if not match:
        raise InvalidInput(f"--model {text!r}: a factory is written package.module:callable")
    module_name, attr_path = match.groups()
    with cwd_importable():
        return _load(text, module_name, attr_path)


def _load(text: str, module_name: str, attr_path: str) -> tuple[Any, Callable[..., tuple] | None]:
    import torch
    from torch import nn

    from lstm_inspect.building import skip_weight_init

    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInput(f"--model {text}: cannot import {module_name!r} ({exc})") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - importing user code may fail in any way, sys.exit() included
        raise AnalysisFailed(f"--model {text}: importing {module_name!r} failed: {_first_line(exc)}") from None
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise InvalidInput(f"--model {text}: {module_name!r} has no attribute {attr_path!r}")
        target = getattr(target, part)
    if not callable(target):
        raise InvalidInput(f"--model {text}: {attr_path!r} is not callable")
    try:
        try:
            with skip_weight_init(), torch.device("meta"):
                model = target()
        except Exception:  # noqa: BLE001 - the factory may need real tensors; build it normally instead
            model = target()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - sys.exit() or a BaseException subclass: the factory failed
        raise AnalysisFailed(f"--model {text}: the factory failed: {_first_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise AnalysisFailed(f"--model {text}: the factory returned a {type(model).__name__}, not a torch.nn.Module")
    return model, sample_input_of(model, target, text)


def sample_input_of(model: Any, factory: Any, text: str = "the model") -> Callable[..., tuple] | None:
    """The ``sample_input`` attribute of the model (or of its factory) as a tuple maker, else None."""
    sample = getattr(model, "sample_input", None) or getattr(factory, "sample_input", None)
    if sample is not None and not callable(sample):
        raise InvalidInput(f"--model {text}: sample_input must be callable (batch, seq, device) -> tensor or tuple")
    return as_input_maker(sample) if sample is not None else None


def as_input_maker(sample: Callable[..., Any]) -> Callable[..., tuple]:
    """``sample(batch, seq, device)`` (a tensor or a tuple) as a LoadedModel's input maker (no packed input)."""

    def make(batch: int, seq: int, device: Any = "cpu", lengths: Any = None) -> tuple:
        if lengths is not None:
            raise InvalidInput("lengths (packed input) applies to the built-in model family only", fields=("lengths",))
        value = sample(batch, seq, device)
        return tuple(value) if isinstance(value, (tuple, list)) else (value,)

    return make


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__
