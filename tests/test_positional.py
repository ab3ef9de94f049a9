"""Positions: RoPE vs Hugging Face Llama, T5 buckets vs Hugging Face T5, ALiBi slopes vs the paper
(and BLOOM's implementation), sinusoidal vs Vaswani et al.'s formula, Shaw et al. vs Eqs. 3–5."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TOL
from torch.testing import assert_close
from transformers import LlamaConfig
from transformers.models.bloom.modeling_bloom import build_alibi_tensor
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
from transformers.models.t5.configuration_t5 import T5Config
from transformers.models.t5.modeling_t5 import T5Attention

from explore_attention.attention import attend, masks
from explore_attention.attention.positional import (
    LearnedPositions,
    ShawRelativePosition,
    T5RelativeBias,
    alibi,
    alibi_slopes,
    apply_rope,
    rope_cos_sin,
    sinusoidal_positions,
    t5_relative_position_bucket,
)

# --------------------------------------------------------------------------- RoPE


def hf_rotary(head_dim: int, base: float = 10000.0) -> LlamaRotaryEmbedding:
    cfg = LlamaConfig(
        hidden_size=4 * head_dim,
        num_attention_heads=4,
        num_hidden_layers=1,
        intermediate_size=32,
        vocab_size=50,
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": base},
    )
    return LlamaRotaryEmbedding(cfg)


@pytest.mark.parametrize("head_dim,base", [(16, 10000.0), (64, 500000.0), (2, 10000.0)])
def test_rope_matches_hugging_face_llama(head_dim, base):
    """Hugging Face's whole pipeline (its float32 angles) vs ours, float32, positions < 128."""
    torch.manual_seed(0)
    B, H, L = 2, 4, 96
    q, k = torch.randn(B, H, L, head_dim), torch.randn(B, 2, L, head_dim)
    pos = torch.arange(L)[None].expand(B, L)
    cos, sin = hf_rotary(head_dim, base)(q, pos)
    q_hf, k_hf = apply_rotary_pos_emb(q, k, cos, sin)
    assert_close(apply_rope(q, base=base), q_hf, **TOL[torch.float32])
    assert_close(apply_rope(k, pos, base=base), k_hf, **TOL[torch.float32])


def test_rope_rotation_layout_matches_hugging_face_float64():
    """Same angles (ours, float64) through HF's rotate-half: identical to float64 precision,
    including per-batch positions far from 0."""
    torch.manual_seed(1)
    B, H, L, D = 2, 3, 17, 32
    x = torch.randn(B, H, L, D, dtype=torch.float64)
    pos = torch.randint(0, 16384, (B, L))
    cos, sin = rope_cos_sin(pos, D, dtype=torch.float64)  # (B, L, D)
    x_hf, _ = apply_rotary_pos_emb(x, x, cos, sin)
    assert_close(apply_rope(x, pos), x_hf, **TOL[torch.float64])


