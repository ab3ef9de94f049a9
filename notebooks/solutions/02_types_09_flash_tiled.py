"""Solutions to the exercises of notebooks/02_types/09_flash_tiled.ipynb.

Each ``exercise_N`` computes the answer with the library and asserts it (tests/test_solutions.py
calls every one).
"""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from explore_attention.attention import attend, masks, tiled


def _online(s: torch.Tensor, v: torch.Tensor, block: int) -> tuple[float, list[float], float]:
    """Online softmax over blocks: (output, running maxima, final log-sum-exp)."""
    m, ell, acc, maxima = torch.tensor(-math.inf, dtype=s.dtype), 0.0, 0.0, []
    for j0 in range(0, len(s), block):
        m_new = torch.maximum(m, s[j0 : j0 + block].max())
        p = torch.exp(s[j0 : j0 + block] - m_new)
        ell = torch.exp(m - m_new) * ell + p.sum()
        acc = torch.exp(m - m_new) * acc + p @ v[j0 : j0 + block]
        m = m_new
        maxima.append(float(m))
    return float(acc / ell), maxima, float(m + torch.log(ell))


def exercise_1() -> tuple[float, list[float]]:
    """(3, 0 | 1, 2): the max (3) comes first and never changes; the output is the same."""
    s = torch.tensor([3.0, 0.0, 1.0, 2.0], dtype=torch.float64)
    v = torch.tensor([2.0, 4.0, 1.0, 0.0], dtype=torch.float64)
    out, maxima, _ = _online(s, v, 2)
    assert maxima == [3.0, 3.0]
    assert abs(out - float(torch.softmax(s, 0) @ v)) < 1e-12
    assert abs(out - 1.5032) < 1e-4  # the same scores and values as §1, reordered
    return out, maxima


def exercise_2() -> tuple[int, int, int]:
    """n = 16 tiles per side: n(n+1)/2 = 136 computed, n = 16 partial, n(n-1)/2 = 120 skipped."""
    n = 1024 // 64
    bmap = tiled.block_map(masks.causal, 1, 1, 1024, 1024, 64, 64)
    computed = int((bmap != tiled.EMPTY).sum())
    partial = int((bmap == tiled.PARTIAL).sum())
    skipped = int((bmap == tiled.EMPTY).sum())
    assert (computed, partial, skipped) == (n * (n + 1) // 2, n, n * (n - 1) // 2)
    return computed, partial, skipped


def exercise_3() -> float:
    """LSE from the online loop; exp(S - LSE) is the softmax row."""
    g = torch.Generator().manual_seed(0)
    s = torch.randn(40, generator=g, dtype=torch.float64) * 3
    v = torch.randn(40, generator=g, dtype=torch.float64)
    _, _, lse = _online(s, v, 8)
    assert abs(lse - float(torch.logsumexp(s, 0))) < 1e-12
    p = torch.exp(s - lse)
    assert_close(p, torch.softmax(s, 0))
    return lse


def exercise_4() -> float:
    """The tiled backend's gradients equal the reference's (causal, float64)."""
    g = torch.Generator().manual_seed(1)
    base = [torch.randn(1, 2, 37, 8, generator=g, dtype=torch.float64) for _ in range(3)]
    grads = {}
    for backend in ("reference", "tiled"):
        x = [t.clone().requires_grad_(True) for t in base]
        out = attend(*x, mask_mod=masks.causal, backend=backend, return_weights=False).output
        (out * torch.arange(8, dtype=torch.float64)).sum().backward()
        grads[backend] = [t.grad for t in x]
    for a, b in zip(grads["reference"], grads["tiled"]):
        assert_close(a, b, atol=1e-10, rtol=1e-7)
    return float(max((a - b).abs().max() for a, b in zip(*grads.values())))


def exercise_5() -> torch.Tensor:
    """Algorithm 1's order: key tiles outside, every query tile's (m, ℓ, Õ) kept across them."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 40, 8, generator=g, dtype=torch.float64) for _ in range(3))
    L, D, b = 40, 8, 16
    m = torch.full((1, 2, L, 1), -math.inf, dtype=q.dtype)
    ell = torch.zeros_like(m)
    acc = torch.zeros_like(q)
    for j0 in range(0, L, b):  # outer: key/value tiles
        kj, vj = k[:, :, j0 : j0 + b], v[:, :, j0 : j0 + b]
        for i0 in range(0, L, b):  # inner: query tiles, statistics read and written back
            rows = slice(i0, i0 + b)
            s = q[:, :, rows] @ kj.transpose(-1, -2) / D**0.5
            m_new = torch.maximum(m[:, :, rows], s.amax(-1, keepdim=True))
            p = torch.exp(s - m_new)
            scale = torch.exp(m[:, :, rows] - m_new)
            ell[:, :, rows] = scale * ell[:, :, rows] + p.sum(-1, keepdim=True)
            acc[:, :, rows] = scale * acc[:, :, rows] + p @ vj
            m[:, :, rows] = m_new
    out = acc / ell
    assert_close(out, tiled.tiled_attention(q, k, v, block_size=b).output, atol=1e-10, rtol=1e-7)
    return out
