"""Capture attention from Hugging Face models and the project's own models.

``capture(model, text_or_inputs, tokenizer=None) -> AttentionTrace`` is the one entry point;
``load_model(name_or_path=None)`` loads the bundled all-MiniLM-L6-v2 (or a folder / hub name)
with eager attention.

Names are imported lazily (PEP 562) so that ``explore-attention --help``, which imports
``inspect.command``, does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "capture": ".capture",
    "classify_heads": ".head_types",
    "attention_by_distance": ".distance",
    "mean_distance": ".distance",
    "query_key": ".neurons",
    "ablate_heads": ".neurons",
    "HeadTypes": ".head_types",
    "eager_attention": ".hf",
    "trace_from_output": ".own",
    "DEFAULT_MODEL_NAME": ".loading",
    "default_model_path": ".loading",
    "load_model": ".loading",
    "KINDS": ".trace",
    "AttentionTrace": ".trace",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
