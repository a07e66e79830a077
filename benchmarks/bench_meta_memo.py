"""Seconds of one traced step on the meta route (``Estimator.trace(1, 64)``), with the meta-kernel memo and without.

The estimator's first trace (1×8) compares the meta and fake routes and chooses one; the traces timed here run
after it, on the meta route: ``cold`` is the first 1×64 trace (the memo holds what the 1×8 trace recorded),
``warm`` the median of the next ``--repeat``. Without ``lstm_inspect.meta_memo`` (an older checkout) only the row without is printed.

Run: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_meta_memo.py [hf:mamba hf:rwkv ...] [--seq 64] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import statistics
import time


def seconds(model: str, seq: int, memo: bool, repeat: int) -> tuple[float, float, str]:
    import torch

    from lstm_inspect.analyses.memory_probes import Estimator
    from lstm_inspect.sources import resolve_source

    patched = None
    if not memo:
        try:
            from lstm_inspect import meta_memo
        except ImportError:
            pass
        else:
            patched, meta_memo.memo_for = meta_memo.memo_for, lambda owner: None  # type: ignore[assignment]
    try:
        with Estimator(resolve_source(model), torch.float32, train=False) as estimator:
            estimator.trace(1, 8)
            got = []
            for _ in range(1 + repeat):
                start = time.perf_counter()
                estimator.trace(1, seq)
                got.append(time.perf_counter() - start)
            return got[0], statistics.median(got[1:]), str(estimator.route)
    finally:
        if patched is not None:
            meta_memo.memo_for = patched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["hf:mamba", "hf:rwkv"])
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    try:
        import lstm_inspect.meta_memo  # noqa: F401
        variants = [False, True]
    except ImportError:
        variants = [False]
    print(f"{'model':<12} {'memo':<5} {'route':<6} {'cold s':>8} {'warm s':>8}")
    for model in args.models:
        for memo in variants:
            cold, warm, route = seconds(model, args.seq, memo, args.repeat)
            print(f"{model:<12} {'on' if memo else 'off':<5} {route:<6} {cold:8.2f} {warm:8.2f}", flush=True)


if __name__ == "__main__":
    main()
