"""Identical consecutive blocks, seen once: the one grouping helper every renderer uses.

A 12-block GPT-2 has twelve copies of the same rows; a person wants ``h.0–11 (×12, identical)`` with the
per-block and total figures, and only the blocks that differ listed one by one. This is presentation
only: the grouping compares the rows' own figures and types (never changes them), and JSON documents
are built from the report, never from these groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Hashable, Iterable, Sequence, TypeVar

T = TypeVar("T")

#: The dash of a range of block indices (``h.0–11``); an ASCII stdout gets ``-`` (see cli/streams).
RANGE_DASH = "–"


def runs(items: Iterable[T], key: Callable[[T], Hashable | None]) -> list[list[T]]:
    """Consecutive items with the same ``key``, in order; an item whose key is None stands alone."""
    out: list[list[T]] = []
    last: Any = object()
    for item in items:
        k = key(item)
        if out and k is not None and k == last:
            out[-1].append(item)
        else:
            out.append([item])
        last = k
    return out


def index_runs(items: Iterable[T], index: Callable[[T], int], key: Callable[[T], Hashable | None]) -> list[list[T]]:
    """Like :func:`runs`, and the indices must follow one another: layers 2 and 7 are not a run."""
    out: list[list[T]] = []
    for item in items:
        last = out[-1][-1] if out else None
        if (last is not None and key(item) is not None and key(item) == key(last)
                and index(item) == index(last) + 1):
            out[-1].append(item)
        else:
            out.append([item])
    return out


def span_label(prefix: str, first: int, last: int, count: int) -> str:
    """``h.0–11 (×12, identical)``; ``prefix`` may be empty (``0–11``)."""
    head = f"{prefix}." if prefix else ""
    return f"{head}{first}{RANGE_DASH}{last} (×{count}, identical)"


def split_block(name: str) -> tuple[str, int, str] | None:
    """``transformer.h.3.attn.c_attn`` -> ``("transformer.h", 3, "attn.c_attn")``: the first numeric segment."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[:i]), int(part), ".".join(parts[i + 1:])
    return None


@dataclass(frozen=True)
class Group(Generic[T]):
    """Rows shown together: a lone row (``count`` 0), one block (``count`` 1) or a run of identical blocks.

    ``rows`` holds every row of the group in order (a run: all its blocks'); ``block`` the first block's
    rows, which stand for each of them.
    """

    rows: tuple[T, ...]
    block: tuple[T, ...]
    prefix: str = ""
    first: int = 0
    last: int = 0
    count: int = 0

    @property
    def collapsed(self) -> bool:
        return self.count > 1

    @property
    def label(self) -> str:
        return span_label(self.prefix, self.first, self.last, self.count)

    def per_block(self, figure: Callable[[T], int]) -> int:
        """The sum of ``figure`` over one block's rows."""
        return sum(figure(r) for r in self.block)

    def total(self, figure: Callable[[T], int]) -> int:
        """The sum of ``figure`` over every row of the group."""
        return sum(figure(r) for r in self.rows)

    def parts(self, key: Callable[[T], str]) -> list[tuple[str, tuple[T, ...]]]:
        """One block's rows by ``key`` (e.g. component), in first-seen order, with all the group's rows of each."""
        order: dict[str, list[T]] = {}
        for r in self.rows:
            order.setdefault(key(r), []).append(r)
        return [(k, tuple(v)) for k, v in order.items()]


def group_blocks(rows: Sequence[T], name: Callable[[T], str], signature: Callable[[T], Hashable], *,
                 expand: bool = False) -> list[Group[T]]:
    """Rows named ``prefix.N.rest`` gathered per block ``prefix.N`` (at its first row's place), and runs of
    consecutive blocks (N, N+1, ...) whose rows have the same relative names and signatures merged.

    Args:
        rows: the rows in the report's order.
        name: a row's dotted module name.
        signature: what must be equal for two rows to be "identical" (their type and figures).
        expand: every row on its own (``--all``): lone-row groups only.

    Returns:
        The groups in display order; a row outside any block is a group of its own (``count`` 0).
    """
    if expand:
        return [Group(rows=(r,), block=(r,)) for r in rows]
    units: list[tuple[bool, Any]] = []   # (is a block, its key) or (False, a lone row)
    blocks: dict[tuple[str, int], list[T]] = {}
    for r in rows:
        where = split_block(name(r))
        if where is None:
            units.append((False, r))
            continue
        key = where[:2]
        if key not in blocks:
            blocks[key] = []
            units.append((True, key))
        blocks[key].append(r)

    def sig(key: tuple[str, int]) -> tuple:
        return tuple(((split_block(name(r)) or ("", 0, name(r)))[2], signature(r)) for r in blocks[key])

    out: list[Group[T]] = []
    for is_block, unit in units:
        if not is_block:
            out.append(Group(rows=(unit,), block=(unit,)))
            continue
        prefix, index = unit
        prev = out[-1] if out else None
        if (prev is not None and prev.count >= 1 and prev.prefix == prefix and index == prev.last + 1
                and sig((prefix, prev.first)) == sig(unit)):
            out[-1] = Group(rows=prev.rows + tuple(blocks[unit]), block=prev.block, prefix=prefix, first=prev.first,
                            last=index, count=prev.count + 1)
        else:
            out.append(Group(rows=tuple(blocks[unit]), block=tuple(blocks[unit]), prefix=prefix, first=index,
                             last=index, count=1))
    return out
