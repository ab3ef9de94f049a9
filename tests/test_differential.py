"""Differential attention (Ye et al. 2024, arXiv:2410.05258) vs a float64 formula from Eqs. 1–3."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TOL
from torch.testing import assert_close

from explore_attention.attention import masks
from explore_attention.attention.differential import (
    DifferentialAttention,
    differential_attention,
    lambda_init,
)


def test_lambda_init_schedule():
    assert lambda_init(1) == pytest.approx(0.2)
    for layer in (2, 5, 12):
        assert lambda_init(layer) == pytest.approx(0.8 - 0.6 * math.exp(-0.3 * (layer - 1)))
    with pytest.raises(ValueError, match="layer_index must be >= 1"):
        lambda_init(0)


def diff_formula(q1, k1, q2, k2, v, lam, causal=False):
    d = q1.shape[-1]
    s1, s2 = q1 @ k1.transpose(-2, -1) / math.sqrt(d), q2 @ k2.transpose(-2, -1) / math.sqrt(d)
    if causal:
        L = s1.shape[-1]
        future = torch.ones(L, L, dtype=torch.bool).triu(1)
        s1, s2 = s1.masked_fill(future, -math.inf), s2.masked_fill(future, -math.inf)
    w = torch.softmax(s1, -1) - lam * torch.softmax(s2, -1)
    return w @ v, w


@pytest.mark.parametrize("causal", [False, True])
def test_function_matches_formula_forward_backward(causal):
    torch.manual_seed(0)
    B, H, L, d = 2, 3, 9, 4
    ts = [torch.randn(B, H, L, d, dtype=torch.float64, requires_grad=True) for _ in range(4)]
    v = torch.randn(B, H, L, 2 * d, dtype=torch.float64, requires_grad=True)
    lam = torch.tensor(0.37, dtype=torch.float64, requires_grad=True)
    res = differential_attention(*ts, v, lam, mask_mod=masks.causal if causal else None)
    out_ref, w_ref = diff_formula(*ts, v, lam, causal)
    assert_close(res.output, out_ref, **TOL[torch.float64])
    assert_close(res.weights, w_ref, **TOL[torch.float64])
    assert_close(res.weights @ v, res.output, **TOL[torch.float64])
    assert_close(
        res.weights.sum(-1),
        torch.full((B, H, L), 1 - 0.37, dtype=torch.float64),
        **TOL[torch.float64],
    )
    g = torch.randn_like(out_ref)
    inputs = [*ts, v, lam]
    for a, b in zip(
        torch.autograd.grad(res.output, inputs, g),
        torch.autograd.grad(out_ref, inputs, g),
        strict=True,
    ):
        assert_close(a, b, **TOL[torch.float64])
    # Without weights the fast path gives the same output.
    fast = differential_attention(
        *[t.float() for t in ts],
        v.float(),
        0.37,
        mask_mod=masks.causal if causal else None,
        return_weights=False,
    )
    assert fast.weights is None
    assert_close(fast.output, out_ref.float(), **TOL[torch.float32])


def module_formula(mod, x, causal):
    """Eqs. 1–3 of the paper with the module's parameters, float64, head by head."""
    H, d = mod.num_heads, mod.head_dim
    Wq, Wk, Wv, Wo = (p.weight.double() for p in (mod.q_proj, mod.k_proj, mod.v_proj, mod.out_proj))
    lam = (
        torch.exp(mod.lambda_q1.double() @ mod.lambda_k1.double())
        - torch.exp(mod.lambda_q2.double() @ mod.lambda_k2.double())
        + mod.lambda_init
    )
    Q, K, V = x @ Wq.T, x @ Wk.T, x @ Wv.T
    heads = []
    for h in range(H):
        q1, q2 = Q[..., 2 * h * d : (2 * h + 1) * d], Q[..., (2 * h + 1) * d : (2 * h + 2) * d]
        k1, k2 = K[..., 2 * h * d : (2 * h + 1) * d], K[..., (2 * h + 1) * d : (2 * h + 2) * d]
        vh = V[..., h * 2 * d : (h + 1) * 2 * d]
        o, _ = diff_formula(q1, k1, q2, k2, vh, lam, causal)  # (B, L, 2d)
        rms = torch.sqrt((o**2).mean(-1, keepdim=True) + 1e-5)
        heads.append((1 - mod.lambda_init) * o / rms * mod.norm.weight.double())
    return torch.cat(heads, -1) @ Wo.T


@pytest.mark.parametrize("causal,layer", [(False, 1), (True, 4)])
def test_module_matches_paper(causal, layer):
    torch.manual_seed(1)
    mod = DifferentialAttention(24, 3, layer_index=layer).double()
    x = torch.randn(2, 7, 24, dtype=torch.float64)
    res = mod(x, masks.causal if causal else None)
    out, w = res.output, res.weights
    assert out.shape == (2, 7, 24) and w.shape == (2, 3, 7, 7)
    ref = module_formula(mod, x, causal)
    assert_close(out, ref, **TOL[torch.float64])
    g = torch.randn_like(out)
    params = list(mod.parameters())
    for a, b in zip(
        torch.autograd.grad(out, params, g), torch.autograd.grad(ref, params, g), strict=True
    ):
        assert_close(a, b, **TOL[torch.float64])


def test_errors():
    with pytest.raises(ValueError, match="divisible by 2 \\* num_heads"):
        DifferentialAttention(10, 3)
    mod = DifferentialAttention(8, 2)
    with pytest.raises(ValueError, match="embed_dim=8"):
        mod(torch.randn(1, 3, 7))
    q = torch.randn(1, 1, 3, 4)
    with pytest.raises(ValueError, match="the two halves must match"):
        differential_attention(q, q, torch.randn(1, 1, 2, 4), q, q, 0.5)
    with pytest.raises(TypeError, match="lam must be"):
        differential_attention(q, q, q, q, q, "0.5")


def test_lam_shape_is_checked_and_per_head_lam_is_applied_per_head():
    """Issue 11: ``lam`` of shape (H,) broadcast against the value dimension, silently. It must
    broadcast to (B, H, 1, 1); one λ per head then weights each head's second map."""
    g = torch.Generator().manual_seed(0)
    q1, k1, q2, k2 = (torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64) for _ in range(4))
    v = torch.randn(2, 3, 5, 3, generator=g, dtype=torch.float64)  # Dv = H = 3
    lam = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    for bad in (lam, lam.view(3, 1), torch.zeros(2, 3, 5, 1), torch.zeros(1, 1, 1, 1, 1)):
        with pytest.raises(
            ValueError, match=r"lam must be a scalar or broadcastable to \(B, H, 1, 1\)"
        ):
            differential_attention(q1, k1, q2, k2, v, bad)
    res = differential_attention(q1, k1, q2, k2, v, lam.view(1, 3, 1, 1))
    for h in range(3):
        out, w = diff_formula(q1[:, h], k1[:, h], q2[:, h], k2[:, h], v[:, h], float(lam[h]))
        assert_close(res.output[:, h], out, **TOL[torch.float64])
        assert_close(res.weights[:, h], w, **TOL[torch.float64])
