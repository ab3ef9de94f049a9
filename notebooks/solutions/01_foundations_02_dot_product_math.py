"""Solutions to the exercises of notebooks/01_foundations/02_dot_product_math.ipynb.

Each function computes the answer with the library and asserts it; tests/test_solutions.py runs
them all.
"""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close


def exercise_1() -> float:
    """Var(q.k) = d * Var(q_c) * Var(k_c) = 64 * 4 * 4 = 1024, so the scale is 1/32 = 1/(σ² √d)."""
    g = torch.Generator().manual_seed(0)
    n, d, sigma = 50_000, 64, 2.0
    q = sigma * torch.randn(n, d, generator=g, dtype=torch.float64)
    k = sigma * torch.randn(n, d, generator=g, dtype=torch.float64)
    dot = (q * k).sum(-1)
    predicted = d * sigma**4
    assert abs(dot.var().item() / predicted - 1) < 0.05
    scale = 1 / (sigma**2 * math.sqrt(d))
    assert abs((dot * scale).var().item() - 1) < 0.05
    return scale


def exercise_2() -> None:
    """A larger scale sharpens: the best key's weight is larger at 4 than at 0.25. No positive
    scale gives exactly equal weights (the scores differ); only scale -> 0 approaches 1/4 each
    (scale 0 would erase the scores altogether, and the knob refuses it)."""
    from explore_attention.viz import knobs

    hot, cold = knobs.temperature_weights(4.0), knobs.temperature_weights(0.25)
    assert hot.max() > cold.max() and hot.argmax() == cold.argmax() == 0
    tiny = knobs.temperature_weights(1e-6)
    assert_close(tiny, torch.full((4,), 0.25, dtype=tiny.dtype), atol=1e-5, rtol=0)
    for scale in (1e-3, 0.25, 1.0, 4.0):  # distinct scores -> distinct weights at every scale
        assert len(set(knobs.temperature_weights(scale).tolist())) == 4
    try:
        knobs.temperature_weights(0.0)
    except ValueError:
        pass
    else:
        raise AssertionError("scale 0 should be refused")


def exercise_3() -> None:
    """Padding keys hidden by a boolean mask get exactly zero weight, as with masks.padding."""
    from explore_attention.attention import attend, masked_softmax, masks

    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 1, 6, 8, dtype=torch.float64) for _ in range(3))
    allowed = torch.arange(6) < 4  # keys 0..3 are real, 4..5 padding
    scores = q @ k.transpose(-1, -2) / math.sqrt(8)  # (1, 1, 6, 6)
    a = masked_softmax(scores, allowed.expand(6, 6))
    lib = attend(q, k, v, mask_mod=masks.padding([4]))
    assert_close(a, lib.weights)
    assert torch.all(a[..., 4:] == 0)
    assert_close(a.sum(-1), torch.ones(1, 1, 6, dtype=torch.float64))


def exercise_4() -> None:
    """A stable softmax and log-sum-exp by subtracting the maximum."""

    def logsumexp(x: torch.Tensor) -> torch.Tensor:
        m = x.max(dim=-1, keepdim=True).values
        return m + torch.log(torch.exp(x - m).sum(dim=-1, keepdim=True))

    def softmax_stable(x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x - logsumexp(x))

    x = torch.tensor([1000.0, 999.0, 0.0], dtype=torch.float64)
    naive = torch.exp(x) / torch.exp(x).sum()
    assert torch.isnan(naive).any()  # inf / inf
    assert_close(softmax_stable(x), torch.softmax(x, -1))
    assert_close(logsumexp(x), torch.logsumexp(x, -1, keepdim=True))
