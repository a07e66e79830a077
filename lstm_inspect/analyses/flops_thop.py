"""One counting pass: ``thop.profile`` with our custom ops (exact recurrent, Linear, Embedding, Conv1D), the
operator pass for everything outside hooked modules, and thop's own stock figure for reference, all from the
same forward (thop's stock hooks run on shadows of their modules next to ours, :func:`_stock_hooks`)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lstm_inspect.errors import AnalysisFailed, first_line
from lstm_inspect.thop_ops import Recorder, make_custom_ops
from lstm_inspect.op_pass import OperatorTally
from lstm_inspect.scan_stand_ins import scan_stand_ins

if TYPE_CHECKING:
    from torch import nn

    from lstm_inspect.analyses.flops_training import TrainingCount

    from lstm_inspect.source import LoadedModel


@dataclass
class _Count:
    recorder: Recorder
    macs: int
    flops: int
    stock: dict[str, tuple[str, int, int]]   # modules counted by thop's stock hooks: name -> (type, MACs, FLOPs)
    operators: OperatorTally                 # what ran outside the hooked modules
    training: "TrainingCount | None" = None  # the training step, when asked for
    thop_raw: int = -1                       # what thop.profile with its stock hooks returns (-1: it would fail)


def _hooked(module: "nn.Module", custom_ops: dict) -> set[str]:
    """Qualified names of the modules a thop hook counts (ours or thop's stock ones): the operator pass skips
    what runs inside them. Containers (thop gives nn.Sequential a zero hook) are not counted by their hook."""
    from thop.profile import register_hooks
    from torch import nn

    return {name for name, m in module.named_modules()
            if (type(m) in custom_ops or type(m) in register_hooks) and not isinstance(m, (nn.Sequential, nn.ModuleList))}


def _profile(module: "nn.Module", inputs: tuple, loaded: "LoadedModel", where: str, *,
             training: bool = False) -> _Count:
    """One thop.profile pass with our custom_ops (outside the fake mode); ``where`` names the input's options.

    With ``training``, the forward runs with gradients enabled and its backward is counted too
    (:mod:`~lstm_inspect.analyses.flops_training`)."""
    import thop

    from lstm_inspect.op_pass import operator_pass

    from lstm_inspect.tracing import own_forward

    recorder = Recorder(names={id(m): name for name, m in module.named_modules()})
    custom_ops = make_custom_ops(recorder)
    # Our own forwards (the built-in model, a rebuilt checkpoint) run nothing outside their hooked modules; a
    # dispatch mode's first use imports torch._dynamo (about one more `import torch`), so they go without it.
    own = own_forward(module)
    watch = contextlib.nullcontext(OperatorTally()) if own else operator_pass(module, _hooked(module, custom_ops))
    grab: Any = _grad_forward(module) if training else contextlib.nullcontext([])
    scans = contextlib.ExitStack()
    scanned = scans.enter_context(scan_stand_ins(module))
    try:
        with _quiet(), watch as operators, grab as outputs, _stock_hooks(module) as thop_raw:
            total, _params, layers = thop.profile(module, inputs, custom_ops=custom_ops,
                                                  verbose=False, ret_layer_info=True)
    except Exception as exc:  # a user's model may fail in any way
        from lstm_inspect.building import is_size_overflow, too_large

        if is_size_overflow(exc):
            raise too_large(where, exc, tuple(f for f in ("batch_sizes", "seq_lens", "batch", "seq", "lengths")
                                              if f in where.split())) from None
        scans.close()
        raise AnalysisFailed(f"counting a forward pass of {loaded.name} failed: {first_line(exc)}") from None
    from torch.nn.modules.conv import _ConvNd

    by_name = dict(module.named_modules())
    stock: dict[str, tuple[str, int, int]] = {}
    for name, ops in _leaves(layers, ""):
        if name not in recorder.modules and ops:
            sub = by_name.get(name)
            # thop's convolution hook counts multiply-accumulates; its other hooks (norms, pooling,
            # activations, softmax) count element-wise operations
            if isinstance(sub, _ConvNd):
                stock[name] = (type(sub).__name__, ops, 2 * ops)
            else:
                stock[name] = (type(sub).__name__, 0, ops)
    macs = sum(m.macs for m in recorder.modules.values()) + sum(v[1] for v in stock.values()) + operators.macs
    flops = (2 * sum(m.macs for m in recorder.modules.values()) + sum(m.elementwise for m in recorder.modules.values())
             + sum(v[2] for v in stock.values()) + 2 * operators.macs + operators.elementwise)
    step = None
    if training:
        from lstm_inspect.analyses.flops_training import run_backward, training_count

        with _quiet(), scans:
            backward, reason = run_backward(module, outputs, not own)
        outputs.clear()
        step = training_count(module, macs, flops, recorder, backward, not own, reason, scanned)
    scans.close()
    return _Count(recorder, macs, flops, stock, operators, step, thop_raw())


@contextlib.contextmanager
def _grad_forward(module: "nn.Module"):
    """Yield a list that receives the root's output, the forward run with gradients enabled (thop runs it
    under ``no_grad``, which restores the previous mode when it ends)."""
    import torch

    outputs: list = []

    def enable(_module: "nn.Module", _inputs: tuple) -> None:
        torch.set_grad_enabled(True)

    handles = [module.register_forward_pre_hook(enable),
               module.register_forward_hook(lambda _m, _i, out: outputs.append(out))]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def _quiet():
    """Silence torch's kernel-choice notice (oneDNN has no LSTM projection): no kernel runs here."""
    import contextlib
    import warnings

    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.filterwarnings("ignore", message=".*not supported with oneDNN.*")
    return stack


