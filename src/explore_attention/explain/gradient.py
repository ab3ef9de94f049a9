r"""Gradient-weighted attention relevance (Chefer, Gur & Wolf 2021, "Generic
Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers",
arXiv:2103.15679, eqs. 5–6, self-attention rule).

For a scalar score :math:`y` (e.g. a class logit), each layer's attention map is weighted by its
gradient, negative contributions are dropped, heads are averaged, and the relevance map is
propagated through the residual stream, from the first layer to the last:

.. math::

    \bar A_l = \mathbb{E}_h\big[(\nabla_{A_l} y \odot A_l)^+\big], \qquad
    R \leftarrow R + \bar A_l \, R, \qquad R^{(0)} = I

Row :math:`i` of :math:`R` is the relevance of each input token for output position :math:`i`
(for a ``[CLS]`` classifier, row 0).

:func:`attention_gradients` gets the attention maps and their gradients from a Hugging Face model
(``output_attentions=True``; eager attention) or from one of the project's models
(``return_weights=True``: the maps of one site of its
:class:`~explore_attention.models.output.ModelOutput`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["attention_gradients", "gradient_relevance", "relevance_from_model"]


def gradient_relevance(attentions: Tensor, grads: Tensor) -> Tensor:
    """Chefer et al.'s relevance ``R (L, L)`` from attentions and grads (layers, heads, L, L)."""
    for name, t in (("attentions", attentions), ("grads", grads)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a Tensor, got {type(t).__name__}")
    if attentions.shape != grads.shape:
        raise ValueError(
            f"grads shape {tuple(grads.shape)} must equal attentions shape "
            f"{tuple(attentions.shape)}"
        )
    if attentions.dim() != 4 or attentions.shape[-1] != attentions.shape[-2]:
        raise ValueError(
            f"attentions must have shape (layers, heads, L, L), got {tuple(attentions.shape)}"
        )
    A = attentions.detach().to(torch.float64)
    G = grads.detach().to(torch.float64)
    R = torch.eye(A.shape[-1], dtype=torch.float64)  # (L, L)
    for a, g in zip(A, G):
        # \bar A_l = E_h[(∇A ⊙ A)^+]
        bar = (g * a).clamp_min(0).mean(dim=0)  # (L, L)
        # R ← R + \bar A_l R
        R = R + bar @ R
    return R.to(torch.float32)


def _is_hf(model: nn.Module) -> bool:
    return hasattr(model, "config") and hasattr(model.config, "model_type")


def attention_gradients(
    model: nn.Module,
    inputs: Any,
    score_fn: Callable[[Any], Tensor],
    *,
    site: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Run ``model`` on ``inputs`` and return ``(attentions, d score / d attentions)``.

    Both are ``(layers, heads, Lq, Lk)`` float32 for the first batch element. ``inputs`` is a dict
    of tensors for a Hugging Face model (called as ``model(**inputs, output_attentions=True)``),
    else passed as is (``model(inputs, return_weights=True)``, a project model returning
    :class:`~explore_attention.models.output.ModelOutput`; ``site`` picks which of its
    attentions, needed only when it has several). ``score_fn(output) -> scalar Tensor`` picks
    the score to explain, e.g. ``lambda out: out.logits[0, label]``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
    if _is_hf(model):
        if not isinstance(inputs, dict):
            raise TypeError(
                f"inputs for a Hugging Face model must be a dict of tensors, got "
                f"{type(inputs).__name__}"
            )
        out = model(**inputs, output_attentions=True)
        maps = list(getattr(out, "attentions", None) or [])
        if not maps or any(m is None for m in maps):
            raise ValueError(
                "the model returned no attention weights; load it with attn_implementation='eager'"
            )
    else:
        from ..models.output import ModelOutput

        out = model(inputs, return_weights=True)
        if not isinstance(out, ModelOutput) or not out.attentions:
            raise ValueError(
                f"{type(model).__name__} returned no ModelOutput attentions and is not a "
                "Hugging Face model"
            )
        if site is None:
            if len(out.attentions) != 1:
                raise ValueError(
                    f"{type(model).__name__} has attention sites {sorted(out.attentions)}; "
                    "pass site=..."
                )
            site = next(iter(out.attentions))
        if site not in out.attentions:
            raise ValueError(f"site must be one of {sorted(out.attentions)}, got {site!r}")
        maps = list(out.attentions[site])
    score = score_fn(out)
    if not isinstance(score, Tensor) or score.numel() != 1:
        raise ValueError("score_fn must return a scalar Tensor")
    grads = torch.autograd.grad(score.reshape(()), maps, allow_unused=True)
    grads = [torch.zeros_like(m) if g is None else g for m, g in zip(maps, grads)]
    A = torch.stack([m[0] for m in maps]).detach().float()  # (layers, heads, Lq, Lk)
    G = torch.stack([g[0] for g in grads]).detach().float()  # (layers, heads, Lq, Lk)
    return A, G


def relevance_from_model(
    model: nn.Module, inputs: Any, score_fn: Callable[[Any], Tensor]
) -> Tensor:
    """:func:`gradient_relevance` of :func:`attention_gradients`: an ``(L, L)`` relevance map."""
    return gradient_relevance(*attention_gradients(model, inputs, score_fn))
