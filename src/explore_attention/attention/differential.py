r"""Differential attention (Ye et al. 2024, "Differential Transformer", arXiv:2410.05258).

Softmax attention spreads some weight over irrelevant context ("attention noise"). Differential
attention computes two softmax maps and subtracts one from the other, cancelling the common-mode
noise the way a differential amplifier does (§2.1, Eq. 1):

.. math::

    [Q_1; Q_2] = X W^Q, \quad [K_1; K_2] = X W^K, \quad V = X W^V

    \operatorname{DiffAttn}(X) = \left(\operatorname{softmax}\!\left(\frac{Q_1 K_1^\top}{\sqrt d}
    \right) - \lambda\, \operatorname{softmax}\!\left(\frac{Q_2 K_2^\top}{\sqrt d}\right)\right) V

with the re-parameterised scalar (Eq. 2)

.. math::

    \lambda = \exp(\lambda_{q_1} \cdot \lambda_{k_1}) - \exp(\lambda_{q_2} \cdot \lambda_{k_2})
              + \lambda_{\text{init}}, \qquad
    \lambda_{\text{init}} = 0.8 - 0.6 \exp(-0.3 (l - 1))

for layer :math:`l \ge 1`. Each head is normalised on its own and rescaled (§2.2, Eq. 3):
:math:`\overline{\text{head}}_i = (1 - \lambda_{\text{init}})
\operatorname{GroupNorm}(\text{head}_i)`, where GroupNorm is RMSNorm over each head's
:math:`2d` channels, as in the paper's code.

Shapes: each head has query/key halves of size ``d`` and values of size ``2d``; ``num_heads``
heads of width ``2d`` make ``embed_dim = 2 d H``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..checks import check_int
from .core import AttentionOutput, MaskMod, attend, check_qkv

__all__ = ["DifferentialAttention", "differential_attention", "lambda_init"]


def lambda_init(layer_index: int) -> float:
    r""":math:`\lambda_{\text{init}} = 0.8 - 0.6\, e^{-0.3 (l - 1)}`, layer ``l >= 1`` (Eq. 2)."""
    check_int("layer_index", layer_index)  # 1-based
    return 0.8 - 0.6 * math.exp(-0.3 * (layer_index - 1))


def differential_attention(
    q1: Tensor,
    k1: Tensor,
    q2: Tensor,
    k2: Tensor,
    v: Tensor,
    lam: float | Tensor,
    *,
    mask_mod: MaskMod | None = None,
    scale: float | None = None,
    return_weights: bool = True,
) -> AttentionOutput:
    r"""Eq. (1): :math:`(\operatorname{softmax}(Q_1K_1^\top\alpha) - \lambda
    \operatorname{softmax}(Q_2K_2^\top\alpha))V` on the (B, H, L, D) layout.

    Args:
        q1: ``(B, H, Lq, d)``, the first map's queries.
        k1: ``(B, Hkv, Lk, d)``, the first map's keys.
        q2: ``(B, H, Lq, d)``, the second map's queries.
        k2: ``(B, Hkv, Lk, d)``, the second map's keys.
        v: ``(B, Hkv, Lk, Dv)``, shared by both maps.
        lam: :math:`\lambda`, a float or a tensor broadcastable to ``(B, H, 1, 1)`` (one per head).
        mask_mod: applied to both maps (e.g. ``masks.causal``).
        scale: default :math:`1/\sqrt d`.
        return_weights: also return the implied attention matrix
            :math:`W_1 - \lambda W_2` ``(B, H, Lq, Lk)`` (rows sum to :math:`1 - \lambda`; entries
            may be negative), so that ``output == weights @ v``.
    """
    check_qkv(q1, k1, v)
    check_qkv(q2, k2, v)
    if q1.shape != q2.shape or k1.shape != k2.shape:
        raise ValueError(
            f"the two halves must match: q1 {tuple(q1.shape)} vs q2 {tuple(q2.shape)}, "
            f"k1 {tuple(k1.shape)} vs k2 {tuple(k2.shape)}"
        )
    if isinstance(lam, Tensor):
        B, H = q1.shape[:2]
        try:  # (H,) would broadcast against Dv, not the heads
            want = (B, H, 1, 1)
            fits = lam.dim() <= 4 and torch.broadcast_shapes(lam.shape, want) == want
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"lam must be a scalar or broadcastable to (B, H, 1, 1) = ({B}, {H}, 1, 1), got "
                f"shape {tuple(lam.shape)}; for one λ per head pass lam.view(1, {H}, 1, 1)"
            )
        lam = lam.to(q1.dtype)
    elif not isinstance(lam, (int, float)) or isinstance(lam, bool):
        raise TypeError(f"lam must be a float or a tensor, got {type(lam).__name__}")
    backend = "reference" if return_weights else "auto"
    a1 = attend(
        q1, k1, v, mask_mod=mask_mod, scale=scale, backend=backend, return_weights=return_weights
    )
    a2 = attend(
        q2, k2, v, mask_mod=mask_mod, scale=scale, backend=backend, return_weights=return_weights
    )
    # (W₁ − λ W₂) V = W₁V − λ W₂V                                            (B, H, Lq, Dv)
    out = a1.output - lam * a2.output
    weights = a1.weights - lam * a2.weights if return_weights else None  # (B, H, Lq, Lk)
    return AttentionOutput(out, weights)


class DifferentialAttention(nn.Module):
    r"""Multi-head differential attention (Ye et al. 2024, §2.1–2.2, arXiv:2410.05258).

    ``forward(x (B, L, embed_dim), mask_mod=None)`` returns ``AttentionOutput(output
    (B, L, embed_dim), weights (B, H, L, L))``, the weights being each head's
    :math:`W_1 - \lambda W_2`.

    Args:
        embed_dim: model width; a multiple of ``2 * num_heads``.
        num_heads: differential heads ``H`` (each holds two softmax maps).
        layer_index: 1-based depth ``l``, which sets :math:`\lambda_{\text{init}}`.
    """

    def __init__(self, embed_dim: int, num_heads: int, layer_index: int = 1) -> None:
        super().__init__()
        check_int("embed_dim", embed_dim)
        check_int("num_heads", num_heads)
        if embed_dim % (2 * num_heads):
            raise ValueError(
                f"embed_dim ({embed_dim}) must be divisible by 2 * num_heads ({2 * num_heads})"
            )
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // (2 * num_heads)  # d: size of each of Q1, Q2, K1, K2
        self.lambda_init = lambda_init(layer_index)
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=False)  # [Q1; Q2] for all heads
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=False)  # [K1; K2]
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=False)  # V, 2d per head
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=False)  # W^O
        d = self.head_dim
        # λ's re-parameterisation vectors (Eq. 2), initialised N(0, 0.1²) as in the paper's code.
        self.lambda_q1 = nn.Parameter(torch.randn(d) * 0.1)
        self.lambda_k1 = nn.Parameter(torch.randn(d) * 0.1)
        self.lambda_q2 = nn.Parameter(torch.randn(d) * 0.1)
        self.lambda_k2 = nn.Parameter(torch.randn(d) * 0.1)
        self.norm = nn.RMSNorm(2 * d, eps=1e-5)  # per-head GroupNorm over 2d channels

    def lam(self) -> Tensor:
        r"""Eq. (2): :math:`\lambda = e^{\lambda_{q_1}\cdot\lambda_{k_1}}
        - e^{\lambda_{q_2}\cdot\lambda_{k_2}} + \lambda_{\text{init}}`."""
        return (
            torch.exp(self.lambda_q1 @ self.lambda_k1)
            - torch.exp(self.lambda_q2 @ self.lambda_k2)
            + self.lambda_init
        )

    def forward(
        self, x: Tensor, mask_mod: MaskMod | None = None, *, return_weights: bool = True
    ) -> AttentionOutput:
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != self.embed_dim:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, L, embed_dim={self.embed_dim}), got {got}")
        B, L, _ = x.shape
        H, d = self.num_heads, self.head_dim
        q = self.q_proj(x).view(B, L, H, 2, d).permute(3, 0, 2, 1, 4)  # (2, B, H, L, d)
        k = self.k_proj(x).view(B, L, H, 2, d).permute(3, 0, 2, 1, 4)  # (2, B, H, L, d)
        v = self.v_proj(x).view(B, L, H, 2 * d).transpose(1, 2)  # (B, H, L, 2d)
        res = differential_attention(
            q[0],
            k[0],
            q[1],
            k[1],
            v,
            self.lam(),
            mask_mod=mask_mod,
            return_weights=return_weights,
        )
        # (1 − λ_init) · GroupNorm(head_i)                                   (B, H, L, 2d)
        heads = (1.0 - self.lambda_init) * self.norm(res.output)
        out = heads.transpose(1, 2).reshape(B, L, self.embed_dim)  # (B, L, H·2d)
        return AttentionOutput(self.out_proj(out), res.weights)
