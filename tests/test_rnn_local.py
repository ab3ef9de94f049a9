"""Luong local attention (local-m, local-p) and the location score vs float64 formulas.

Luong, Pham & Manning 2015, "Effective Approaches to Attention-based Neural Machine
Translation" (arXiv:1508.04025), §3.1–3.2:

* Eq. (7)  a_t(s) = align(h_t, h̄_s) = exp score(h_t, h̄_s) / Σ_s' exp score(h_t, h̄_s')
* Eq. (8)  location: a_t = softmax(W_a h_t)
* Eq. (9)  p_t = S · sigmoid(v_pᵀ tanh(W_p h_t)),  p_t ∈ [0, S]
* Eq. (10) a_t(s) = align(h_t, h̄_s) exp(−(s − p_t)² / (2σ²)),  σ = D/2,
  s an integer in the window [p_t − D, p_t + D]; local-m sets p_t = t.

The references below loop over source positions one by one in float64, counting positions
from 1 as the paper does; they share no code with the module.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from explore_attention.attention.rnn import (
    LuongAttention,
    LuongLocalAttention,
    LuongLocationAttention,
)

F64 = {"atol": 1e-12, "rtol": 1e-9}


def general_score(W, ht, hs_bar):
    """h_tᵀ W_a h̄_s for one pair, float64."""
    return float(ht @ W @ hs_bar)


def local_reference(mod, ht, hs, lengths, step=None):
    """Eqs. 7, 9, 10 with explicit loops. Returns (context (B, Dk), weights (B, L), p (B,))."""
    W = mod.score.weight.detach().double()
    B, L, Dk = hs.shape
    D = mod.window // 2
    sigma = D / 2
    ctx = torch.zeros(B, Dk, dtype=torch.float64)
    wts = torch.zeros(B, L, dtype=torch.float64)
    ps = []
    for b in range(B):
        S = int(lengths[b])
        if mod.alignment == "predictive":
            Wp = mod.position[0].weight.detach().double()  # (p_dim, Dq)
            vp = mod.position[2].weight.detach().double()[0]  # (p_dim,)
            z = float(vp @ torch.tanh(Wp @ ht[b]))
            p = S * (1.0 / (1.0 + math.exp(-z)))  # Eq. 9
        else:
            p = float(step + 1)  # local-m: p_t = t, counted from 1
        ps.append(p)
        window = [s for s in range(1, S + 1) if abs(s - p) <= D]  # s = 1..S
        if not window:
            continue
        e = {s: general_score(W, ht[b], hs[b, s - 1]) for s in window}
        m = max(e.values())
        z = sum(math.exp(v - m) for v in e.values())
        for s in window:
            a = math.exp(e[s] - m) / z  # align(h_t, h̄_s), Eq. 7 over the window
            if mod.alignment == "predictive":
                a *= math.exp(-((s - p) ** 2) / (2 * sigma**2))  # Eq. 10
            wts[b, s - 1] = a
            ctx[b] += a * hs[b, s - 1]
    return ctx, wts, torch.tensor(ps, dtype=torch.float64)


def _inputs(B=3, L=9, Dq=5, Dk=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    ht = torch.randn(B, Dq, generator=g, dtype=torch.float64)
    hs = torch.randn(B, L, Dk, generator=g, dtype=torch.float64)
    return ht, hs


@pytest.mark.parametrize("window", [3, 5, 8])
def test_local_p_matches_eqs_9_and_10(window):
    torch.manual_seed(1)
    mod = LuongLocalAttention(5, 7, "general", window=window, alignment="predictive").double()
    with torch.no_grad():  # spread p_t over the sentence, not all near S/2
        mod.position[2].weight.mul_(6.0)
    ht, hs = _inputs()
    res = mod(ht, hs)
    ctx, w = res.output, res.weights
    ref_ctx, ref_w, ref_p = local_reference(mod, ht, hs, [9, 9, 9])
    assert_close(w, ref_w, **F64)
    assert_close(ctx, ref_ctx, **F64)
    assert_close(mod.aligned_position(ht, torch.tensor([9, 9, 9])), ref_p, **F64)
    # the Gaussian is applied after the softmax: local-p weights sum to less than 1
    assert bool((w.sum(-1) < 1).all())
    # nothing outside |s − p_t| <= D
    s = torch.arange(1, 10, dtype=torch.float64)
    outside = (s[None] - ref_p[:, None]).abs() > window // 2
    assert bool((w[outside] == 0).all())


def test_local_p_with_padding_uses_true_length_and_ignores_pad():
    torch.manual_seed(2)
    mod = LuongLocalAttention(5, 7, "general", window=5, alignment="predictive").double()
    ht, hs = _inputs(L=10)
    lengths = torch.tensor([10, 6, 3])
    pad = torch.arange(10)[None] >= lengths[:, None]  # True = padding
    hs = hs.masked_fill(pad[..., None], float("nan"))  # padding may hold anything
    res = mod(ht, hs, key_padding_mask=pad)
    ctx, w = res.output, res.weights
    ref_ctx, ref_w, _ = local_reference(mod, ht, torch.nan_to_num(hs), lengths)
    assert_close(w, ref_w, **F64)
    assert_close(ctx, ref_ctx, **F64)
    assert bool((w[pad] == 0).all()) and bool(torch.isfinite(ctx).all())


@pytest.mark.parametrize("step", [0, 4, 8, 12])
def test_local_m_is_eq_7_over_the_window(step):
    torch.manual_seed(3)
    mod = LuongLocalAttention(5, 7, "general", window=5, alignment="monotonic").double()
    ht, hs = _inputs()
    res = mod(ht, hs, step=step)
    ctx, w = res.output, res.weights
    ref_ctx, ref_w, _ = local_reference(mod, ht, hs, [9, 9, 9], step=step)
    assert_close(w, ref_w, **F64)
    assert_close(ctx, ref_ctx, **F64)
    inside = [s for s in range(1, 10) if abs(s - (step + 1)) <= 2]
    expected_sum = 1.0 if inside else 0.0  # a window past the sentence's end sees nothing
    assert_close(w.sum(-1), torch.full((3,), expected_sum, dtype=torch.float64), **F64)


def test_local_m_with_a_window_over_everything_is_global_attention():
    torch.manual_seed(4)
    local = LuongLocalAttention(5, 7, "general", window=19, alignment="monotonic").double()
    glob = LuongAttention(5, 7, "general").double()
    glob.load_state_dict(local.state_dict())
    ht, hs = _inputs()
    for step in (0, 4, 8):
        a, b = local(ht, hs, step=step), glob(ht, hs)
        assert_close(a.output, b.output, **F64)
        assert_close(a.weights, b.weights, **F64)


def test_local_p_position_is_trained_through_the_gaussian():
    """Eq. 10 makes p_t differentiable: gradient descent moves it to where the answer is."""
    torch.manual_seed(5)
    L, target = 12, 8  # the context should become h̄_8 (1-based); p_t starts near S/2 = 6
    mod = LuongLocalAttention(4, 4, "dot", window=7, alignment="predictive")
    hs = torch.zeros(1, L, 4)
    hs[0, target - 1, 0] = 1.0  # one source state carries the signal
    ht = torch.ones(1, 4)
    lengths = torch.tensor([L])
    opt = torch.optim.Adam(mod.parameters(), lr=0.05)
    before = float(mod.aligned_position(ht, lengths).detach())
    for _ in range(150):
        loss = -mod(ht, hs).output[0, 0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = float(mod.aligned_position(ht, lengths).detach())
    assert abs(before - target) > 1.0, before
    assert abs(after - target) < 0.5, after


def test_location_score_matches_eq_8():
    torch.manual_seed(6)
    mod = LuongLocationAttention(5, max_len=12).double()
    ht, hs = _inputs(L=9)
    pad = torch.zeros(3, 9, dtype=torch.bool)
    pad[1, 6:] = True
    res = mod(ht, hs, key_padding_mask=pad)
    ctx, w = res.output, res.weights
    Wa = mod.W_a.weight.detach().double()  # (max_len, Dq)
    for b in range(3):
        n = 9 - int(pad[b].sum())
        e = [float(Wa[s] @ ht[b]) for s in range(n)]
        z = sum(math.exp(x) for x in e)
        ref = torch.zeros(9, dtype=torch.float64)
        ref[:n] = torch.tensor([math.exp(x) / z for x in e], dtype=torch.float64)
        assert_close(w[b], ref, **F64)
        assert_close(ctx[b], ref @ hs[b], **F64)


def test_bad_arguments_raise_naming_them():
    with pytest.raises(ValueError, match="window"):
        LuongLocalAttention(4, 4, "dot", window=1, alignment="predictive")
    with pytest.raises(TypeError, match="window"):
        LuongLocalAttention(4, 4, "dot", window=2.5)
    with pytest.raises(ValueError, match="alignment"):
        LuongLocalAttention(4, 4, "dot", window=3, alignment="gaussian")
    with pytest.raises(ValueError, match="position_dim"):
        LuongLocalAttention(4, 4, "dot", window=3, alignment="monotonic", position_dim=3)
    mod = LuongLocalAttention(4, 4, "dot", window=3, alignment="monotonic")
    with pytest.raises(ValueError, match="step"):
        mod(torch.randn(2, 4), torch.randn(2, 5, 4))
    with pytest.raises(TypeError, match="key_padding_mask"):
        mod(torch.randn(2, 4), torch.randn(2, 5, 4), torch.zeros(2, 5), step=0)
    with pytest.raises(ValueError, match="max_len"):
        LuongLocationAttention(4, max_len=3)(torch.randn(2, 4), torch.randn(2, 5, 4))
