"""Solutions to the exercises of notebooks/03_demos/04_explainability.ipynb."""

from __future__ import annotations

import torch

from explore_attention import explain


def exercise_1() -> torch.Tensor:
    """Uniform attention, one layer: rollout = 0.5 * uniform + 0.5 * I."""
    L = 4
    A = torch.full((1, 1, L, L), 1 / L)  # (layers, heads, L, L)
    expected = 0.5 * torch.full((L, L), 1 / L) + 0.5 * torch.eye(L)
    got = explain.rollout(A)
    torch.testing.assert_close(got, expected)
    assert abs(float(got[0, 0]) - (0.5 / 4 + 0.5)) < 1e-6  # 0.625 on the diagonal
    return got


def exercise_2() -> float:
    """A random ranking puts the marker (index 0 of 11) first with probability 1/11."""
    g = torch.Generator().manual_seed(0)
    n = 20_000
    first = sum(int(torch.randperm(11, generator=g)[0] == 0) for _ in range(n)) / n
    assert abs(first - 1 / 11) < 0.01, first
    return first


def rollout_alpha(A: torch.Tensor, alpha: float) -> torch.Tensor:
    """Rollout with residual weight ``alpha``; ``A`` is (layers, heads, L, L)."""
    L = A.shape[-1]
    R = torch.eye(L, dtype=A.dtype)
    for layer in A:
        a = alpha * layer.mean(0) + (1 - alpha) * torch.eye(L, dtype=A.dtype)
        R = (a / a.sum(-1, keepdim=True)) @ R
    return R


def exercise_3() -> None:
    torch.manual_seed(0)
    A = torch.rand(3, 2, 5, 5).softmax(-1)  # 3 layers, 2 heads
    torch.testing.assert_close(rollout_alpha(A, 0.5), explain.rollout(A))
    plain = A[2].mean(0) @ A[1].mean(0) @ A[0].mean(0)
    torch.testing.assert_close(rollout_alpha(A, 1.0), plain)
