"""Generation memory: what a model holds per sequence while it generates, over a context-length axis.

A recurrent model carries a fixed state per sequence (h/c per layer and direction; Mamba's convolution
and SSM states; RWKV's and xLSTM's states); a transformer carries a KV cache that grows with the context
(``2 · layers · kv_heads · head_dim · T · bytes``). Both are read from **the state tensors the model
really returns**, on fake tensors (nothing allocated):

* recurrent modules (``nn.LSTM/GRU/RNN``): the ``h_n`` (and ``c_n``) each returns, caught by a hook;
* transformers: the cache object the forward returns with ``use_cache=True`` (``DynamicCache`` layers'
  keys/values, Mamba's conv/SSM states, ``xLSTMCache``, RWKV's state list): every tensor in it, each
  storage once.

Per sequence the state is ``fixed + per_token · T``: the forward runs at a batch of one at two context
lengths (the difference gives the per-token part) and a third checks that the law is linear; any other
growth is refused rather than extrapolated. The total at a batch ``B`` and context ``T`` is
``weights + B · (fixed + per_token · T + step)``, where ``step`` is the output one decoding step returns
per sequence (the logits row, ``V`` values: larger than an LSTM's state); the hidden-sized temporaries
inside the step are not in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from lstm_inspect.errors import AnalysisFailed, InvalidInput
from lstm_inspect.reporting import Rendered

if TYPE_CHECKING:
    from lstm_inspect.source import LoadedModel

#: 1 … 128k tokens: from a prompt to a long-context window.
DEFAULT_CONTEXTS = (1024, 4096, 16384, 32768, 65536, 131072)
DEFAULT_BATCH_SIZES = (1, 8, 32)
#: The context lengths the forward runs at (a batch of one): two give the law, the third checks it.
PROBE_CONTEXTS = (1, 2, 4)


@dataclass(frozen=True)
class StateTensor:
    """One tensor of the per-sequence state at a batch of one and a context of one token."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    bytes: int


@dataclass(frozen=True)
class GenerationRow:
    """One context length: bytes per sequence, totals per batch size, and the largest batch in a budget."""

    context: int
    per_sequence_bytes: int
    total_bytes: tuple[int, ...]          # weights + B · (per_sequence + step_output_bytes), one per batch size
    max_batch_size: int | None = None     # with a budget: the largest B whose total fits (0: none)


@dataclass(frozen=True)
class GenerationReport(Rendered):
    model: dict[str, Any]
    dtype: str
    kind: str                             # "recurrent state", "kv cache", "kv cache + recurrent state"
    weights_bytes: int
    fixed_bytes: int                      # per sequence, whatever the context
    per_token_bytes: int                  # per sequence per token of context
    step_output_bytes: int                # per sequence: the output of one decoding step (the logits row)
    state_tensors: tuple[StateTensor, ...]
    contexts: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    rows: tuple[GenerationRow, ...]
    budget_bytes: int | None = None
    notes: tuple[str, ...] = ()

    def per_sequence(self, context: int) -> int:
        return self.fixed_bytes + self.per_token_bytes * context


