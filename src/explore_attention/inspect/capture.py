"""Capture every layer's and head's attention for one input → :class:`AttentionTrace`.

Two kinds of model are supported:

* **Hugging Face models** (``model`` is ``None``, a hub name, a folder, or a loaded
  ``PreTrainedModel``): run once with ``output_attentions=True``. A model loaded with a kernel
  that returns no weights (SDPA, flash) is switched to eager attention for the call and switched
  back afterwards.
* **The project's own models**, which return
  :class:`~explore_attention.models.output.ModelOutput`: run once with ``return_weights=True``
  and read ``attentions[site]``. Pass the model's input (a tensor ``input_ids``, a tuple of
  positional inputs, or a dict of keyword inputs) and the tokens to label it with::

      trace = capture(gpt, input_ids, tokens=["The", " cat", " sat"])      # (1, L) or (L,)
      trace = capture(seq2seq, (src, tgt), tokens=tgt_tokens, key_tokens=src_tokens,
                      kind="cross")

``kind`` chooses which attention to capture: ``None`` = the model's own self-attention
(``"self"`` for encoders, ``"causal"`` for decoder-only models), ``"cross"`` = an encoder-decoder's
cross-attention (decoder queries, encoder keys). For an encoder-decoder ``"self"`` is the
encoder's and ``"causal"`` the decoder's self-attention. ``site`` (own models only) names a site
of :data:`~explore_attention.models.output.SITE_KIND` when a model has two of one kind.

Input handling is in :mod:`.inputs`, the Hugging Face path in :mod:`.hf`, the own-model path in
:mod:`.own`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from torch import nn

from .hf import capture_hf
from .inputs import is_hf_model
from .loading import load_model
from .own import capture_own
from .trace import KINDS, AttentionTrace

__all__ = ["capture"]


def capture(
    model: Any,
    text_or_inputs: Any,
    tokenizer: Any = None,
    *,
    tokens: Sequence[str] | None = None,
    key_tokens: Sequence[str] | None = None,
    kind: str | None = None,
    site: str | None = None,
    model_name: str | None = None,
) -> AttentionTrace:
    """Run ``model`` on one input and return its attention, ``(layers, heads, Lq, Lk)``.

    Args:
        model: ``None`` (bundled all-MiniLM-L6-v2), a hub name or local folder, a loaded Hugging
            Face model, or one of the project's models (it returns ``ModelOutput``).
        text_or_inputs: a string (needs a tokenizer, loaded automatically for names/paths), a
            tensor of token ids ``(L,)`` or ``(1, L)``, a tuple of positional inputs, or a dict
            of keyword inputs (e.g. a tokenizer's ``BatchEncoding``). One example, batch size 1.
        tokenizer: a Hugging Face tokenizer, or any object with ``encode(text) -> list[int]`` and
            ``decode(list[int]) -> str``; used for text and to label token ids.
        tokens: query-side token labels (required for own models without a tokenizer).
        key_tokens: key-side labels for cross-attention (default: ``tokens``).
        kind: which attention to capture: ``None``, ``"self"``, ``"causal"`` or ``"cross"``.
        site: own models only: the ``ModelOutput.attentions`` site, when ``kind`` is ambiguous.
        model_name: label for plots (default: the model's name or class).

    Raises:
        TypeError / ValueError: wrong model or input type, empty text, text longer than the
            model's maximum length, batch size above 1, token labels of the wrong length.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be None or one of {KINDS}, got {kind!r}")
    if model is None or isinstance(model, (str, os.PathLike)):
        name = "all-MiniLM-L6-v2" if model is None else str(model)
        model, loaded_tok = load_model(model)
        tokenizer = tokenizer if tokenizer is not None else loaded_tok
        model_name = model_name or name
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be None, a name/path, a Hugging Face model or an nn.Module, got "
            f"{type(model).__name__}"
        )
    if is_hf_model(model):
        if site is not None:
            raise ValueError(f"site is for the project's own models, got site={site!r}")
        return capture_hf(model, text_or_inputs, tokenizer, tokens, key_tokens, kind, model_name)
    return capture_own(model, text_or_inputs, tokenizer, tokens, key_tokens, kind, site, model_name)
