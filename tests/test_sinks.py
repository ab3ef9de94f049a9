"""Attention sinks (StreamingLLM, Xiao et al. 2023, arXiv:2309.17453) vs float64 formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import TOL
from torch.testing import assert_close

from explore_attention.attention import attend, masks
from explore_attention.attention.positional import apply_rope
from explore_attention.attention.sinks import SinkKVCache, sink_window


@pytest.mark.parametrize("L,s,w", [(20, 4, 5), (9, 0, 3), (7, 2, 10), (1, 1, 1)])
def test_mask_matches_definition(L, s, w):
    m = masks.materialize(sink_window(s, w), L)[0, 0]
    ref = torch.tensor([[j <= i and (j < s or i - j < w) for j in range(L)] for i in range(L)])
    assert torch.equal(m, ref)


def test_attend_with_sinks_matches_float64_formula_and_sdpa():
    torch.manual_seed(0)
    B, H, L, D = 2, 3, 24, 8
    q, k, v = (torch.randn(B, H, L, D, dtype=torch.float64) for _ in range(3))
    mod = sink_window(4, 6)
    res = attend(q, k, v, mask_mod=mod, backend="reference")
    out = torch.zeros(B, H, L, D, dtype=torch.float64)
    for i in range(L):
        S = [j for j in range(L) if j <= i and (j < 4 or i - j < 6)]
        e = torch.stack([(q[..., i, :] * k[..., j, :]).sum(-1) / math.sqrt(D) for j in S], -1)
        a = torch.softmax(e, -1)
        out[..., i, :] = sum(a[..., n, None] * v[..., j, :] for n, j in enumerate(S))
    assert_close(res.output, out, **TOL[torch.float64])
    q32, k32, v32 = (t.float().requires_grad_() for t in (q, k, v))
    o = attend(q32, k32, v32, mask_mod=mod, backend="sdpa", return_weights=False).output
    m = masks.materialize(mod, L)
    o_ref = F.scaled_dot_product_attention(q32, k32, v32, attn_mask=m)
    assert_close(o, o_ref, **TOL[torch.float32])
    g = torch.randn_like(o)
    for a, b in zip(
        torch.autograd.grad(o, (q32, k32, v32), g),
        torch.autograd.grad(o_ref, (q32, k32, v32), g),
        strict=True,
    ):
        assert_close(a, b, **TOL[torch.float32])


def test_streaming_cache_equals_masked_full_attention_without_rope():
    """Token-by-token decoding with a bounded cache equals the sink mask over the whole stream."""
    torch.manual_seed(1)
    B, H, L, D, s, w = 2, 2, 30, 8, 3, 5
    q, k, v = (torch.randn(B, H, L, D, dtype=torch.float64) for _ in range(3))
    full = attend(q, k, v, mask_mod=sink_window(s, w), backend="reference").output
    cache = SinkKVCache(s, w)
    for t in range(L):
        kc, vc = cache.append(k[:, :, t : t + 1], v[:, :, t : t + 1])
        assert kc.shape[2] == min(t + 1, s + w)
        out_t = attend(q[:, :, t : t + 1], kc, vc, backend="reference").output
        assert_close(out_t, full[:, :, t : t + 1], **TOL[torch.float64])
    assert cache.seen == L
    assert cache.original_positions().tolist() == [0, 1, 2, *range(L - w, L)]


def test_streaming_cache_with_rope_uses_cache_positions():
    """§3.2: keys are rotated with their positions in the cache, the query with the last one."""
    torch.manual_seed(2)
    B, H, L, D, s, w = 1, 2, 25, 8, 2, 4
    q, k, v = (torch.randn(B, H, L, D, dtype=torch.float64) for _ in range(3))
    cache = SinkKVCache(s, w)
    for t in range(L):
        kc, vc = cache.append(k[:, :, t : t + 1], v[:, :, t : t + 1])
        n = kc.shape[2]
        out_t = attend(
            apply_rope(q[:, :, t : t + 1], torch.tensor([n - 1])),
            apply_rope(kc, cache.positions()),
            vc,
            backend="reference",
        ).output
        # The formula: kept original indices, each at its in-cache position p = 0..n-1.
        kept = (
            list(range(min(s, t + 1))) + list(range(max(s, t + 1 - w), t + 1))
            if t + 1 > s + w
            else list(range(t + 1))
        )
        assert len(kept) == n
        qi = apply_rope(q[:, :, t : t + 1], torch.tensor([n - 1]))[..., 0, :]  # (B, H, D)
        e = torch.stack(
            [
                (qi * apply_rope(k[:, :, j : j + 1], torch.tensor([p]))[..., 0, :]).sum(-1)
                / math.sqrt(D)
                for p, j in enumerate(kept)
            ],
            -1,
        )
        a = torch.softmax(e, -1)
        ref = sum(a[..., p, None] * v[:, :, j] for p, j in enumerate(kept))
        assert_close(out_t[..., 0, :], ref, **TOL[torch.float64])


def test_cache_memory_is_bounded_and_chunked_append():
    """A chunk gets the sinks, the window - 1 tokens before it and itself; the cache keeps the
    sinks and the last window tokens."""
    cache = SinkKVCache(2, 3)
    k = torch.arange(14.0).view(1, 1, 14, 1)
    kc, _ = cache.append(k[:, :, :4], k[:, :, :4])
    assert kc.flatten().tolist() == [0, 1, 2, 3]
    kc, vc = cache.append(k[:, :, 4:10], k[:, :, 4:10])
    assert kc.flatten().tolist() == vc.flatten().tolist() == list(range(10))
    assert cache.keys.flatten().tolist() == [0, 1, 7, 8, 9]
    assert cache.length == cache.capacity == 5
    kc, _ = cache.append(k[:, :, 10:13], k[:, :, 10:13])
    assert kc.flatten().tolist() == [0, 1, 8, 9, 10, 11, 12]
    assert cache.original_positions().tolist() == [0, 1, 10, 11, 12]


@pytest.mark.parametrize(("s", "w"), [(3, 5), (0, 4), (2, 1)])
def test_chunked_streaming_equals_the_mask_on_the_full_stream(s, w):
    """Chunks of several tokens attend to what ``append`` returns with the same ``sink_window``
    mask: every row equals the full stream's (issue 11: the old cache evicted keys earlier
    queries of the chunk still needed, and 9 of 10 rows differed)."""
    torch.manual_seed(3)
    B, H, L, D = 2, 2, 40, 8
    q, k, v = (torch.randn(B, H, L, D, dtype=torch.float64) for _ in range(3))
    full = attend(q, k, v, mask_mod=sink_window(s, w), backend="reference").output
    cache, t = SinkKVCache(s, w), 0
    for n in (1, 4, 10, 2, 7, 1, 9, 6):
        kc, vc = cache.append(k[:, :, t : t + n], v[:, :, t : t + n])
        assert kc.shape[2] <= s + w - 1 + n
        out = attend(q[:, :, t : t + n], kc, vc, mask_mod=sink_window(s, w), backend="reference")
        assert_close(out.output, full[:, :, t : t + n], **TOL[torch.float64])
        assert cache.length <= cache.capacity
        t += n
    assert t == L


def test_errors():
    with pytest.raises(ValueError, match="window must be >= 1"):
        sink_window(2, 0)
    with pytest.raises(ValueError, match="num_sinks must be >= 0"):
        SinkKVCache(-1, 4)
    cache = SinkKVCache(1, 2)
    with pytest.raises(ValueError, match=r"k must have shape \(B, Hkv, n, D\)"):
        cache.append(torch.zeros(2, 3), torch.zeros(2, 3))
    cache.append(torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4))
    with pytest.raises(ValueError, match="the cache holds"):
        cache.append(torch.zeros(1, 3, 1, 4), torch.zeros(1, 3, 1, 4))
    with pytest.raises(ValueError, match=r"v has shape \(1, 2, 1, 5\), the cache holds"):
        cache.append(torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 5))
    with pytest.raises(TypeError, match="window must be an int"):
        SinkKVCache(1, 2.0)