def generation_memory(loaded: "LoadedModel", *, contexts: Sequence[int] = DEFAULT_CONTEXTS,
                      batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, dtype: str = "float32",
                      budget_bytes: int | None = None) -> GenerationReport:
    """Per-sequence generation state and totals over ``contexts`` × ``batch_sizes``.

    Args:
        loaded: any model whose forward takes a token batch.
        contexts: context lengths (tokens held per sequence).
        batch_sizes: sequences generated at once.
        dtype: float32, float16 or bfloat16 (weights and state).
        budget_bytes: also the largest batch whose weights + states fit, per context.

    Returns:
        A GenerationReport.

    Raises:
        AnalysisFailed: the forward returned no state, or a state that does not grow linearly.
    """
    from lstm_inspect.analyses.memory_report import DTYPES, check_choice
    from lstm_inspect.analyses.memory_step import torch_dtype, weights_bytes

    dtype = check_choice(dtype, DTYPES, "dtype")
    if not contexts or not batch_sizes or min(contexts) < 1 or min(batch_sizes) < 1:
        raise InvalidInput("contexts and batch sizes need at least one value each, all >= 1",
                           fields=("contexts", "batch_sizes"))
    tdtype = torch_dtype(dtype)
    weights = weights_bytes(loaded.module, tdtype)
    traced = [state_tensors(loaded, context, tdtype, with_output=True) for context in PROBE_CONTEXTS]
    probes = [p for p, _ in traced]
    step = traced[0][1]
    sizes = [sum(t.bytes for t in probe) for probe in probes]
    (t1, t2, t3), (s1, s2, s3) = PROBE_CONTEXTS, sizes
    per_token, rest = divmod(s2 - s1, t2 - t1)
    fixed = s1 - per_token * t1
    if rest or per_token < 0 or fixed < 0 or s3 != fixed + per_token * t3:
        raise AnalysisFailed(f"the model's generation state does not grow linearly with the context "
                             f"({', '.join(f'{s:,} B at {t}' for t, s in zip(PROBE_CONTEXTS, sizes))}); not extrapolated")
    kind = ("kv cache + recurrent state" if per_token and fixed else "kv cache" if per_token else "recurrent state")
    rows = []
    for context in contexts:
        per_seq = fixed + per_token * context
        fit = None
        held = per_seq + step
        if budget_bytes is not None:
            fit = max(0, (budget_bytes - weights) // held) if held else None
        rows.append(GenerationRow(context, per_seq, tuple(weights + b * held for b in batch_sizes), fit))
    notes = ["state: the tensors the model returns (recurrent h_n/c_n, transformers' cache), read on fake tensors "
             f"at contexts {', '.join(map(str, PROBE_CONTEXTS))} (batch 1); other contexts follow fixed + per_token · T",
             "totals: weights + batch × (state + one decoding step's output, the logits row); the step's "
             "hidden-sized temporaries are not in them"]
    limit = getattr(getattr(loaded.module, "config", None), "max_position_embeddings", None)
    if isinstance(limit, int) and max(contexts) > limit:
        notes.append(f"the model's config allows at most {limit:,} positions (max_position_embeddings): longer "
                     "contexts show what its cache would hold, not what it can run")
    return GenerationReport(
        model=loaded.description, dtype=dtype, kind=kind, weights_bytes=weights, fixed_bytes=fixed,
        per_token_bytes=per_token, step_output_bytes=step, state_tensors=probes[0], contexts=tuple(contexts), batch_sizes=tuple(batch_sizes),
        rows=tuple(rows), budget_bytes=budget_bytes, notes=(*loaded.notes, *notes),
    )


def crossing_context(fixed_a: int, per_token_a: int, fixed_b: int, per_token_b: int) -> int | None:
    """The smallest context at which model b's state per sequence reaches model a's (None: never)."""
    if per_token_b == per_token_a:
        return 1 if fixed_b >= fixed_a else None
    if per_token_b < per_token_a:
        return crossing_context(fixed_b, per_token_b, fixed_a, per_token_a) if fixed_b < fixed_a else 1
    gap = fixed_a - fixed_b
    return max(1, -(-gap // (per_token_b - per_token_a)))


def state_tensors(loaded: "LoadedModel", context: int, dtype: Any, *, with_output: bool = False) -> Any:
    """The state one sequence carries after ``context`` tokens: the tensors the forward returns as state.

    With ``with_output``: ``(tensors, bytes of the last position's output)``, the output being the first
    floating tensor the forward returns (the logits) and its last position what one decoding step returns."""
    import torch

    from lstm_inspect.building import quiet_fake_tensor_log
    from lstm_inspect.tracing import fake_copy, meta_copy
    import dataclasses

    converted = dataclasses.replace(loaded, module=meta_copy(loaded.module, dtype))
    found: list[tuple[str, Any]] = []
    with quiet_fake_tensor_log(), fake_copy(converted, shape_only_recurrent=True) as (module, mode):
        module.eval()
        handles = [sub.register_forward_hook(_state_hook(name, found))
                   for name, sub in module.named_modules() if isinstance(sub, torch.nn.RNNBase)]
        try:
            with mode, torch.no_grad():
                args = converted.inputs(1, context, "cpu")
                output = _forward_with_cache(module, args, bool(handles))
        except Exception as exc:  # noqa: BLE001 - a user's model may fail in any way
            from lstm_inspect.errors import first_line

            raise AnalysisFailed(f"the forward for the generation state failed: {first_line(exc)}") from None
        finally:
            for handle in handles:
                handle.remove()
        if not handles:
            cache = _cache_of(output)
            if cache is None:
                raise AnalysisFailed("the model returns no generation state (no recurrent module, no cache from "
                                     "use_cache=True): nothing to show")
            _collect("cache", cache, found, set())
        step = _last_position_bytes(output, context)
    seen: set[int] = set()
    tensors = []
    for name, t in found:
        key = int(t.untyped_storage()._cdata)
        if key in seen:
            continue
        seen.add(key)
        tensors.append(StateTensor(name, tuple(int(d) for d in t.shape), str(t.dtype).removeprefix("torch."),
                                   int(t.numel() * t.element_size())))
    return (tuple(tensors), step) if with_output else tuple(tensors)


def _last_position_bytes(output: Any, context: int) -> int:
    from lstm_inspect.analyses.memory_step import _first_float_tensor

    logits = _first_float_tensor(output)
    if logits is None:
        return 0
    return int(logits.numel() * logits.element_size()) // max(1, context)


def _state_hook(name: str, found: list):
    def hook(_module, _inputs, output):
        state = output[1]
        if isinstance(state, tuple):          # LSTM: (h_n, c_n)
            found.extend([(f"{name}.h_n", state[0]), (f"{name}.c_n", state[1])])
        else:
            found.append((f"{name}.h_n", state))
    return hook


def _forward_with_cache(module: Any, args: tuple, has_recurrent: bool) -> Any:
    if has_recurrent:
        return module(*args)
    try:
        return module(*args, use_cache=True)
    except TypeError:                          # a forward without ``use_cache``
        return module(*args)


def _cache_of(output: Any) -> Any:
    """The cache a transformers forward returns (``past_key_values``/``cache``/``state``), or None."""
    if hasattr(output, "keys"):
        for key in ("past_key_values", "cache", "cache_params", "state"):
            if key in output.keys() and output[key] is not None:
                return output[key]
    return None


def _collect(name: str, value: Any, found: list, visited: set[int]) -> None:
    """Every tensor reachable from a cache object (lists, tuples, dicts, attributes), with a path name."""
    import torch

    if id(value) in visited:
        return
    visited.add(id(value))
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex():
            found.append((name, value))
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _collect(f"{name}.{i}", item, found, visited)
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect(f"{name}.{key}", item, found, visited)
    elif hasattr(value, "__dict__") and not isinstance(value, (type, torch.nn.Module)):
        for key, item in vars(value).items():
            if key in ("config",) or key.endswith("_initial"):
                continue  # the model's config; xLSTM's copy of the zero state it starts from
            _collect(f"{name}.{key}", item, found, visited)
