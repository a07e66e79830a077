"""A checkpoint's model rebuilt on ``meta`` under the checkpoint's own names.

Each recognised piece of a :class:`~lstm_inspect.sources.layout.Layout` becomes the module its author
wrote (``nn.Embedding``, ``nn.LSTM``/``GRU``/``RNN``, ``nn.Linear``) at the path the file names, so
``lstm.weight_ih_l0`` stays ``lstm.weight_ih_l0`` in every table and JSON field. Two spellings need
more than one module:

* a recurrent prefix whose layers have different widths (an ``nn.LSTM`` pruned in place) is an
  ``nn.ModuleList`` of one-layer modules; :attr:`RebuiltRecurrentModel.checkpoint_names` maps their
  tensors back to the file's names (``rnn.1.weight_ih_l0`` -> ``rnn.weight_ih_l1``);
* a weight-dropped tensor (``weight_hh_l0_raw``) is the parameter, and the module's ``weight_hh_l0``
  is refreshed from it before each forward, as AWD-LSTM's ``WeightDrop`` does.

Tensors that are not recognised are held as bare parameters at their paths: the model then counts
(``params``) but does not run, and its forward raises the reason with what was recognised.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from lstm_inspect.errors import AnalysisFailed, InvalidInput
from lstm_inspect.recurrence import cell_class
from lstm_inspect.sources.checkpoint import TensorInfo
from lstm_inspect.sources.layout import LAST_STEP, EmbeddingShape, Layout, LinearShape, RecurrentBlock


class RebuiltRecurrentModel(nn.Module):
    """[embedding] -> recurrent modules in order -> [head], at the checkpoint's module paths."""

    def __init__(self, layout: Layout, infos: Mapping[str, TensorInfo], *, batch_first: bool = True,
                 unrunnable: str | None = None) -> None:
        super().__init__()
        self.layout = layout
        self.batch_first = batch_first
        self.unrunnable = unrunnable
        self.checkpoint_names: dict[str, str] = {}
        self._recurrent: list[tuple[str, RecurrentBlock]] = []
        # Modules are registered in the order the file lists their tensors, so every table keeps its order.
        position = {name: i for i, name in enumerate(infos)}

        def first(path: str) -> int:
            return min((i for name, i in position.items() if name.startswith(f"{path}.") or not path), default=len(position))

        pieces: list[tuple[float, Any]] = [(first(b.path), b) for b in layout.blocks]
        if layout.embedding is not None:   # before the head, so that a tied tensor goes by the embedding's name
            head_at = first(layout.head.path) if layout.head is not None else len(position)
            pieces.append((min(first(layout.embedding.path), head_at - 0.5), layout.embedding))
        if layout.head is not None:
            pieces.append((first(layout.head.path), layout.head))
        pieces += [(position[name], name) for name in layout.unrecognised]
        for _index, piece in sorted(pieces, key=lambda item: item[0]):
            if isinstance(piece, RecurrentBlock):
                self._place_block(piece)
            elif isinstance(piece, EmbeddingShape):
                self._place(piece.path, nn.Embedding(piece.num_embeddings, piece.embedding_dim))
            elif isinstance(piece, LinearShape):
                self._place(piece.path, nn.Linear(piece.in_features, piece.out_features, bias=piece.bias))
            else:
                path, _, leaf = piece.rpartition(".")
                self._module_at(path, create=True).register_parameter(leaf, nn.Parameter(torch.empty(infos[piece].shape)))
        self._recurrent.sort(key=lambda item: layout.blocks.index(item[1]))
        if layout.tied and layout.embedding is not None and layout.head is not None:
            self._module_at(layout.head.path).weight = self._module_at(layout.embedding.path).weight
        params = dict(self.named_parameters(remove_duplicate=False))
        for alias, target in layout.aliases:
            if alias in params or target not in params:
                continue
            path, _, leaf = alias.rpartition(".")
            self._module_at(path, create=True).register_parameter(leaf, params[target])

    # ---- construction -------------------------------------------------------------------------------

    def _module_at(self, path: str, *, create: bool = False) -> nn.Module:
        module: nn.Module = self
        for part in [p for p in path.split(".") if p]:
            child = module._modules.get(part)
            if child is None:
                if not create:
                    raise KeyError(path)
                child = nn.Module()
                module.add_module(part, child)
            module = child
        return module

    def _place(self, path: str, module: nn.Module) -> None:
        if not path:
            raise AnalysisFailed("a checkpoint whose root module is itself the recurrent module is built directly")
        parent_path, _, leaf = path.rpartition(".")
        self._module_at(parent_path, create=True).add_module(leaf, module)

    def _place_block(self, block: RecurrentBlock) -> None:
        cls = cell_class(block.cell)
        if block.uniform:
            module = cls(**_rnn_kwargs(block, block.layers[0], num_layers=len(block.layers), batch_first=self.batch_first))
            for leaf in block.raw:
                raw = module._parameters.pop(leaf)
                module.register_parameter(f"{leaf}_raw", raw)
            self._place(block.path, module)
            self._recurrent.append((block.path, block))
            return
        layers = nn.ModuleList(cls(**_rnn_kwargs(block, shape, num_layers=1, batch_first=self.batch_first))
                               for shape in block.layers)
        self._place(block.path, layers)
        for index, layer in enumerate(layers):
            for leaf, _param in layer.named_parameters():
                file_leaf = leaf.replace("_l0", f"_l{index}", 1)
                prefix = f"{block.path}." if block.path else ""
                self.checkpoint_names[f"{prefix}{index}.{leaf}"] = f"{prefix}{file_leaf}"
            self._recurrent.append((f"{block.path}.{index}" if block.path else str(index), block))

    # ---- running --------------------------------------------------------------------------------------

    def recurrent_modules(self) -> list[nn.RNNBase]:
        return [self._module_at(path) for path, _block in self._recurrent]  # type: ignore[misc]

    def forward(self, inputs: torch.Tensor, lengths: Sequence[int] | None = None) -> torch.Tensor:
        """Token ids ``[B, T]`` (float features ``[B, T, I]`` without an embedding; ``[T, B, ...]`` when
        not batch_first) -> the head's output at every step, or at the last step for a non-vocabulary head."""
        if self.unrunnable:
            raise AnalysisFailed(self.unrunnable)
        layout = self.layout
        hidden = self._module_at(layout.embedding.path)(inputs) if layout.embedding is not None else inputs
        width = layout.blocks[0].input_size
        if hidden.shape[-1] != width:
            raise InvalidInput(f"the first recurrent module takes inputs {width} wide, got {list(hidden.shape)}")
        modules = self.recurrent_modules()
        for module, (_path, block) in zip(modules, self._recurrent):
            for leaf in block.raw:   # WeightDrop: the module computes with its raw weight
                setattr(module, leaf, getattr(module, f"{leaf}_raw").view_as(getattr(module, f"{leaf}_raw")))
            if block.raw:
                module._init_flat_weights()
        if lengths is not None:
            from lstm_inspect.model import packed_recurrent

            if layout.head is not None and layout.head_on == LAST_STEP:
                raise InvalidInput("lengths (packed input) applies to models whose head runs at every time step",
                                   fields=("lengths",))
            hidden = packed_recurrent(modules, hidden, lengths)
        else:
            for module in modules:
                hidden, _state = module(hidden)
        if layout.head is None:
            return hidden
        if layout.head_on == LAST_STEP:
            hidden = hidden[:, -1] if self.batch_first else hidden[-1]
        return self._module_at(layout.head.path)(hidden)


def _rnn_kwargs(block: RecurrentBlock, shape: Any, *, num_layers: int, batch_first: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(input_size=shape.input_size, hidden_size=shape.hidden_size, num_layers=num_layers,
                                  bias=block.bias, batch_first=batch_first, bidirectional=block.bidirectional)
    if block.cell == "lstm":
        kwargs["proj_size"] = shape.proj_size
    return kwargs

