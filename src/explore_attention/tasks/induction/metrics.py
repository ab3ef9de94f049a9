r"""What an induction head does, measured on repeated sequences ``[s, s]`` (``s`` of length T).

.. math::

    \text{induction}(l, h) = \frac{1}{T}\sum_{i=T}^{2T-1} A^{l,h}_{i,\, i-T+1}, \qquad
    \text{prev}(l, h) = \frac{1}{2T-1}\sum_{i=1}^{2T-1} A^{l,h}_{i,\, i-1}

and the in-context loss drop: mean next-token loss on the first half minus on the second
(Olsson et al. 2022, arXiv:2209.11895).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...models.gpt import GPT

__all__ = ["in_context_loss", "induction_scores", "previous_token_scores"]


def _check_tokens(tokens: Tensor) -> int:
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.shape[1] % 2:
        shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ValueError(f"tokens must be (B, 2T) repeated sequences, got {shape}")
    T = tokens.shape[1] // 2
    if not torch.equal(tokens[:, :T], tokens[:, T:]):
        raise ValueError("tokens must repeat: tokens[:, :T] must equal tokens[:, T:]")
    return T


@torch.no_grad()
def _attentions(model: GPT, tokens: Tensor) -> Tensor:
    """Every layer's attention, averaged over the batch: ``(layers, heads, L, L)``."""
    out = model(tokens.to(next(model.parameters()).device), return_weights=True)
    return (
        torch.stack([w.mean(0) for w in out.attentions["decoder"]]).float().cpu()
    )  # (layers, H, L, L)


def induction_scores(model: GPT, tokens: Tensor) -> Tensor:
    """Mean attention from each second-half token to the token after its first occurrence.

    Returns ``(layers, heads)``; 1 means a perfect induction head, ``~1/i`` a uniform one.
    """
    T = _check_tokens(tokens)
    A = _attentions(model, tokens)  # (layers, H, 2T, 2T)
    i = torch.arange(T, 2 * T)
    return A[:, :, i, i - T + 1].mean(-1)  # (layers, H)


def previous_token_scores(model: GPT, tokens: Tensor) -> Tensor:
    """Mean attention from each token to the one just before it: ``(layers, heads)``."""
    _check_tokens(tokens)
    A = _attentions(model, tokens)  # (layers, H, L, L)
    i = torch.arange(1, A.shape[-1])
    return A[:, :, i, i - 1].mean(-1)  # (layers, H)


@torch.no_grad()
def in_context_loss(model: nn.Module, tokens: Tensor) -> dict[str, float]:
    """Mean next-token loss on the first half and on the second half of repeated sequences.

    Position ``t`` predicts ``t + 1``; "first half" = predictions of tokens ``1 … T-1`` (random,
    loss ≈ ln V), "second half" = predictions of tokens ``T+1 … 2T-1`` (copyable). The
    prediction of token ``T`` (the first repeat) is in neither: it cannot be inferred.
    """
    T = _check_tokens(tokens)
    tokens = tokens.to(next(model.parameters()).device)
    logits = model(tokens[:, :-1]).logits  # (B, 2T-1, V)
    nll = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")  # (B, 2T-1)
    first, second = nll[:, : T - 1].mean().item(), nll[:, T:].mean().item()
    return {"loss_first_half": first, "loss_second_half": second, "icl_drop": first - second}
