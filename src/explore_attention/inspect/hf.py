"""Attention of a Hugging Face model: one call with ``output_attentions=True``.

In transformers 5 the SDPA and flash kernels return no weights, so the call runs inside
:func:`eager_attention`, which switches a model to the eager kernel and back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from .inputs import as_ids, check_length, check_text, labels
from .loading import is_causal_config
from .trace import AttentionTrace

__all__ = ["capture_hf", "eager_attention"]


@contextmanager
def eager_attention(model: nn.Module) -> Iterator[nn.Module]:
    """Run a Hugging Face ``model`` with eager attention inside the block, then restore it."""
    cfg = getattr(model, "config", None)
    previous = getattr(cfg, "_attn_implementation", None)
    switched = previous not in (None, "eager")
    if switched:
        model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        if switched:
            model.set_attn_implementation(previous)


def _family(model: nn.Module) -> str:
    """``"encoder-decoder"``, ``"causal"`` (decoder-only) or ``"self"`` (encoder)."""
    cfg = model.config
    if getattr(cfg, "is_encoder_decoder", False):
        return "encoder-decoder"
    if is_causal_config(cfg) or type(model).__name__.endswith(("ForCausalLM", "LMHeadModel")):
        return "causal"
    return "self"


def _inputs(text_or_inputs: Any, tokenizer: Any, family: str) -> dict[str, Any]:
    if isinstance(text_or_inputs, str):
        check_text(text_or_inputs, tokenizer)
        if family == "encoder-decoder":
            raise ValueError(
                "an encoder-decoder needs both sides: pass a dict with input_ids and "
                "decoder_input_ids"
            )
        return dict(tokenizer(text_or_inputs, return_tensors="pt"))
    if isinstance(text_or_inputs, Tensor):
        return {"input_ids": text_or_inputs}
    if isinstance(text_or_inputs, dict) or hasattr(text_or_inputs, "keys"):
        return dict(text_or_inputs)
    raise TypeError(
        "text_or_inputs must be a string, a tensor of token ids or a dict of model inputs, "
        f"got {type(text_or_inputs).__name__}"
    )


def capture_hf(
    model: nn.Module,
    text_or_inputs: Any,
    tokenizer: Any,
    tokens: Sequence[str] | None,
    key_tokens: Sequence[str] | None,
    kind: str | None,
    model_name: str | None,
) -> AttentionTrace:
    """:func:`~explore_attention.inspect.capture` for a Hugging Face ``PreTrainedModel``."""
    family = _family(model)
    if family != "encoder-decoder" and kind == "cross":
        raise ValueError(
            f"kind='cross' needs an encoder-decoder model; {type(model).__name__} has only "
            "self-attention"
        )
    inputs = _inputs(text_or_inputs, tokenizer, family)
    if "input_ids" not in inputs:
        raise ValueError(f"inputs must contain 'input_ids', got keys {sorted(inputs)}")
    inputs["input_ids"] = as_ids(inputs["input_ids"])
    ids = inputs["input_ids"][0].tolist()
    check_length(len(ids), model, tokenizer)
    if family != "encoder-decoder":
        if kind is not None and kind != family:
            raise ValueError(f"this model's self-attention is {family!r}, not {kind!r}")
        enc_tokens = labels("tokens", tokens, len(ids), ids, tokenizer)
    elif "decoder_input_ids" not in inputs:
        raise ValueError("an encoder-decoder needs decoder_input_ids in the inputs dict")

    device = next(model.parameters()).device
    inputs = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in inputs.items()}
    with eager_attention(model), torch.no_grad():
        out = model(**inputs, output_attentions=True, return_dict=True)

    if family != "encoder-decoder":
        atts, trace_kind = getattr(out, "attentions", None), family
        q_tokens = k_tokens = enc_tokens
    else:
        dec_ids = as_ids(inputs["decoder_input_ids"], "decoder_input_ids")[0].tolist()
        trace_kind = kind or "self"
        if trace_kind == "self":  # encoder self-attention: tokens= labels the source
            given = tokens if key_tokens is None else key_tokens
            q_tokens = k_tokens = labels("tokens", given, len(ids), ids, tokenizer)
            atts = out.encoder_attentions
        else:
            q_tokens = labels("tokens", tokens, len(dec_ids), dec_ids, tokenizer)
            if trace_kind == "causal":
                atts, k_tokens = out.decoder_attentions, q_tokens
            else:
                atts = out.cross_attentions
                k_tokens = labels("key_tokens", key_tokens, len(ids), ids, tokenizer)
    if atts is None or any(a is None for a in atts):
        raise ValueError(
            f"{type(model).__name__} returned no attention weights even with eager attention"
        )
    stacked = torch.stack([a[0] for a in atts])  # (layers, heads, Lq, Lk)
    return AttentionTrace(
        stacked,
        q_tokens,
        k_tokens,
        model_name=str(model_name or hf_name(model)),
        kind=trace_kind,
        meta={"source": "huggingface", "class": type(model).__name__},
    )


def hf_name(model: nn.Module) -> str:
    """A short label: the hub name, a folder's name, or the class."""
    from .loading import DEFAULT_MODEL_NAME, default_model_path

    path = str(getattr(model, "name_or_path", "") or "")
    if not path:
        return type(model).__name__
    if path.rstrip("/") == str(default_model_path()).rstrip("/"):
        return DEFAULT_MODEL_NAME.split("/")[-1]
    return path
