"""A transformers model built from its config alone: no weights, no network.

``hf:<model_type>`` takes transformers' default config for that type (``hf:llama``, ``hf:gpt2``);
a local ``config.json`` (or a directory holding one) gives any other. The model is built with
weight initialisation skipped on the ``meta`` device, so a 7-billion-parameter config costs no memory.
``HF_HUB_OFFLINE`` is forced for the call: nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lstm_inspect.errors import AnalysisFailed, InvalidInput, first_line
from lstm_inspect.offline import offline

#: The config key through which a model directory names its own Python code.
CUSTOM_CODE_KEY = "auto_map"


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
    if CUSTOM_CODE_KEY in data:
        refuse_custom_code(path, model_type, data[CUSTOM_CODE_KEY])
    fields = {k: v for k, v in data.items() if k not in ("model_type", CUSTOM_CODE_KEY)}
    with offline():
        from transformers import AutoConfig

        try:
            return AutoConfig.for_model(model_type, **fields)
        except ValueError as exc:
            raise InvalidInput(f"--model {path}: {first_line(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - a config class may reject values in its own way
            raise AnalysisFailed(f"--model {path}: transformers could not read this config: {first_line(exc)}") from None


def refuse_custom_code(path: Path, model_type: str, auto_map: Any) -> None:
    """A config that names the directory's own code (``auto_map``): that code is never run.

    When transformers has a built-in class for every model class the config maps to custom code (and
    for ``model_type``'s config), the model is analysed with the built-in classes and a warning says so;
    otherwise the model cannot be built without the directory's code, and the run stops (exit 3).
    """
    import warnings

    from lstm_inspect.errors import LstmInspectWarning

    named = sorted(str(k) for k in auto_map) if isinstance(auto_map, dict) else []
    classes = ", ".join(named) or "custom classes"
    missing = [name for name in named if not has_builtin(model_type, name)]
    if not has_builtin(model_type, "AutoConfig") or not isinstance(auto_map, dict):
        missing.append("AutoConfig")
    if missing:
        raise AnalysisFailed(
            f"--model {path}: the config needs the directory's own Python code ({CUSTOM_CODE_KEY}: {classes}) and "
            f"transformers has no built-in {model_type!r} class for {', '.join(sorted(set(missing)))}; lstm-inspect "
            "never runs a model directory's code. To analyse it, import it yourself in a factory: "
            "--model package.module:factory"
        )
    warnings.warn(f"--model {path}: the config names custom code ({CUSTOM_CODE_KEY}: {classes}); it was not run: "
                  f"analysed with transformers' built-in {model_type!r} classes", LstmInspectWarning, stacklevel=2)


def has_builtin(model_type: str, auto_class: str) -> bool:
    """Whether transformers itself has ``auto_class`` (AutoConfig, AutoModel, AutoModelForCausalLM...) for ``model_type``."""
    with offline():
        from transformers.models.auto import modeling_auto
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    mappings: dict[str, Any] = {"AutoConfig": CONFIG_MAPPING_NAMES, "AutoModel": modeling_auto.MODEL_MAPPING_NAMES,
                "AutoModelForCausalLM": modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES}
    # Classes the analysis never builds (a tokenizer, a sequence classifier) cannot run through it.
    return model_type in mappings.get(auto_class, CONFIG_MAPPING_NAMES)


def build_from_config(config: Any) -> Any:
    """The causal-LM model for ``config`` on ``meta`` (the base model when the type has no LM head)."""
    import torch

    from lstm_inspect.building import skip_weight_init

    with offline():
        from transformers import AutoModel, AutoModelForCausalLM

        from lstm_inspect.tracing import quiet_kernel_notices

        quiet_kernel_notices()   # the optional-kernel notices come when a forward runs, in any command
        try:
            with skip_weight_init(), torch.device("meta"):
                try:
                    # trust_remote_code=False: never run (or prompt to run) a directory's own code
                    return AutoModelForCausalLM.from_config(config, trust_remote_code=False)
                except ValueError:  # no causal-LM class for this type: the base model
                    return AutoModel.from_config(config, trust_remote_code=False)
        except Exception as exc:  # noqa: BLE001 - building a user's config may fail in any way
            raise AnalysisFailed(f"transformers could not build a {config.model_type} model from this config: "
                                 f"{first_line(exc)}") from None


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
