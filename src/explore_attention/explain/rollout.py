r"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers",
arXiv:2005.00928, §3).

Raw attention of one layer says how a layer mixes *its* inputs, which are already mixtures. Rollout
follows the mixing back to the input tokens. The residual connection is modelled by adding the
identity, per layer :math:`l` with head-fused weights :math:`A_l`:

.. math::

    \tilde A_l = \operatorname{rownorm}\big(0.5\,A_l + 0.5\,I\big), \qquad
    \tilde A_{\mathrm{rollout}} = \tilde A_L \, \tilde A_{L-1} \cdots \tilde A_1

so row :math:`i` of the result is how much output position :math:`i` draws on each input token.
The paper fuses heads by their mean; ``head_fusion="max"`` / ``"min"`` are the common variants
(used e.g. for ViTs) and are an option here, not the default.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["HEAD_FUSIONS", "as_attentions", "fuse_heads", "rollout"]

HEAD_FUSIONS = ("mean", "max", "min")


def as_attentions(trace: Any, *, square: bool = True) -> Tensor:
    """The ``(layers, heads, L, L)`` tensor of an AttentionTrace (or a tensor), checked."""
    from ..inspect.trace import AttentionTrace

    if isinstance(trace, AttentionTrace):
        if square and trace.kind == "cross":
            raise ValueError(
                "trace.kind is 'cross': rollout and flow chain a layer's output into the next "
                "layer's input, which needs self- or causal attention (Lq == Lk)"
            )
        A = trace.attentions
    elif isinstance(trace, Tensor):
        A = trace
    else:
        raise TypeError(f"trace must be an AttentionTrace or a Tensor, got {type(trace).__name__}")
    if A.dim() != 4:
        raise ValueError(
            f"attentions must have shape (layers, heads, Lq, Lk), got {tuple(A.shape)}"
        )
    if square and A.shape[-1] != A.shape[-2]:
        raise ValueError(f"attentions must be square (Lq == Lk), got {tuple(A.shape)}")
    return A


def fuse_heads(A: Tensor, head_fusion: str = "mean") -> Tensor:
    """``(layers, heads, Lq, Lk) -> (layers, Lq, Lk)`` by mean, max or min over heads."""
    if head_fusion == "mean":
        return A.mean(dim=1)
    if head_fusion == "max":
        return A.amax(dim=1)
    if head_fusion == "min":
        return A.amin(dim=1)
    raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")


def rollout(
    trace: Any,
    *,
    head_fusion: str = "mean",
    residual: bool = True,
    start_layer: int = 0,
) -> Tensor:
    r"""Attention rollout, returned as an ``(Lq, Lk)`` float32 tensor.

    Args:
        trace: an :class:`AttentionTrace` (self or causal) or a ``(layers, heads, L, L)`` tensor.
        head_fusion: ``"mean"`` (the paper), ``"max"`` or ``"min"`` over heads.
        residual: add :math:`0.5 I` as in the paper; ``False`` multiplies the raw (renormalised)
            fused maps.
        start_layer: first layer to include (0 = all layers, as in the paper).
    """
    A = as_attentions(trace).to(torch.float64)  # (layers, heads, L, L)
    if isinstance(start_layer, bool) or not isinstance(start_layer, int):
        raise TypeError(f"start_layer must be an int, got {start_layer!r}")
    if not 0 <= start_layer < A.shape[0]:
        raise ValueError(f"start_layer must be in [0, {A.shape[0]}), got {start_layer}")
    fused = fuse_heads(A, head_fusion)[start_layer:]  # (layers', L, L)
    eye = torch.eye(A.shape[-1], dtype=torch.float64)
    result = eye
    for layer in fused:
        # \tilde A_l = rownorm(0.5 A_l + 0.5 I)
        a = 0.5 * layer + 0.5 * eye if residual else layer
        # clamp: a fully masked (all-zero) row stays zero instead of 0/0
        a = a / a.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        # \tilde A_{rollout} = \tilde A_l \tilde A_{rollout}  (first layer multiplied first)
        result = a @ result
    return result.to(torch.float32)