def rope_paper64(x, positions, base=10000.0):
    """Su et al. 2021 Eq. 34 with Llama's half-split pairing, written per pair in float64."""
    D = x.shape[-1]
    out = torch.empty_like(x, dtype=torch.float64)
    for i in range(D // 2):
        theta = positions.double() * base ** (-2 * i / D)
        a, b = x[..., i].double(), x[..., i + D // 2].double()
        out[..., i] = a * torch.cos(theta) - b * torch.sin(theta)
        out[..., i + D // 2] = a * torch.sin(theta) + b * torch.cos(theta)
    return out


def test_rope_matches_pairwise_rotation_formula():
    torch.manual_seed(2)
    x = torch.randn(1, 2, 9, 8, dtype=torch.float64)
    pos = torch.tensor([0, 1, 2, 5, 100, 1000, 4096, 9999, 16383])
    assert_close(apply_rope(x, pos), rope_paper64(x, pos), **TOL[torch.float64])


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(3)
    D = 16
    q, k = (
        torch.randn(1, 1, 1, D, dtype=torch.float64),
        torch.randn(1, 1, 1, D, dtype=torch.float64),
    )

    def score(i, j):
        qi = apply_rope(q, torch.tensor([i]))
        kj = apply_rope(k, torch.tensor([j]))
        return (qi * kj).sum()

    for i, j in [(5, 2), (3, 3), (0, 7), (100, 40)]:
        for shift in (1, 17, 1000, 12345):
            assert_close(score(i + shift, j + shift), score(i, j), **TOL[torch.float64])
    # And the full score matrix of a sequence is a Toeplitz matrix: constant along diagonals.
    x = torch.randn(1, 1, 1, D, dtype=torch.float64).expand(1, 1, 12, D)
    s = apply_rope(x) @ apply_rope(x).transpose(-2, -1)  # (1, 1, 12, 12)
    for d in range(-11, 12):
        diag = torch.diagonal(s[0, 0], offset=d)
        assert_close(diag, diag[:1].expand_as(diag), **TOL[torch.float64])


def test_rope_long_positions_float32_vs_float64_and_norm():
    """At positions 4k–16k float32 RoPE stays within float32 tolerance of float64 and keeps
    norms (a rotation); float32 *angles* would be off by ~1e-3 rad there."""
    torch.manual_seed(4)
    x64 = torch.randn(1, 2, 64, 64, dtype=torch.float64)
    pos = torch.linspace(4096, 16384, 64).long()
    y32 = apply_rope(x64.float(), pos)
    y64 = apply_rope(x64, pos)
    assert y32.dtype == torch.float32
    assert_close(y32, y64.float(), **TOL[torch.float32])
    assert_close(y32.norm(dim=-1), x64.float().norm(dim=-1), **TOL[torch.float32])
    assert_close(y64.norm(dim=-1), x64.norm(dim=-1), **TOL[torch.float64])
    # Low precision in, rotated in float32, cast back: within the bfloat16 tolerance.
    xbf = x64.bfloat16()
    ybf = apply_rope(xbf, pos)
    assert ybf.dtype == torch.bfloat16
    assert_close(ybf.double(), apply_rope(xbf.double(), pos), atol=2e-2, rtol=2e-2)


def test_rope_gradcheck_and_non_contiguous():
    torch.manual_seed(9)
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    pos = torch.tensor([3, 0, 7, 100, 2])
    assert torch.autograd.gradcheck(lambda t: apply_rope(t, pos), (x,))
    # A transposed (non-contiguous) view gives the same result as its contiguous copy.
    y = torch.randn(1, 5, 2, 6).transpose(1, 2)  # (B, H, L, D) view, not contiguous
    assert not y.is_contiguous()
    assert_close(apply_rope(y, pos), apply_rope(y.contiguous(), pos), **TOL[torch.float32])


def test_rope_errors():
    with pytest.raises(ValueError, match="even; got D=5"):
        apply_rope(torch.randn(1, 1, 3, 5))
    with pytest.raises(ValueError, match=r"\(B, H, L, D\)"):
        apply_rope(torch.randn(3, 4))
    with pytest.raises(ValueError, match="positions must have shape"):
        apply_rope(torch.randn(1, 1, 3, 4), torch.arange(4))
    with pytest.raises(TypeError, match="floating-point"):
        apply_rope(torch.ones(1, 1, 3, 4, dtype=torch.long))


# --------------------------------------------------------------------------- sinusoidal, learned


def test_sinusoidal_matches_vaswani_formula():
    L, d = 50, 12
    pe = sinusoidal_positions(L, d, dtype=torch.float64)
    ref = torch.empty(L, d, dtype=torch.float64)
    for pos in range(L):
        for i in range(d // 2):
            ref[pos, 2 * i] = math.sin(pos / 10000 ** (2 * i / d))
            ref[pos, 2 * i + 1] = math.cos(pos / 10000 ** (2 * i / d))
    assert_close(pe, ref, **TOL[torch.float64])
    assert_close(sinusoidal_positions(L, d), ref.float(), **TOL[torch.float32])
    with pytest.raises(ValueError, match="dim must be even"):
        sinusoidal_positions(4, 7)


def test_learned_positions_offset_and_errors():
    torch.manual_seed(5)
    mod = LearnedPositions(10, 4)
    x = torch.randn(2, 6, 4)
    full = mod(x)
    assert_close(full - x, mod.embedding.weight[:6].expand(2, 6, 4))
    # Decoding the last 2 tokens with offset=4 adds the same embeddings as the full pass.
    assert_close(mod(x[:, 4:], offset=4), full[:, 4:])
    full.sum().backward()
    assert (
        mod.embedding.weight.grad[:6].abs().sum() > 0
        and mod.embedding.weight.grad[6:].abs().sum() == 0
    )
    with pytest.raises(ValueError, match="exceed max_length=10"):
        mod(x, offset=5)
    with pytest.raises(ValueError, match=r"\(B, L, 4\)"):
        mod(torch.randn(2, 3, 5))


# --------------------------------------------------------------------------- ALiBi


def test_alibi_slopes_paper_values():
    # Press et al. 2021 §3: 8 heads → 1/2, 1/4, ..., 1/256; 16 heads start at 2^-0.5, ratio 2^-0.5.
    assert_close(
        alibi_slopes(8, dtype=torch.float64),
        torch.tensor([2.0**-h for h in range(1, 9)], dtype=torch.float64),
        **TOL[torch.float64],
    )
    assert_close(
        alibi_slopes(16, dtype=torch.float64),
        torch.tensor([2 ** (-0.5 * h) for h in range(1, 17)], dtype=torch.float64),
        **TOL[torch.float64],
    )
    # Non-power of two (6 heads): the 4-head slopes, then every other 8-head slope.
    expect6 = [2 ** (-8 * h / 4) for h in range(1, 5)] + [2 ** (-8 * h / 8) for h in (1, 3)]
    assert_close(
        alibi_slopes(6, dtype=torch.float64),
        torch.tensor(expect6, dtype=torch.float64),
        **TOL[torch.float64],
    )


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7, 8, 12, 16, 20, 24])
def test_alibi_slopes_match_bloom(n):
    """BLOOM's implementation (Hugging Face) builds slope·position; position 1 gives the slopes."""
    hf = build_alibi_tensor(torch.ones(1, 2), n, torch.float32)[:, 0, 1]  # (n,)
    assert_close(alibi_slopes(n), hf, **TOL[torch.float32])


def test_alibi_score_mod_matches_formula_and_bloom():
    torch.manual_seed(6)
    B, H, L, D = 2, 6, 11, 8
    q, k, v = (torch.randn(B, H, L, D, dtype=torch.float64) for _ in range(3))
    res = attend(q, k, v, mask_mod=masks.causal, score_mod=alibi(H), backend="reference")
    m = alibi_slopes(H, dtype=torch.float64)
    i, j = torch.arange(L)[:, None], torch.arange(L)[None, :]
    s = q @ k.transpose(-2, -1) / math.sqrt(D) - m[:, None, None] * (i - j).abs()
    s = s.masked_fill(j > i, float("-inf"))
    assert_close(res.weights, torch.softmax(s, -1), **TOL[torch.float64])
    # BLOOM adds m·j instead of -m·(i-j): equal after softmax under the causal mask.
    bloom = build_alibi_tensor(torch.ones(B, L), H, torch.float64).view(B, H, 1, L)
    s_b = (q @ k.transpose(-2, -1) / math.sqrt(D) + bloom).masked_fill(j > i, float("-inf"))
    assert_close(res.output, torch.softmax(s_b, -1) @ v, **TOL[torch.float64])
    with pytest.raises(ValueError, match=r"built for 4 heads, attention has H=6"):
        attend(q, k, v, score_mod=alibi(4))


# --------------------------------------------------------------------------- T5


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (16, 64), (8, 20), (4, 8)])
def test_t5_buckets_match_hugging_face(bidirectional, num_buckets, max_distance):
    rel = torch.arange(-600, 601)[None, :] + torch.zeros(3, 1, dtype=torch.long)
    ours = t5_relative_position_bucket(
        rel, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
    )
    hf = T5Attention._relative_position_bucket(
        rel, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
    )
    assert torch.equal(ours, hf)


