"""Per-op CUDA allocations of cuDNN's RNN kernels (reserve, workspace) and of the default model's step.

What measured ``tests/data/cudnn_h200.json`` (``rnn_calls``), the data the estimate's model of cuDNN
(``lstm_inspect/analyses/memory_cudnn.py``) was fitted to and is tested against. Run it on a machine with a
GPU, from the repository's root::

    python benchmarks/cudnn_probe.py probe.json [seconds]     # ~1 minute on an H200

Writes one JSON document. Each recorded op: bytes allocated before it, its peak above that (transient
included), what it kept, and its outputs' storage bytes and shapes. Without CUDA it runs six configurations
on the CPU (a smoke test of the script; no cuDNN op appears there). The default grid's measured cells came
from ``benchmarks/cuda_check.sh``.
"""
import json
import sys
import time

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CUDA = dev.type == "cuda"
doc = {"torch": torch.__version__, "cuda": torch.version.cuda,
       "cudnn": torch.backends.cudnn.version() if CUDA else None,
       "gpu": torch.cuda.get_device_name(0) if CUDA else None, "runs": [], "errors": []}


def alloc():
    return torch.cuda.memory_allocated() if CUDA else 0


class Recorder(TorchDispatchMode):
    def __init__(self, only=None):
        super().__init__()
        self.rows = []
        self.only = only

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if self.only and not any(s in name for s in self.only):
            return func(*args, **(kwargs or {}))
        if CUDA:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        before = alloc()
        out = func(*args, **(kwargs or {}))
        if CUDA:
            torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() if CUDA else 0
        after = alloc()
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        self.rows.append({"op": name, "before": before, "transient": peak - before, "kept": after - before,
                          "out_bytes": [t.untyped_storage().nbytes() for t in outs],
                          "out_shapes": [list(t.shape) for t in outs],
                          "in_shapes": [list(t.shape) for t in ins][:6]})
        return out


def rnn_run(cell, E, H, L, bidir, proj, B, T, dtype, train):
    kw = dict(num_layers=L, bidirectional=bidir)
    if proj:
        kw["proj_size"] = proj
    mod = getattr(nn, cell)(E, H, **kw).to(dev, dtype)
    x = torch.randn(T, B, E, device=dev, dtype=dtype)
    rec = Recorder(only=("rnn", "lstm", "gru"))
    if CUDA:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = alloc()
    with rec:
        if train:
            y, _ = mod(x)
            y.float().sum().backward()
        else:
            with torch.no_grad():
                y, _ = mod(x)
    step_peak = (torch.cuda.max_memory_allocated() if CUDA else 0) - base
    rows = [{k: r[k] for k in ("op", "transient", "kept", "out_bytes", "out_shapes")} for r in rec.rows]
    del y, mod, x
    return {"cell": cell, "E": E, "H": H, "L": L, "bidir": bidir, "proj": proj, "B": B, "T": T,
            "dtype": str(dtype).split(".")[-1], "train": train, "step_peak": step_peak, "ops": rows}


def sweep():
    configs = []
    for dtype in (torch.float32, torch.bfloat16):
        for H in (64, 256, 768, 1024):
            for L, bidir in ((1, False), (2, False), (2, True)):
                for B in (1, 4, 16, 64):
                    for T in (32, 128, 512):
                        for train in (False, True):
                            configs.append(("LSTM", H, H, L, bidir, 0, B, T, dtype, train))
    for cell in ("GRU", "RNN"):
        for H in (64, 768):
            for L, bidir in ((1, False), (2, True)):
                for B in (1, 16):
                    for T in (32, 256):
                        for train in (False, True):
                            configs.append((cell, H, H, L, bidir, 0, B, T, torch.float32, train))
    for B in (1, 16):
        for T in (32, 256):
            for train in (False, True):
                configs.append(("LSTM", 768, 768, 2, False, 256, B, T, torch.float32, train))
                configs.append(("LSTM", 512, 1024, 1, True, 0, B, T, torch.float32, train))
    return configs


def default_step(B, T, train, optimizer="none"):
    """The built-in default model's measured step (the Meter's own), every op recorded."""
    sys.path.insert(0, ".")
    from lstm_inspect.analyses.memory_probes import Meter
    from lstm_inspect.source import load_builtin
    from lstm_inspect.spec import ModelSpec

    loaded = load_builtin(ModelSpec())
    with Meter(loaded, dev, torch.float32, train=train, optimizer=optimizer) as meter:
        measured = meter(B, T)
        args = loaded.inputs(B, T, dev, None)
        rec = Recorder()
        base = alloc()
        if CUDA:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        with rec:
            meter._step(args)
        peak = (torch.cuda.max_memory_allocated() if CUDA else 0) - base
        meter._reset()
    rows = [{k: r[k] for k in ("op", "before", "transient", "kept", "out_bytes", "out_shapes")} for r in rec.rows]
    for r in rows:
        r["before"] -= base
    return {"B": B, "T": T, "train": train, "optimizer": optimizer, "measured": measured,
            "recorded_peak": peak, "ops": rows}


if __name__ == "__main__":
    t0 = time.time()
    limit = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
    configs = sweep() if CUDA else sweep()[:6]
    for cfg in configs:
        if time.time() - t0 > limit:
            doc["errors"].append(f"time limit: stopped before {cfg}")
            break
        try:
            doc["runs"].append(rnn_run(*cfg))
        except Exception as exc:  # record and go on
            doc["errors"].append(f"{cfg}: {type(exc).__name__}: {exc}"[:300])
        if CUDA:
            torch.cuda.empty_cache()
    doc["steps"] = []
    for B, T, train, opt in ((4, 64, False, "none"), (16, 256, False, "none"), (4, 64, True, "none"),
                             (16, 256, True, "none"), (16, 256, True, "adam")):
        try:
            doc["steps"].append(default_step(B, T, train, opt))
        except Exception as exc:
            doc["errors"].append(f"default step {B}x{T} {train} {opt}: {type(exc).__name__}: {exc}"[:300])
    doc["seconds"] = time.time() - t0
    with open(sys.argv[1], "w") as f:
        json.dump(doc, f)
    print(f"probe: {len(doc['runs'])} runs, {len(doc['errors'])} errors, {doc['seconds']:.1f} s")
