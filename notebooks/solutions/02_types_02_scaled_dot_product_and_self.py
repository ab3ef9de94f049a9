"""Solutions to the exercises of notebooks/02_types/02_scaled_dot_product_and_self.ipynb.

Each ``exercise_N`` computes the answer with the library and asserts it (tests/test_solutions.py
calls every one).
"""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from explore_attention.attention import attend, masks
from explore_attention.attention.positional import sinusoidal_positions
from explore_attention.tasks import layer_types as lt

K = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
V = torch.tensor([[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])


def _weights(q: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    res = attend(q[None, None, None], K[None, None], V[None, None], scale=scale)
    return res.weights[0, 0, 0]


def exercise_1() -> list[float]:
    """q = (2, 2) doubles every score: sharper weights; so does halving the divisor."""
    original = _weights(torch.tensor([1.0, 1.0]))
    doubled = _weights(torch.tensor([2.0, 2.0]))
    assert doubled[0] > original[0] and doubled[2] < original[2]  # sharper
    # scale 2/√2 on the original query gives the doubled query's weights
    assert_close(_weights(torch.tensor([1.0, 1.0]), scale=2 / math.sqrt(2)), doubled)
    e1, e3 = math.exp(2 / math.sqrt(2) * 1), math.exp(2 / math.sqrt(2) * -2)
    assert abs(float(doubled[0]) - e1 / (2 * e1 + e3)) < 1e-6
    return doubled.tolist()


def exercise_2() -> float:
    """Dividing by d gives variance 1/d (0.0039 for d = 256): the softmax flattens to uniform."""
    torch.manual_seed(0)
    d = 256
    a, b = torch.randn(20000, d), torch.randn(20000, d)
    var = float(((a * b).sum(-1) / d).var())
    assert abs(var - 1 / d) < 0.2 / d
    q, k = torch.randn(200, 1, d), torch.randn(200, 32, d)
    top = torch.softmax((q @ k.transpose(-2, -1)) / d, -1).max(-1).values.mean()
    assert float(top) < 1.5 / 32  # nearly uniform over 32 keys
    return var


def exercise_3() -> int:
    """Pair term 4 n² d equals the RNN's 4 n d² at n = d = 64."""
    d = 64

    def pair_term(n: int) -> int:
        return lt.flops("self-attention", n, d) - 2 * 3 * n * d * d  # minus Q, K, V

    crossover = next(n for n in range(1, 257) if pair_term(n) >= lt.flops("recurrent", n, d))
    assert crossover == d
    return crossover


def exercise_4() -> torch.Tensor:
    """Causal attention with an explicit -inf upper triangle equals mask_mod=masks.causal."""
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, 2, 6, 8) for _ in range(3))
    scores = q @ k.transpose(-2, -1) / math.sqrt(8)
    upper = torch.ones(6, 6, dtype=torch.bool).triu(1)
    weights = torch.softmax(scores.masked_fill(upper, float("-inf")), -1)
    res = attend(q, k, v, mask_mod=masks.causal)
    assert_close(weights, res.weights)
    assert_close(weights @ v, res.output)
    return weights


def exercise_5() -> float:
    """With sinusoidal positions added, Attn(PX) != P·Attn(X)."""
    torch.manual_seed(1)
    X = torch.randn(1, 7, 16)
    Wq, Wk, Wv = (torch.randn(16, 16) / 4 for _ in range(3))

    def attn(x: torch.Tensor) -> torch.Tensor:
        x = x + sinusoidal_positions(7, 16)  # positions follow the slot, not the token

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(1, -1, 2, 8).transpose(1, 2)

        return attend(split(x @ Wq), split(x @ Wk), split(x @ Wv)).output

    perm = torch.tensor([1, 5, 3, 0, 2, 6, 4])
    gap = float((attn(X[:, perm]) - attn(X)[:, :, perm]).abs().max())
    assert gap > 1e-2
    return gap
