r"""Faithfulness of an explanation, measured: deletion / insertion curves and top-k hits.

Deletion (Petsiuk et al. 2018, RISE, arXiv:1806.07421, §4): remove the tokens in order of
decreasing relevance and track the model's score; a faithful ranking makes the score fall fast,
so a *lower* area under the curve is better. Insertion starts from everything removed and adds
tokens back in the same order; a *higher* area is better. Curves have ``n + 1`` points (0 … n
tokens removed / inserted) on an x axis scaled to [0, 1], and the area is the trapezoid rule.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

__all__ = ["auc", "deletion_curve", "insertion_curve", "ranking", "top_k_hit"]

ScoreFn = Callable[[Tensor], float]  # keep (L,) bool -> the model's score with only those tokens


def ranking(relevance: Tensor, candidates: Tensor | None = None) -> Tensor:
    """Candidate positions sorted by decreasing relevance (ties keep position order)."""
    if not isinstance(relevance, Tensor) or relevance.dim() != 1:
        raise ValueError(
            f"relevance must be a 1-D Tensor, got {getattr(relevance, 'shape', relevance)!r}"
        )
    idx = torch.arange(relevance.numel())
    if candidates is not None:
        if candidates.shape != relevance.shape or candidates.dtype != torch.bool:
            raise ValueError(
                f"candidates must be a bool Tensor of shape {tuple(relevance.shape)}, got "
                f"{candidates.dtype} {tuple(candidates.shape)}"
            )
        idx = idx[candidates]
    order = torch.sort(relevance[idx].double(), descending=True, stable=True).indices
    return idx[order]


def _curve(
    score_fn: ScoreFn, order: Tensor, L: int, fixed: Tensor | None, insert: bool
) -> np.ndarray:
    keep = torch.zeros(L, dtype=torch.bool) if insert else torch.ones(L, dtype=torch.bool)
    if fixed is not None:
        keep |= fixed
    scores = [float(score_fn(keep.clone()))]
    for pos in order.tolist():
        keep[pos] = insert
        scores.append(float(score_fn(keep.clone())))
    return np.asarray(scores)


def deletion_curve(
    score_fn: ScoreFn, relevance: Tensor, *, fixed: Tensor | None = None
) -> np.ndarray:
    """Scores after removing 0, 1, …, n candidate tokens in order of relevance.

    ``fixed (L,) bool`` marks tokens that are never removed nor ranked (e.g. ``[CLS]``).
    """
    cand = None if fixed is None else ~fixed
    return _curve(score_fn, ranking(relevance, cand), relevance.numel(), fixed, insert=False)


def insertion_curve(
    score_fn: ScoreFn, relevance: Tensor, *, fixed: Tensor | None = None
) -> np.ndarray:
    """Scores after inserting 0, 1, …, n candidate tokens in order of relevance."""
    cand = None if fixed is None else ~fixed
    return _curve(score_fn, ranking(relevance, cand), relevance.numel(), fixed, insert=True)


def auc(curve: np.ndarray) -> float:
    r"""Area under a curve sampled at evenly spaced points of [0, 1] (trapezoid rule)."""
    y = np.asarray(curve, dtype=np.float64)
    if y.ndim != 1 or y.size < 2:
        raise ValueError(f"curve must be 1-D with at least 2 points, got shape {y.shape}")
    return float(np.sum((y[1:] + y[:-1]) / 2) / (y.size - 1))


def top_k_hit(relevance: Tensor, decisive: Tensor, candidates: Tensor | None = None) -> bool:
    """True when the ``k = decisive.sum()`` most relevant candidates are the decisive ones."""
    k = int(decisive.sum())
    if k < 1:
        raise ValueError("decisive must mark at least one token")
    top = ranking(relevance, candidates)[:k]
    return bool(decisive[top].all())
