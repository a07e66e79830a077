"""A transformers model built from its config alone: no weights, no network.

``hf:<model_type>`` takes transformers' default config for that type (``hf:llama``, ``hf:gpt2``);
a local ``config.json`` (or a directory holding one) gives any other. The model is built with
weight initialisation skipped on the ``meta`` device, so a 7-billion-parameter config costs no memory.
``HF_HUB_OFFLINE`` is forced for the call: nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lstm_inspect.errors import AnalysisFailed, InvalidInput
from lstm_inspect.offline import offline




def config_for_type(model_type: str) -> Any:
    """transformers' default config for ``model_type`` (exit 2 for an unknown type)."""
    with offline():
        from transformers import AutoConfig
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        if model_type not in CONFIG_MAPPING:
            close = sorted(k for k in CONFIG_MAPPING.keys() if model_type.lower() in k)[:6]
            hint = f" (did you mean {', '.join(close)}?)" if close else " (e.g. hf:llama, hf:gpt2, hf:mistral)"
            raise InvalidInput(f"--model hf:{model_type}: transformers knows no model type {model_type!r}{hint}")
        return AutoConfig.for_model(model_type)


def config_from_file(path: Path, data: dict[str, Any]) -> Any:
    """A config from a local config.json already read into ``data`` (its ``model_type`` picks the class)."""
    model_type = data.get("model_type")
    if not isinstance(model_type, str):
        raise InvalidInput(f"--model {path}: a transformers config.json needs a model_type")
    with offline():
        from transformers import AutoConfig

        try:
            return AutoConfig.for_model(model_type, **{k: v for k, v in data.items() if k != "model_type"})
        except ValueError as exc:
            raise InvalidInput(f"--model {path}: {str(exc).splitlines()[0][:200]}") from None
        except Exception as exc:  # noqa: BLE001 - a config class may reject values in its own way
            raise AnalysisFailed(f"--model {path}: transformers could not read this config: {str(exc).splitlines()[0][:200]}") from None


def build_from_config(config: Any) -> Any:
    """The causal-LM model for ``config`` on ``meta`` (the base model when the type has no LM head)."""
    import torch

    from lstm_inspect.building import skip_weight_init

    with offline():
        from transformers import AutoModel, AutoModelForCausalLM

        try:
            with skip_weight_init(), torch.device("meta"):
                try:
                    return AutoModelForCausalLM.from_config(config)
                except ValueError:  # no causal-LM class for this type: the base model
                    return AutoModel.from_config(config)
        except Exception as exc:  # noqa: BLE001 - building a user's config may fail in any way
            raise AnalysisFailed(f"transformers could not build a {config.model_type} model from this config: "
                                 f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__}") from None


def describe_config(config: Any) -> dict[str, Any]:
    """The config's main hyperparameters (those source document 003 compares), where the type has them.

    Canonical names only: transformers maps GPT-2's ``n_embd``/``n_layer``/``n_head`` onto them.
    """
    keys = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "intermediate_size", "max_position_embeddings", "tie_word_embeddings")
    out: dict[str, Any] = {}
    for key in keys:
        value = getattr(config, key, None)
        if isinstance(value, (int, float, str, bool)):
            out[key] = value
    return out
