"""Solutions to the exercises of notebooks/02_types/07_lsh_reformer.ipynb.

Each ``exercise_N`` computes the answer with the library and asserts it (tests/test_solutions.py
calls every one).
"""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from explore_attention.attention import lsh
from explore_attention.viz import knobs

ABCD = torch.tensor([[0.8, 0.6], [0.6, 0.8], [-0.6, 0.8], [0.1, -0.9]], dtype=torch.float64)


def _buckets(x: torch.Tensor, rot: torch.Tensor) -> list[int]:
    r = x @ rot
    return torch.cat([r, -r], -1).argmax(-1).tolist()


def exercise_1() -> tuple[list[int], list[int]]:
    """R = I: d = (0.1, -0.9) points down -> bucket 3. Rotated by 45°: a and b now collide."""
    plain = _buckets(ABCD, torch.eye(2, dtype=torch.float64))
    assert plain == [0, 1, 1, 3]
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)
    rot45 = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    rotated = _buckets(ABCD, rot45)
    assert rotated[0] == rotated[1]  # a and b (16° apart) share a bucket now
    assert rotated[1] != rotated[2]  # b and c (74° apart) no longer do
    return plain, rotated


def exercise_2() -> tuple[int, float]:
    """Each query scores its chunk and the previous: at most 2c = 16 keys; 64·16/64² = 1/4."""
    g = torch.Generator().manual_seed(0)
    qk = torch.randn(1, 1, 64, 8, generator=g)
    v = torch.randn(1, 1, 64, 4, generator=g)
    w = lsh.lsh_attention(qk, v, n_hashes=1, bucket_size=8, generator=g).weights
    most = int((w[0, 0] > 0).sum(-1).max())
    assert most <= 16
    ratio = 64 * 16 / 64**2
    assert ratio == 0.25
    return most, ratio


def exercise_3() -> float:
    """One chunk: 1 and 4 rounds both give exact attention (a uniform N = 4 shifts every
    score of a row by log 4, which the softmax ignores)."""
    g = torch.Generator().manual_seed(1)
    qk = torch.randn(1, 2, 32, 8, generator=g, dtype=torch.float64)
    v = torch.randn(1, 2, 32, 4, generator=g, dtype=torch.float64)
    exact = lsh.shared_qk_attention(qk, v).output
    for rounds in (1, 4):
        out = lsh.lsh_attention(qk, v, n_hashes=rounds, bucket_size=32, generator=g).output
        assert_close(out, exact, atol=1e-10, rtol=1e-7)
    scores = torch.randn(10, dtype=torch.float64)
    shift = float((torch.softmax(scores, 0) - torch.softmax(scores - math.log(4), 0)).abs().max())
    assert shift < 1e-15
    return shift


def exercise_4() -> int:
    """The smallest number of rounds whose error is at most half the one-round error."""
    one = knobs.lsh_error(1)
    smallest = next(r for r in (1, 2, 3, 4, 5, 6, 7, 8) if knobs.lsh_error(r) <= one / 2)
    assert knobs.lsh_error(smallest) <= one / 2 < knobs.lsh_error(smallest - 1)
    return smallest


def exercise_5() -> torch.Tensor:
    """One round by hand: hash, sort, chunk, attend to own + previous chunk, un-sort."""
    L, D, C = 16, 4, 4
    g = torch.Generator().manual_seed(3)
    qk = torch.randn(1, 1, L, D, generator=g, dtype=torch.float64)
    v = torch.randn(1, 1, L, 2, generator=g, dtype=torch.float64)
    n_buckets = max(2, 2 * math.ceil(math.ceil(L / C) / 2))  # the library's choice
    rot = torch.randn(
        1, D, n_buckets // 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64
    )[0]
    keys = qk[0, 0] / qk[0, 0].norm(dim=-1, keepdim=True)
    buckets = torch.tensor(_buckets(keys, rot))
    order = (buckets * L + torch.arange(L)).argsort()
    chunk = torch.empty(L, dtype=torch.long)
    chunk[order] = torch.arange(L) // C  # chunk of each original position
    sees = (chunk[:, None] - chunk[None, :] == 0) | (chunk[:, None] - chunk[None, :] == 1)
    s = qk[0, 0] @ keys.T / math.sqrt(D)
    s = s.masked_fill(torch.eye(L, dtype=torch.bool), lsh.SELF_SCORE)
    s = s.masked_fill(~sees, float("-inf"))
    out = torch.softmax(s, -1) @ v[0, 0]
    lib = lsh.lsh_attention(
        qk, v, n_hashes=1, bucket_size=C, generator=torch.Generator().manual_seed(9)
    )
    assert_close(out, lib.output[0, 0], atol=1e-10, rtol=1e-7)
    return out
