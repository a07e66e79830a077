"""Never touch the network: transformers and huggingface_hub in offline mode for one call."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Force offline mode while the block runs (a missing file fails at once instead of hanging)."""
    saved = {k: os.environ.get(k) for k in _VARIABLES}
    for key in _VARIABLES:
        os.environ[key] = "1"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