def _leaves(layers: dict, prefix: str):
    for name, (ops, _params, children) in layers.items():
        path = f"{prefix}.{name}" if prefix else name
        if children:
            yield from _leaves(children, path)
        else:
            yield path, int(round(float(ops)))


class _Shadow:
    """A module as thop's stock hook sees it: its attributes, but a ``total_ops`` of its own."""

    def __init__(self, module: "nn.Module") -> None:
        import torch

        self.module = module
        self.total_ops = torch.zeros(1, dtype=torch.float64)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


@contextlib.contextmanager
def _stock_hooks(module: "nn.Module"):
    """thop's stock hooks (its ``register_hooks`` table, what ``thop.profile`` uses without custom_ops) on every
    module of their types, each adding to its module's shadow: yields a callable that returns the figure
    ``thop.profile(module, inputs)`` would (summed as its ``dfs_count`` sums), -1 where a stock hook fails.

    thop registers its hook once per visit of ``model.apply``: a module held at two places in the tree has two
    hooks there, so each of its calls is charged twice (and its figure is summed at both places)."""
    from thop.profile import register_hooks

    shadows: dict[Any, _Shadow] = {}
    visits: dict[Any, int] = {}
    failed: list[str] = []

    def visit(m: "nn.Module") -> None:          # the order and multiplicity of ``nn.Module.apply``
        for child in m.children():
            visit(child)
        visits[m] = visits.get(m, 0) + 1

    def hook(m: "nn.Module", inputs: tuple, output: Any) -> None:
        try:
            for _ in range(visits[m]):
                register_hooks[type(m)](shadows[m], inputs, output)
        except Exception as exc:  # only a reference figure: never fail the count for it
            failed.append(first_line(exc))

    visit(module)
    handles = []
    for m in visits:
        if type(m) in register_hooks:
            shadows[m] = _Shadow(m)
            handles.append(m.register_forward_hook(hook))
    try:
        yield lambda: -1 if failed else int(round(float(_stock_total(module, shadows))))
    finally:
        for handle in handles:
            handle.remove()


def _stock_total(module: "nn.Module", shadows: dict[Any, _Shadow]) -> float:
    """thop's ``dfs_count``: a hooked child's own figure (containers aside), an unhooked one's children, summed in
    thop's order in float64."""
    from torch import nn

    total = shadows[module].total_ops.item() if module in shadows else 0.0
    for _name, child in module.named_children():
        if child in shadows and not isinstance(child, (nn.Sequential, nn.ModuleList)):
            total += shadows[child].total_ops.item()
        else:
            total += _stock_total(child, shadows)
    return total
