"""Capture attention from Hugging Face models and the project's own models.

``capture(model, text_or_inputs, tokenizer=None) -> AttentionTrace`` is the one entry point;
``load_model(name_or_path=None)`` loads the bundled all-MiniLM-L6-v2 (or a folder / hub name)
with eager attention.
"""

from .capture import capture
from .loading import DEFAULT_MODEL_NAME, default_model_path, load_model
from .trace import KINDS, AttentionTrace

__all__ = [
    "DEFAULT_MODEL_NAME",
    "KINDS",
    "AttentionTrace",
    "capture",
    "default_model_path",
    "load_model",
]
