"""Solutions to the exercises of notebooks/01_foundations/03_attention_from_scratch.ipynb.

Each function computes the answer with the library and asserts it; tests/test_solutions.py runs
them all.
"""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close


def attention(q, k, v, mask=None):
    """The notebook's from-scratch attention."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, Lq, Lk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ v, weights


def exercise_1() -> tuple[float, float]:
    """Scaling x by 3 scales every score by 9: the softmax sharpens towards the largest score,
    a token's own (its squared norm), so the diagonal weight grows."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 11, 32, generator=g, dtype=torch.float64)
    _, w1 = attention(x, x, x)
    _, w3 = attention(3 * x, 3 * x, 3 * x)
    before = w1[0, 0].diagonal().mean().item()
    after = w3[0, 0].diagonal().mean().item()
    assert after > before
    return before, after


def exercise_2() -> None:
    """A causal sliding window of width 3: 0 <= i - j < 3."""
    from explore_attention.attention import attend, masks

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 8, 4, dtype=torch.float64) for _ in range(3))
    i, j = torch.arange(8)[:, None], torch.arange(8)[None, :]
    window = (i - j >= 0) & (i - j < 3)  # (L, L)
    out, w = attention(q, k, v, window)
    lib = attend(q, k, v, mask_mod=masks.sliding_window(3))
    assert_close(out, lib.output)
    assert_close(w, lib.weights)
    assert int((w[0, 0] > 0).sum(-1).max()) == 3


def exercise_3() -> None:
    """Multi-head attention from its four linear layers and the from-scratch function."""
    from explore_attention.attention import MultiHeadAttention

    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).double().eval()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    B, L, H, d_h = 2, 5, 4, 4

    def split(t):  # (B, L, 16) -> (B, H, L, d_h)
        return t.view(B, L, H, d_h).transpose(1, 2)

    with torch.no_grad():
        out, w = attention(split(mha.q_proj(x)), split(mha.k_proj(x)), split(mha.v_proj(x)))
        y = mha.out_proj(out.transpose(1, 2).reshape(B, L, 16))  # concat heads, then W_o
        res = mha(x)
        ref, ref_w = res.output, res.weights
    assert_close(y, ref)
    assert_close(w, ref_w)