@pytest.mark.parametrize("is_decoder", [False, True])
def test_t5_bias_matches_hugging_face_compute_bias(is_decoder):
    torch.manual_seed(7)
    cfg = T5Config(
        d_model=32,
        d_kv=8,
        num_heads=4,
        relative_attention_num_buckets=16,
        relative_attention_max_distance=40,
        is_decoder=is_decoder,
    )
    hf = T5Attention(cfg, has_relative_attention_bias=True)
    ours = T5RelativeBias(4, bidirectional=not is_decoder, num_buckets=16, max_distance=40)
    with torch.no_grad():
        ours.embedding.weight.copy_(hf.relative_attention_bias.weight)
    assert_close(ours.bias(50), hf.compute_bias(50, 50), **TOL[torch.float32])
    # A KV-cached step: 3 new queries after 47 cached tokens.
    assert_close(
        ours.bias(3, 50), hf.compute_bias(3, 50, past_seen_tokens=47), **TOL[torch.float32]
    )
    # As a score_mod inside attend (T5 does not scale by 1/sqrt(d)).
    q, k, v = torch.randn(2, 4, 3, 8), torch.randn(2, 4, 50, 8), torch.randn(2, 4, 50, 8)
    res = attend(q, k, v, score_mod=ours, scale=1.0, backend="reference")
    ref = torch.softmax(q @ k.transpose(-2, -1) + hf.compute_bias(3, 50, past_seen_tokens=47), -1)
    assert_close(res.weights, ref, **TOL[torch.float32])


