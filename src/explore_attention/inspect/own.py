"""Attention of the project's own models: one call with ``return_weights=True``.

Every model of the project returns a :class:`~explore_attention.models.output.ModelOutput`
whose ``attentions`` maps a *site* (``"encoder"``, ``"decoder"``, ``"cross"``, ``"text"``) to
per-layer weights; :data:`~explore_attention.models.output.SITE_KIND` says which trace kind each
site is. So nothing here hooks modules or guesses causality from a mask: the caller chooses by
``kind`` (and by ``site`` when a model has two sites of one kind, like the image+text model's
image and word self-attention).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..models.output import SITE_KIND, ModelOutput
from .inputs import as_ids, check_length, encode_text, labels
from .trace import AttentionTrace

__all__ = ["capture_own", "choose_site", "trace_from_output"]


def choose_site(attentions: dict[str, Any], kind: str | None, site: str | None) -> str:
    """The site of ``attentions`` that ``kind`` / ``site`` name.

    ``site`` wins (and must agree with ``kind`` if both are given); otherwise the one site of
    ``kind``; with neither, the model's one self-attention site (``"self"`` or ``"causal"``).
    """
    have = {s: SITE_KIND[s] for s in attentions}
    if site is not None:
        if site not in have:
            raise ValueError(f"site must be one of {sorted(have)} for this model, got {site!r}")
        if kind is not None and have[site] != kind:
            raise ValueError(f"site {site!r} is {have[site]!r} attention, not kind={kind!r}")
        return site
    if kind is not None:
        found = [s for s, k in have.items() if k == kind]
        what = f"kind={kind!r}"
    else:
        found = [s for s, k in have.items() if k in ("self", "causal")]
        what = "its self-attention (kind=None)"
    if len(found) == 1:
        return found[0]
    if not found:
        raise ValueError(f"the model has no {what}; its attention sites are {have}")
    raise ValueError(f"the model has several sites for {what}: {sorted(found)}; pass site=...")


def trace_from_output(
    out: ModelOutput,
    *,
    tokens: Sequence[str],
    key_tokens: Sequence[str] | None = None,
    kind: str | None = None,
    site: str | None = None,
    model_name: str = "explore_attention model",
) -> AttentionTrace:
    """The :class:`AttentionTrace` of one site of a model output (batch row 0 of batch size 1).

    ``tokens`` label the queries; ``key_tokens`` the keys (default ``tokens``, required for
    cross-attention). Use it when the same forward call also gives the prediction.
    """
    if not isinstance(out, ModelOutput):
        raise TypeError(f"out must be a ModelOutput, got {type(out).__name__}")
    if not out.attentions:
        raise ValueError("out holds no attentions: call the model with return_weights=True")
    site = choose_site(out.attentions, kind, site)
    weights = out.attentions[site]
    if weights[0].shape[0] != 1:
        raise ValueError(f"capture needs batch size 1, got weights {tuple(weights[0].shape)}")
    stacked = torch.stack([w[0] for w in weights]).detach()  # (layers, heads, Lq, Lk)
    Lq, Lk = stacked.shape[2], stacked.shape[3]
    q_labels = labels("tokens", tokens, Lq, None, None)
    if key_tokens is None and (SITE_KIND[site] == "cross" or Lk != Lq):
        raise ValueError(f"pass key_tokens=[...] ({Lk} labels) for the keys of site {site!r}")
    k_labels = q_labels if key_tokens is None else labels("key_tokens", key_tokens, Lk, None, None)
    return AttentionTrace(
        stacked,
        q_labels,
        k_labels,
        model_name=model_name,
        kind=SITE_KIND[site],
        meta={"source": "explore_attention", "site": site},
    )


def capture_own(
    model: nn.Module,
    text_or_inputs: Any,
    tokenizer: Any,
    tokens: Sequence[str] | None,
    key_tokens: Sequence[str] | None,
    kind: str | None,
    site: str | None,
    model_name: str | None,
) -> AttentionTrace:
    """:func:`~explore_attention.inspect.capture` for a model returning ``ModelOutput``."""
    if isinstance(text_or_inputs, str):
        text_or_inputs = encode_text(text_or_inputs, tokenizer)
    ids_t = None
    if isinstance(text_or_inputs, Tensor):
        if not text_or_inputs.is_floating_point():
            ids_t = as_ids(text_or_inputs)
            check_length(ids_t.shape[1], model, tokenizer)
        args, kwargs = (text_or_inputs if ids_t is None else ids_t,), {}
    elif isinstance(text_or_inputs, tuple):
        args, kwargs = text_or_inputs, {}
    elif isinstance(text_or_inputs, dict):
        args, kwargs = (), dict(text_or_inputs)
    else:
        raise TypeError(
            "text_or_inputs must be a string, a tensor, a tuple of positional inputs or a dict "
            f"of keyword inputs, got {type(text_or_inputs).__name__}"
        )
    if "return_weights" not in inspect.signature(model.forward).parameters:
        raise TypeError(
            f"{type(model).__name__} is neither a Hugging Face model nor one of the project's "
            "models (forward(..., return_weights=...) -> explore_attention.models.output."
            "ModelOutput); nothing to capture"
        )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(*args, **kwargs, return_weights=True)
    finally:
        model.train(was_training)
    if not isinstance(out, ModelOutput):
        raise TypeError(
            f"{type(model).__name__} is neither a Hugging Face model nor returns "
            f"explore_attention.models.output.ModelOutput (got {type(out).__name__}); nothing "
            "to capture"
        )
    chosen = choose_site(out.attentions or {}, kind, site)
    if tokens is None:
        Lq = out.attentions[chosen][0].shape[2]
        ids = None if ids_t is None else ids_t[0].tolist()
        tokens = labels("tokens", None, Lq, ids, tokenizer)
    return trace_from_output(
        out,
        tokens=tokens,
        key_tokens=key_tokens,
        site=chosen,
        model_name=model_name or type(model).__name__,
    )
