r"""FlashAttention, line by line: the algorithm to read beside the paper.

Dao 2023, "FlashAttention-2" (arXiv:2307.08691), Algorithm 1 (forward) and Algorithm 2
(backward); the same recurrences as Dao et al. 2022, "FlashAttention" (arXiv:2205.14135),
Algorithms 1 and 4, with the division by :math:`\ell` deferred to the end. Exact attention never
needs the whole ``(Lq, Lk)`` score matrix: queries are split into row blocks :math:`Q_i`, keys
and values into column blocks :math:`K_j, V_j`, and each query row keeps a running maximum
:math:`m`, normaliser :math:`\ell` and unnormalised output :math:`O`.

This module is written for reading: plain loops over blocks, one line per line of the
algorithm, every (batch, head) at once. :mod:`~explore_attention.attention.tiled` is the same
computation engineered for speed on a CPU (block skipping from a mask's block map, merged
steps, in-place updates, reused buffers, a thread pool) and is tested equal to this one.

Masks (``mask_mod``, True = attend, :mod:`~explore_attention.attention.core`'s position
convention) enter as :math:`S_{ij} = -\infty` where masked (FlashAttention's Algorithm 2 in the
2022 paper); a row that sees no key has :math:`m = -\infty`, which we shift by 0 so its output
is 0, not NaN.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..checks import check_int
from .core import MaskMod, check_qkv, mask_tensor, repeat_kv

__all__ = ["flash_attention", "flash_backward", "flash_forward"]


def _blocks(n: int, size: int) -> list[slice]:
    return [slice(a, min(n, a + size)) for a in range(0, n, size)]


def _masked_scores(
    q_i: Tensor, k_j: Tensor, rows: slice, cols: slice, scale: float, mask: Tensor | None
) -> Tensor:
    r""":math:`S_{ij} = \tau\, Q_i K_j^\top`, with :math:`-\infty` where the mask says no."""
    s = scale * q_i @ k_j.transpose(-2, -1)  # (B, H, Br, Bc)
    if mask is not None:
        s = s.masked_fill(~mask[..., rows, cols], float("-inf"))
    return s


def _mask(mask_mod: MaskMod | None, q: Tensor, k: Tensor) -> Tensor | None:
    if mask_mod is None:
        return None
    B, H, Lq, _ = q.shape
    m = mask_tensor(mask_mod, B, H, Lq, k.shape[2], q.device)  # checked, (B|1, H|1, Lq, Lk)
    return m.expand(B, H, Lq, k.shape[2])  # (B, H, Lq, Lk), a view: no copy per head


def flash_forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask_mod: MaskMod | None = None,
    scale: float | None = None,
    block_size: int = 16,
) -> tuple[Tensor, Tensor]:
    r"""Algorithm 1: output ``O (B, H, Lq, Dv)`` and log-sum-exp ``L (B, H, Lq, 1)``.

    .. math::

        m_i^{(j)} = \max\!\big(m_i^{(j-1)}, \operatorname{rowmax} S_i^{(j)}\big), \quad
        \tilde P_i^{(j)} = e^{S_i^{(j)} - m_i^{(j)}}, \quad
        \ell_i^{(j)} = e^{m_i^{(j-1)} - m_i^{(j)}} \ell_i^{(j-1)}
            + \operatorname{rowsum} \tilde P_i^{(j)}

    .. math::

        O_i^{(j)} = \operatorname{diag}\!\big(e^{m_i^{(j-1)} - m_i^{(j)}}\big) O_i^{(j-1)}
            + \tilde P_i^{(j)} V_j, \qquad
        O_i = \operatorname{diag}\big(\ell_i^{(T_c)}\big)^{-1} O_i^{(T_c)}, \quad
        L_i = m_i^{(T_c)} + \log \ell_i^{(T_c)}
    """
    check_qkv(q, k, v)
    check_int("block_size", block_size, 1)
    H = q.shape[1]
    k, v = repeat_kv(k, H), repeat_kv(v, H)  # GQA: each query head sees its kv head
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    mask = _mask(mask_mod, q, k)
    Lq, Lk = q.shape[2], k.shape[2]
    O = q.new_zeros(*q.shape[:3], v.shape[-1])  # (B, H, Lq, Dv)
    L = q.new_full((*q.shape[:3], 1), float("-inf"))  # (B, H, Lq, 1)
    for rows in _blocks(Lq, block_size):  # line 3: for 1 ≤ i ≤ T_r
        q_i = q[:, :, rows]  # line 4: load Q_i
        # line 5: O_i⁽⁰⁾ = 0, ℓ_i⁽⁰⁾ = 0, m_i⁽⁰⁾ = −∞
        o_i = q.new_zeros(*q_i.shape[:3], v.shape[-1])
        l_i = q.new_zeros(*q_i.shape[:3], 1)
        m_i = q.new_full((*q_i.shape[:3], 1), float("-inf"))
        for cols in _blocks(Lk, block_size):  # line 6: for 1 ≤ j ≤ T_c
            k_j, v_j = k[:, :, cols], v[:, :, cols]  # line 7: load K_j, V_j
            s = _masked_scores(q_i, k_j, rows, cols, scale, mask)  # line 8: S_i⁽ʲ⁾
            # line 9: m_i⁽ʲ⁾ = max(m_i⁽ʲ⁻¹⁾, rowmax(S)), P̃ = exp(S − m_i⁽ʲ⁾),
            #         ℓ_i⁽ʲ⁾ = e^{m_i⁽ʲ⁻¹⁾ − m_i⁽ʲ⁾} ℓ_i⁽ʲ⁻¹⁾ + rowsum(P̃)
            m_new = torch.maximum(m_i, s.amax(-1, keepdim=True))
            m_safe = torch.where(torch.isinf(m_new), 0.0, m_new)  # a row with no key yet
            p = torch.exp(s - m_safe)
            correction = torch.exp(m_i - m_safe)
            l_i = correction * l_i + p.sum(-1, keepdim=True)
            # line 10: O_i⁽ʲ⁾ = diag(e^{m_i⁽ʲ⁻¹⁾ − m_i⁽ʲ⁾}) O_i⁽ʲ⁻¹⁾ + P̃ V_j
            o_i = correction * o_i + p @ v_j
            m_i = m_new
        # line 12: O_i = diag(ℓ_i)⁻¹ O_i;  line 13: L_i = m_i + log ℓ_i  (empty rows: 0, −∞)
        live = l_i > 0
        O[:, :, rows] = o_i / torch.where(live, l_i, 1.0)
        L[:, :, rows] = torch.where(live, m_i + torch.log(torch.where(live, l_i, 1.0)), -math.inf)
    return O, L


def flash_backward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    O: Tensor,
    L: Tensor,
    dO: Tensor,
    mask_mod: MaskMod | None = None,
    scale: float | None = None,
    block_size: int = 16,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Algorithm 2: ``dQ, dK, dV`` from the saved ``O`` and log-sum-exp ``L``, recomputing each
    block of probabilities :math:`P_i^{(j)} = e^{S_i^{(j)} - L_i}` instead of storing them.

    .. math::

        D_i = \operatorname{rowsum}(dO_i \circ O_i), \quad
        dV_j \mathrel{+}= P^\top dO_i, \quad
        dS = P \circ (dO_i V_j^\top - D_i), \quad
        dQ_i \mathrel{+}= \tau\, dS\, K_j, \quad
        dK_j \mathrel{+}= \tau\, dS^\top Q_i
    """
    Hkv, H = k.shape[1], q.shape[1]
    k, v = repeat_kv(k, H), repeat_kv(v, H)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    mask = _mask(mask_mod, q, k)
    L = torch.where(torch.isinf(L), math.inf, L)  # a row with no key: P = e^{−∞} = 0
    D = (dO * O).sum(-1, keepdim=True)  # line 4: D = rowsum(dO ∘ O)        (B, H, Lq, 1)
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    for cols in _blocks(k.shape[2], block_size):  # line 5: for 1 ≤ j ≤ T_c
        k_j, v_j = k[:, :, cols], v[:, :, cols]  # line 6: load K_j, V_j; dK_j = dV_j = 0
        for rows in _blocks(q.shape[2], block_size):  # line 7: for 1 ≤ i ≤ T_r
            q_i, do_i = q[:, :, rows], dO[:, :, rows]  # line 8: load Q_i, dO_i, L_i, D_i
            s = _masked_scores(q_i, k_j, rows, cols, scale, mask)  # line 9: S_i⁽ʲ⁾
            p = torch.exp(s - L[:, :, rows])  # line 10: P_i⁽ʲ⁾ = exp(S − L_i)
            dv[:, :, cols] += p.transpose(-2, -1) @ do_i  # line 11: dV_j += Pᵀ dO_i
            dp = do_i @ v_j.transpose(-2, -1)  # line 12: dP = dO_i V_jᵀ
            ds = p * (dp - D[:, :, rows])  # line 13: dS = P ∘ (dP − D_i)
            dq[:, :, rows] += scale * ds @ k_j  # line 14: dQ_i += τ dS K_j
            dk[:, :, cols] += scale * ds.transpose(-2, -1) @ q_i  # line 15: dK_j += τ dSᵀ Q_i
    # GQA: a kv head's gradient sums over the query heads that share it
    B, Lk = k.shape[0], k.shape[2]
    dk = dk.view(B, Hkv, H // Hkv, Lk, -1).sum(2)
    dv = dv.view(B, Hkv, H // Hkv, Lk, -1).sum(2)
    return dq, dk, dv


class _Flash(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, mask_mod, scale, block_size):  # type: ignore[override]
        O, L = flash_forward(q, k, v, mask_mod, scale, block_size)
        ctx.save_for_backward(q, k, v, O, L)
        ctx.args = (mask_mod, scale, block_size)
        return O

    @staticmethod
    def backward(ctx, dO):  # type: ignore[override]
        q, k, v, O, L = ctx.saved_tensors
        return (*flash_backward(q, k, v, O, L, dO, *ctx.args), None, None, None)


def flash_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask_mod: MaskMod | None = None,
    scale: float | None = None,
    block_size: int = 16,
) -> Tensor:
    """Exact attention ``(B, H, Lq, Dv)`` by Algorithm 1, differentiable by Algorithm 2."""
    return _Flash.apply(q, k, v, mask_mod, scale, block_size)
