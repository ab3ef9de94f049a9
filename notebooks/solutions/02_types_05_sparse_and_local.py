"""Solutions to the exercises of notebooks/02_types/05_sparse_and_local.ipynb.

Each ``exercise_N`` computes the answer with the library and asserts it (tests/test_solutions.py
calls every one).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.testing import assert_close

from explore_attention.attention import attend, masks, sparse


def exercise_1() -> int:
    """w = 2 + global token 0, L = 8: keys per query 1, 2, 3, 3, 3, 3, 3, 3 = 21."""
    pattern = masks.or_masks(
        masks.sliding_window(2), masks.and_masks(masks.causal, sparse.global_tokens([0]))
    )
    m = masks.materialize(pattern, 8)[0, 0]
    assert m.sum(1).tolist() == [1, 2, 3, 3, 3, 3, 3, 3]
    return int(m.sum())


def exercise_2() -> int:
    """Last query (i = 1023): the window's l = 32 keys plus the highway j = i - 32m, m = 1..31,
    (m = 0 is already in the window) = 63, about 2√L = 64."""
    L, stride = 1024, 32
    seen = int(masks.materialize(sparse.strided(stride), L)[0, 0, L - 1].sum())
    expected = stride + (L - 1) // stride
    assert seen == expected == 63
    assert abs(seen - 2 * math.sqrt(L)) <= 2
    return seen


def exercise_3() -> int:
    """Causal window 128, L = 1024, tiles of 128: each query tile needs its own (diagonal)
    tile and the one before: 8 + 7 = 15 of 64 tiles."""
    n = 1024 // 128
    computed = n + (n - 1)
    saved = sparse.work_saved(masks.sliding_window(128), 1024, block_size=128)
    assert abs(saved - (1 - computed / n**2)) < 1e-9
    return computed


def paper_strided(stride: int):
    """Child et al.'s printed strided pattern: {t..i}, t = max(0, i - l), plus the highway."""

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        d = q_idx - kv_idx
        return (d >= 0) & ((d <= stride) | (d % stride == 0))

    return masks.named(mod, f"paper_strided_{stride}")


def exercise_4() -> int:
    """The paper's window {t..i} holds l + 1 keys: one more entry per query with i >= l that
    the highway does not already cover (i - j = l is a multiple of l): none extra."""
    L, stride = 24, 5
    ours = masks.materialize(sparse.strided(stride), L)[0, 0]
    paper = masks.materialize(paper_strided(stride), L)[0, 0]
    extra = int(paper.sum() - ours.sum())
    # offset l is already in the highway ((i - j) mod l = 0), so the two sets coincide
    assert extra == 0 and torch.equal(paper, ours)
    return extra


def dilated_window(window: int, dilation: int = 2):
    """Query i sees j <= i with i - j in {0, d, 2d, ..., d(w - 1)}."""

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        d = q_idx - kv_idx
        return (d >= 0) & (d % dilation == 0) & (d < dilation * window)

    return masks.named(mod, f"dilated_window_{window}_{dilation}")


def exercise_5() -> float:
    """The dilated window runs on attend like any mask; density at L = 64, w = 8."""
    L = 64
    pattern = dilated_window(8)
    q, k, v = (torch.randn(1, 2, L, 8) for _ in range(3))
    out = attend(q, k, v, mask_mod=pattern, return_weights=False).output
    dense = F.scaled_dot_product_attention(q, k, v, attn_mask=masks.materialize(pattern, L))
    assert_close(out, dense)
    density = sparse.density(pattern, L)
    keys = sum(min(8, i // 2 + 1) for i in range(L))
    assert abs(density - keys / L**2) < 1e-9
    return density
