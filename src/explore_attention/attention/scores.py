r"""Score functions: how much query :math:`q` should look at key :math:`k`.

Every function maps queries ``(..., Lq, Dq)`` and keys ``(..., Lk, Dk)`` to scores
``(..., Lq, Lk)``; softmax over the last axis turns scores into attention weights.

=============  =========================================  ===================================
name           score                                      paper
=============  =========================================  ===================================
``dot``        :math:`q^\top k`                            Luong et al. 2015, Eq. (8) "dot"
``scaled_dot`` :math:`q^\top k / \sqrt{d}`                 Vaswani et al. 2017, Eq. (1)
``General``    :math:`q^\top W k`                          Luong et al. 2015, Eq. (8) "general"
``Additive``   :math:`v^\top \tanh(W q + U k)`             Bahdanau et al. 2014, App. A.1.2
=============  =========================================  ===================================

Luong et al. 2015, "Effective Approaches to Attention-based NMT" (arXiv:1508.04025);
Bahdanau et al. 2014, "Neural Machine Translation by Jointly Learning to Align and Translate"
(arXiv:1409.0473); Vaswani et al. 2017 (arXiv:1706.03762).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["Additive", "General", "dot", "scaled_dot"]


def _check(q: Tensor, k: Tensor, same_dim: bool) -> None:
    for name, t in (("q", q), ("k", k)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(f"{name} must have shape (..., L, D), got {tuple(t.shape)}")
    if q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"q and k must share leading dims: q {tuple(q.shape)}, k {tuple(k.shape)}")
    if same_dim and q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must share the feature dim: q {tuple(q.shape)}, k {tuple(k.shape)}"
        )


def dot(q: Tensor, k: Tensor) -> Tensor:
    r""":math:`s_{ij} = q_i^\top k_j`. Shapes ``(..., Lq, D), (..., Lk, D) -> (..., Lq, Lk)``."""
    _check(q, k, same_dim=True)
    return q @ k.transpose(-2, -1)


def scaled_dot(q: Tensor, k: Tensor, scale: float | None = None) -> Tensor:
    r""":math:`s_{ij} = q_i^\top k_j / \sqrt{d}`: the scaling keeps the scores' variance near 1
    when q and k have unit-variance entries, so softmax does not saturate (Vaswani et al. 2017,
    §3.2.1, footnote 4)."""
    _check(q, k, same_dim=True)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return (q @ k.transpose(-2, -1)) * scale


class General(nn.Module):
    r"""Bilinear ("general") score :math:`s_{ij} = q_i^\top W k_j` with a learned
    :math:`W \in \mathbb{R}^{D_q \times D_k}` (Luong et al. 2015, Eq. 8)."""

    def __init__(self, query_dim: int, key_dim: int) -> None:
        super().__init__()
        for name, d in (("query_dim", query_dim), ("key_dim", key_dim)):
            if not isinstance(d, int) or d < 1:
                raise ValueError(f"{name} must be a positive int, got {d!r}")
        self.weight = nn.Parameter(torch.empty(query_dim, key_dim))  # W: (Dq, Dk)
        nn.init.xavier_uniform_(self.weight)

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        _check(q, k, same_dim=False)
        if q.shape[-1] != self.weight.shape[0] or k.shape[-1] != self.weight.shape[1]:
            raise ValueError(
                f"expected q (..., Lq, {self.weight.shape[0]}) and k (..., Lk, "
                f"{self.weight.shape[1]}), got q {tuple(q.shape)}, k {tuple(k.shape)}"
            )
        # (q W) kᵀ                                                       (..., Lq, Lk)
        return (q @ self.weight) @ k.transpose(-2, -1)


class Additive(nn.Module):
    r"""Additive / concat score :math:`s_{ij} = v^\top \tanh(W q_i + U k_j)`.

    Bahdanau et al. 2014, App. A.1.2: :math:`e_{ij} = v_a^\top \tanh(W_a s_{i-1} + U_a h_j)`;
    Luong et al. 2015's "concat" is the same form. ``U k`` does not depend on the query, so a
    decoder can compute it once per source sentence (:meth:`project_keys`).
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int) -> None:
        super().__init__()
        for name, d in (("query_dim", query_dim), ("key_dim", key_dim), ("hidden_dim", hidden_dim)):
            if not isinstance(d, int) or d < 1:
                raise ValueError(f"{name} must be a positive int, got {d!r}")
        self.W = nn.Linear(query_dim, hidden_dim, bias=False)  # W_a
        self.U = nn.Linear(key_dim, hidden_dim, bias=True)  # U_a (its bias is the MLP's bias)
        self.v = nn.Linear(hidden_dim, 1, bias=False)  # v_a

    def project_keys(self, k: Tensor) -> Tensor:
        """``U k``: (..., Lk, Dk) -> (..., Lk, hidden)."""
        return self.U(k)

    def forward(self, q: Tensor, k: Tensor, projected_keys: Tensor | None = None) -> Tensor:
        _check(q, k, same_dim=False)
        uk = self.project_keys(k) if projected_keys is None else projected_keys  # (..., Lk, A)
        wq = self.W(q)  # (..., Lq, A)
        # vᵀ tanh(W q_i + U k_j)                                         (..., Lq, Lk)
        return self.v(torch.tanh(wq.unsqueeze(-2) + uk.unsqueeze(-3))).squeeze(-1)
