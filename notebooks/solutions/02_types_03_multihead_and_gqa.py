"""Solutions to the exercises of notebooks/02_types/03_multihead_and_gqa.ipynb.

Each ``exercise_N`` computes the answer with the library and asserts it (tests/test_solutions.py
calls every one).
"""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from explore_attention.attention import MultiHeadAttention, attend

X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


def exercise_1() -> tuple[list[float], list[float]]:
    """x2 = (0, 1): head 1 has q = 0 -> uniform, output 2/3; head 2 weights (0.1554, 0.4223,
    0.4223), output 0.8446."""
    per_head = X.T[:, None, :, None]
    res = attend(per_head, per_head, per_head, scale=1.0)
    head1, head2 = res.weights[0, 0, 1], res.weights[1, 0, 1]
    big, small = math.e / (2 * math.e + 1), 1 / (2 * math.e + 1)
    assert_close(head1, torch.full((3,), 1 / 3))
    assert_close(head2, torch.tensor([small, big, big]))
    assert_close(res.output[:, 0, 1, 0], torch.tensor([2 / 3, 2 * big]))
    return head1.tolist(), head2.tolist()


def exercise_2() -> dict[int, int]:
    """d² for W^Q and W^O, d · H_kv·d_h each for W^K and W^V (no biases)."""
    d, H = 512, 8
    dh = d // H
    counts = {}
    for kv in (8, 2, 1):
        m = MultiHeadAttention(d, H, num_kv_heads=kv, bias=False)
        counts[kv] = sum(p.numel() for p in m.parameters())
        assert counts[kv] == 2 * d * d + 2 * d * kv * dh
    return counts


def exercise_3() -> int:
    """Bytes per token = 2 · 24 · 4 · 64 · 2 = 24,576; 1 GiB / that = 43,690 tokens."""
    per_token = 2 * 24 * 4 * 64 * 2
    tokens = 2**30 // per_token
    assert tokens == 43690
    return tokens


def exercise_4() -> list[float]:
    """One 2-d head: scores x1·x_j = (1, 0, 1) as head 1 - but the values are 2-d, and a query
    with both features (x3) mixes them: x3's weights differ from both heads'."""
    one = attend(X[None, None], X[None, None], X[None, None], scale=1.0).weights[0, 0]
    per_head = X.T[:, None, :, None]
    two = attend(per_head, per_head, per_head, scale=1.0).weights[:, 0]  # (2, L, L)
    row = 2  # the query x3 = (1, 1)
    assert not torch.allclose(one[row], two[0, row])
    assert not torch.allclose(one[row], two[1, row])
    return one[row].tolist()


def exercise_5() -> torch.Tensor:
    """GQA by indexing K/V head h // (H / H_kv) for each query head h."""
    torch.manual_seed(0)
    H, Hkv, L, D = 8, 2, 6, 4
    q, k, v = torch.randn(1, H, L, D), torch.randn(1, Hkv, L, D), torch.randn(1, Hkv, L, D)
    group = H // Hkv
    outs = []
    for h in range(H):
        kh, vh = k[:, h // group], v[:, h // group]
        w = torch.softmax(q[:, h] @ kh.transpose(-2, -1) / math.sqrt(D), -1)
        outs.append(w @ vh)
    by_hand = torch.stack(outs, dim=1)
    assert_close(by_hand, attend(q, k, v).output)
    return by_hand