def test_t5_errors():
    with pytest.raises(TypeError, match="integer"):
        t5_relative_position_bucket(torch.zeros(3))
    with pytest.raises(ValueError, match="num_buckets must be >= 2"):
        t5_relative_position_bucket(torch.zeros(3, dtype=torch.long), num_buckets=1)
    with pytest.raises(ValueError, match="at least 2 buckets per direction"):
        t5_relative_position_bucket(torch.zeros(3, dtype=torch.long), num_buckets=2)


# --------------------------------------------------------------------------- Shaw et al.


def shaw64(mod, q, k, v, mask=None):
    """Shaw et al. 2018 Eqs. 3–5 with explicit loops over (i, j), float64."""
    B, H, Lq, D = q.shape
    Lk = k.shape[2]
    K = mod.max_distance
    wk, wv = mod.rel_k.weight.double(), mod.rel_v.weight.double()
    out = torch.zeros(B, H, Lq, v.shape[-1], dtype=torch.float64)
    w = torch.zeros(B, H, Lq, Lk, dtype=torch.float64)
    for i in range(Lq):
        pi = i + Lk - Lq
        keep = [j for j in range(Lk) if mask is None or bool(mask[i, j])]
        a = {j: max(-K, min(K, j - pi)) + K for j in keep}
        e = torch.stack(
            [(q[..., i, :] * (k[..., j, :] + wk[a[j]])).sum(-1) / math.sqrt(D) for j in keep], -1
        )
        alpha = torch.softmax(e, -1)  # (B, H, |keep|)
        for n, j in enumerate(keep):
            w[..., i, j] = alpha[..., n]
            out[..., i, :] += alpha[..., n, None] * (v[..., j, :] + wv[a[j]])
    return out, w


@pytest.mark.parametrize("Lq,Lk,causal", [(7, 7, False), (7, 7, True), (3, 9, True)])
def test_shaw_matches_paper_equations(Lq, Lk, causal):
    torch.manual_seed(8)
    mod = ShawRelativePosition(6, 2).double()
    q = torch.randn(2, 3, Lq, 6, dtype=torch.float64, requires_grad=True)
    k, v = (torch.randn(2, 3, Lk, 6, dtype=torch.float64, requires_grad=True) for _ in range(2))
    res = mod(q, k, v, mask_mod=masks.causal if causal else None)
    mask = masks.materialize(masks.causal, Lq, Lk)[0, 0] if causal else None
    out_ref, w_ref = shaw64(mod, q, k, v, mask)
    assert_close(res.output, out_ref, **TOL[torch.float64])
    assert_close(res.weights, w_ref, **TOL[torch.float64])
    g = torch.randn_like(out_ref)
    params = [q, k, v, mod.rel_k.weight, mod.rel_v.weight]
    for a, b in zip(
        torch.autograd.grad(res.output, params, g),
        torch.autograd.grad(out_ref, params, g),
        strict=True,
    ):
        assert_close(a, b, **TOL[torch.float64])


def test_shaw_errors():
    mod = ShawRelativePosition(4, 2)
    with pytest.raises(ValueError, match="head dim must be 4"):
        mod(torch.randn(1, 1, 3, 5), torch.randn(1, 1, 3, 5), torch.randn(1, 1, 3, 5))
    with pytest.raises(ValueError, match="max_distance must be >= 0"):
        ShawRelativePosition(4, -1)
