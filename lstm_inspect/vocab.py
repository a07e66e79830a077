"""Vocabulary size from a tokenizer, loaded through transformers without touching the network."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from lstm_inspect.errors import InvalidInput, first_line
from lstm_inspect.offline import offline


@dataclass(frozen=True)
class TokenizerVocab:
    name: str
    tokens: int          # len(tokenizer): base vocabulary plus added tokens
    added_pad: bool      # the source script adds a pad token when the tokenizer has none

    @property
    def vocab_size(self) -> int:
        return self.tokens + int(self.added_pad)


def vocab_from_tokenizer(name_or_dir: str) -> TokenizerVocab:
    """Load ``name_or_dir`` (a local directory, or a name already in the Hugging Face cache).

    Never downloads: offline mode is forced for the call, so a missing tokenizer is a clear error,
    not a hang. As in the source script, a tokenizer without a pad token gets one (+1).
    """
    if not name_or_dir or not name_or_dir.strip():
        raise InvalidInput("tokenizer needs a directory or a cached model name, got an empty value", fields=("tokenizer",))
    from lstm_inspect.paths import directory_of_regular_files, stat_or_none

    path = Path(name_or_dir).expanduser()
    where = f"tokenizer {name_or_dir}"
    try:
        info = stat_or_none(path, where)
        looks_like_path = os.sep in name_or_dir or name_or_dir.startswith(".") or info is not None
        if looks_like_path and (info is None or not stat.S_ISDIR(info.st_mode)):
            raise InvalidInput(f"tokenizer {name_or_dir!r}: no such directory")
        if looks_like_path:
            directory_of_regular_files(path, where)  # transformers must not open a FIFO or a device in it
    except InvalidInput as exc:   # the path helpers' message begins with ``where``: name the field
        raise InvalidInput(str(exc), fields=("tokenizer",)) from None

    try:
        with offline():
            from transformers import AutoTokenizer

            # trust_remote_code=False: a tokenizer's own code (auto_map) is never run, and never prompted for
            tokenizer = AutoTokenizer.from_pretrained(str(path) if looks_like_path else name_or_dir,
                                                      local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # transformers raises OSError, ValueError, EnvironmentError...
        if "custom code" in str(exc):
            raise InvalidInput(
                f"tokenizer {name_or_dir!r}: the tokenizer needs its own Python code (auto_map) and lstm-inspect "
                "never runs a directory's code; give a tokenizer transformers supports, or vocab_size",
                fields=("tokenizer", "vocab_size"),
            ) from None
        where = "that directory" if looks_like_path else "the local Hugging Face cache (no download is attempted)"
        raise InvalidInput(
            f"tokenizer {name_or_dir!r}: could not load a tokenizer from {where}: {first_line(exc)}",
            fields=("tokenizer",),
        ) from None
    return TokenizerVocab(name=name_or_dir, tokens=len(tokenizer), added_pad=tokenizer.pad_token is None)
