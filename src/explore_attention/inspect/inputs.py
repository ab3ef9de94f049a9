"""What :func:`~explore_attention.inspect.capture` accepts: text, token ids, model inputs, labels.

Shared by the Hugging Face path (:mod:`.hf`) and the own-model path (:mod:`.own`): one place
checks that one example was given, turns text into ids and ids into token labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..checks import check_tokens

__all__ = [
    "as_ids",
    "check_length",
    "check_text",
    "encode_text",
    "ids_to_tokens",
    "is_hf_model",
    "is_hf_tokenizer",
    "labels",
    "max_length",
]


def is_hf_model(model: nn.Module) -> bool:
    """True for a Hugging Face ``PreTrainedModel``."""
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(model, PreTrainedModel)


def is_hf_tokenizer(tokenizer: Any) -> bool:
    from transformers import PreTrainedTokenizerBase

    return isinstance(tokenizer, PreTrainedTokenizerBase)


def check_text(text: str, tokenizer: Any) -> None:
    """Text must hold a word and come with a tokenizer."""
    if not text.strip():
        raise ValueError(f"text is empty or whitespace only ({text!r}); give at least one word")
    if tokenizer is None:
        raise ValueError(
            "text was given without a tokenizer; pass tokenizer=..., or token ids with tokens=[...]"
        )


def encode_text(text: str, tokenizer: Any) -> Tensor:
    """``text`` → token ids ``(1, L)`` with a Hugging Face tokenizer or any ``encode()``."""
    check_text(text, tokenizer)
    if is_hf_tokenizer(tokenizer):
        return tokenizer(text, return_tensors="pt")["input_ids"]
    if hasattr(tokenizer, "encode"):
        return torch.tensor([tokenizer.encode(text)], dtype=torch.long)
    raise TypeError(f"tokenizer {type(tokenizer).__name__} has no encode()")


def ids_to_tokens(ids: list[int], tokenizer: Any) -> list[str]:
    """One label per id, from a Hugging Face tokenizer or any ``decode()``."""
    if is_hf_tokenizer(tokenizer):
        return [str(t) for t in tokenizer.convert_ids_to_tokens(ids)]
    if hasattr(tokenizer, "decode"):
        return [tokenizer.decode([i]) for i in ids]
    raise TypeError(
        f"tokenizer {type(tokenizer).__name__} has no decode(); pass tokens=[...] explicitly"
    )


def labels(
    name: str, given: Sequence[str] | None, n: int, ids: list[int] | None, tokenizer: Any
) -> list[str]:
    """``given`` checked to hold ``n`` labels, else the tokenizer's strings for ``ids``."""
    if given is not None:
        return [str(t) for t in check_tokens(name, given, n)]
    if ids is None or tokenizer is None:
        raise ValueError(
            f"no labels for {n} tokens: pass {name}=[...] ({n} labels), or token ids with a "
            "tokenizer (token ids without a tokenizer cannot be labelled)"
        )
    return check_tokens(name, ids_to_tokens(ids, tokenizer), n)


def as_ids(x: Tensor, name: str = "input_ids") -> Tensor:
    """Token ids of one example as ``(1, L)``: accepts ``(L,)`` or ``(1, L)``."""
    if x.dim() == 1:
        x = x.unsqueeze(0)  # (1, L)
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (L,) or (1, L), got {tuple(x.shape)}")
    if x.shape[0] != 1:
        raise ValueError(
            f"{name} must hold one example (batch size 1), got shape {tuple(x.shape)}; "
            "capture one input at a time"
        )
    if x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    return x


def max_length(model: nn.Module, tokenizer: Any) -> int | None:
    """The longest input ``model`` takes, from its config (or the tokenizer), if it says."""
    cfg = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_seq_len", "max_len"):
        val = getattr(cfg, attr, None)
        if isinstance(val, int) and val > 0:
            return val
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        return tok_max
    return None


def check_length(n: int, model: nn.Module, tokenizer: Any) -> None:
    """Raise when ``n`` tokens exceed what ``model`` accepts."""
    limit = max_length(model, tokenizer)
    if limit is not None and n > limit:
        raise ValueError(
            f"the input has {n} tokens but the model accepts at most {limit}; shorten the text"
        )
