"""Bahdanau and Luong attention vs float64 formulas written from the papers' equations.

Bahdanau et al. 2014 (arXiv:1409.0473) App. A.1.2: e_ij = v_aᵀ tanh(W_a s_{i-1} + U_a h_j),
α_ij = softmax_j(e_ij) (Eq. 6), c_i = Σ_j α_ij h_j (Eq. 5).
Luong et al. 2015 (arXiv:1508.04025) Eq. 7–8: a_t(s) = softmax_s score(h_t, h̄_s) with
dot / general / concat scores.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TOL
from torch.testing import assert_close

from explore_attention.attention.rnn import BahdanauAttention, LuongAttention


def run(mod, query, keys, keep=None, **kw):
    """``(context, weights)`` of ``mod``; ``keep`` (B, L) True = a real token, as the references
    take it; the module takes ``key_padding_mask = ~keep`` (True = padding)."""
    out = mod(query, keys, None if keep is None else ~keep, **kw)
    return out.output, out.weights


# --------------------------------------------------------------------------- the references


def paper_softmax_context(e: list[list[float]], keys, mask):
    """Eq. 6 / Eq. 7 and Eq. 5 written with explicit loops over source positions, float64."""
    B, L, Dk = keys.shape
    ctx_rows, w_rows = [], []
    for b in range(B):
        kept = [j for j in range(L) if mask is None or bool(mask[b, j])]
        wb = [torch.zeros((), dtype=torch.float64)] * L
        cb = torch.zeros(Dk, dtype=torch.float64)
        if kept:  # a sentence with no real token keeps zero context and zero weights
            m = max(e[b][j].detach() for j in kept)
            denom = sum(torch.exp(e[b][j] - m) for j in kept)
            for j in kept:
                wb[j] = torch.exp(e[b][j] - m) / denom
                cb = cb + wb[j] * keys[b, j]
        ctx_rows.append(cb)
        w_rows.append(torch.stack(wb))
    return torch.stack(ctx_rows), torch.stack(w_rows)


def bahdanau_reference(mod: BahdanauAttention, s, h, mask=None):
    """e_j = v_aᵀ tanh(W_a s + U_a h_j + b), with the module's parameters in float64."""
    Wa = mod.score.W.weight.double()  # (n', n)
    Ua = mod.score.U.weight.double()  # (n', 2n)
    ba = mod.score.U.bias.double()  # (n',)
    va = mod.score.v.weight.double()[0]  # (n',)
    s, h = s.double(), h.double()
    e = [
        [va @ torch.tanh(Wa @ s[b] + Ua @ h[b, j] + ba) for j in range(h.shape[1])]
        for b in range(h.shape[0])
    ]
    return paper_softmax_context(e, h, mask)


def luong_reference(mod: LuongAttention, ht, hs, mask=None):
    """Luong Eq. 8 for the module's score, float64."""
    ht, hs = ht.double(), hs.double()
    B, L, _ = hs.shape
    if mod.score_name == "dot":
        e = [[ht[b] @ hs[b, s] for s in range(L)] for b in range(B)]
    elif mod.score_name == "general":
        Wa = mod.score.weight.double()  # (Dq, Dk)
        e = [[ht[b] @ Wa @ hs[b, s] for s in range(L)] for b in range(B)]
    else:
        # W_a [h_t; h̄_s]: one matrix acting on the concatenation, plus the module's bias.
        Wa = torch.cat([mod.score.W.weight, mod.score.U.weight], dim=1).double()
        ba = mod.score.U.bias.double()
        va = mod.score.v.weight.double()[0]
        e = [
            [va @ torch.tanh(Wa @ torch.cat([ht[b], hs[b, s]]) + ba) for s in range(L)]
            for b in range(B)
        ]
    return paper_softmax_context(e, hs, mask)


def make_mask(lengths, L):
    return torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]  # (B, L), True = keep


MODULES = [
    ("bahdanau", lambda: BahdanauAttention(5, 6, 7), bahdanau_reference, 5, 6),
    ("luong_dot", lambda: LuongAttention(6, 6, "dot"), luong_reference, 6, 6),
    ("luong_general", lambda: LuongAttention(5, 6, "general"), luong_reference, 5, 6),
    ("luong_concat", lambda: LuongAttention(5, 6, "concat", hidden_dim=4), luong_reference, 5, 6),
]


# --------------------------------------------------------------------------- forward and backward


@pytest.mark.parametrize("name,build,ref,Dq,Dk", MODULES, ids=[m[0] for m in MODULES])
@pytest.mark.parametrize("masked", [False, True])
def test_forward_backward_float64(name, build, ref, Dq, Dk, masked):
    torch.manual_seed(0)
    mod = build().double()
    B, L = 3, 7
    s = torch.randn(B, Dq, dtype=torch.float64, requires_grad=True)
    h = torch.randn(B, L, Dk, dtype=torch.float64, requires_grad=True)
    mask = make_mask([7, 4, 1], L) if masked else None
    ctx, w = run(mod, s, h, mask)
    ctx_ref, w_ref = ref(mod, s, h, mask)
    assert ctx.shape == (B, Dk) and w.shape == (B, L)
    assert_close(ctx, ctx_ref, **TOL[torch.float64])
    assert_close(w, w_ref, **TOL[torch.float64])
    if masked:
        assert bool((w[~mask] == 0).all())
    assert_close(w.sum(-1), torch.ones(B, dtype=torch.float64), **TOL[torch.float64])

    # Backward: the same scalar through module and reference, gradients for inputs and params.
    g_ctx, g_w = torch.randn_like(ctx), torch.randn_like(w)
    params = [p for p in mod.parameters()]
    inputs = [s, h, *params]
    grads = torch.autograd.grad((ctx * g_ctx).sum() + (w * g_w).sum(), inputs)
    grads_ref = torch.autograd.grad((ctx_ref * g_ctx).sum() + (w_ref * g_w).sum(), inputs)
    for g, gr in zip(grads, grads_ref, strict=True):
        assert_close(g, gr, **TOL[torch.float64])


@pytest.mark.parametrize("name,build,ref,Dq,Dk", MODULES, ids=[m[0] for m in MODULES])
def test_float32_matches_float64_formula(name, build, ref, Dq, Dk):
    torch.manual_seed(1)
    mod = build()
    s, h = torch.randn(2, Dq), torch.randn(2, 9, Dk)
    mask = make_mask([9, 5], 9)
    ctx, w = run(mod, s, h, mask)
    ctx_ref, w_ref = ref(mod, s, h, mask)
    assert ctx.dtype == torch.float32
    assert_close(ctx, ctx_ref.float(), **TOL[torch.float32])
    assert_close(w, w_ref.float(), **TOL[torch.float32])


@pytest.mark.parametrize("name,build,ref,Dq,Dk", MODULES, ids=[m[0] for m in MODULES])
def test_gradcheck(name, build, ref, Dq, Dk):
    torch.manual_seed(2)
    mod = build().double()
    s = torch.randn(2, Dq, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 4, Dk, dtype=torch.float64, requires_grad=True)
    mask = make_mask([4, 2], 4)
    assert torch.autograd.gradcheck(lambda a, b: run(mod, a, b, mask), (s, h))


# --------------------------------------------------------------------------- masks and edge cases


@pytest.mark.parametrize("name,build,ref,Dq,Dk", MODULES, ids=[m[0] for m in MODULES])
def test_fully_masked_row_gives_zeros_not_nan(name, build, ref, Dq, Dk):
    torch.manual_seed(3)
    mod = build()
    s = torch.randn(2, Dq, requires_grad=True)
    h = torch.randn(2, 5, Dk, requires_grad=True)
    mask = make_mask([5, 0], 5)
    ctx, w = run(mod, s, h, mask)
    assert_close(ctx[1], torch.zeros(Dk))
    assert_close(w[1], torch.zeros(5))
    (ctx.sum() + w.sum()).backward()
    assert torch.isfinite(s.grad).all() and torch.isfinite(h.grad).all()
    assert_close(h.grad[1], torch.zeros(5, Dk))


@pytest.mark.parametrize("bad", [float("nan"), 1e10])
def test_padding_content_cannot_leak(bad):
    """Padded annotations holding NaN or huge values change nothing (masks use where, not ×)."""
    torch.manual_seed(4)
    for mod in (
        BahdanauAttention(4, 4, 3),
        LuongAttention(4, 4, "dot"),
        LuongAttention(4, 4, "general"),
    ):
        s, h = torch.randn(2, 4), torch.randn(2, 6, 4)
        mask = make_mask([6, 3], 6)
        ctx, w = run(mod, s, h, mask)
        h2 = h.clone()
        h2[1, 3:] = bad
        ctx2, w2 = run(mod, s, h2, mask)
        assert_close(ctx2, ctx)
        assert_close(w2, w)


def test_single_position_and_equal_scores():
    mod = LuongAttention(3, 3, "dot")
    h = torch.randn(2, 1, 3)
    ctx, w = run(mod, torch.randn(2, 3), h)
    assert_close(w, torch.ones(2, 1))
    assert_close(ctx, h[:, 0])
    # A zero query scores every position 0: uniform weights, context = mean of the annotations.
    h = torch.randn(2, 5, 3)
    ctx, w = run(mod, torch.zeros(2, 3), h)
    assert_close(w, torch.full((2, 5), 0.2))
    assert_close(ctx, h.mean(1))


def test_bahdanau_projected_keys_reused():
    """U_a h_j is query-independent: passing it precomputed gives the same result."""
    torch.manual_seed(5)
    mod = BahdanauAttention(4, 6, 5)
    s, h = torch.randn(3, 4), torch.randn(3, 7, 6)
    pk = mod.project_keys(h)
    ctx, w = run(mod, s, h)
    ctx2, w2 = run(mod, s, h, projected_keys=pk)
    assert_close(ctx2, ctx)
    assert_close(w2, w)


def test_dot_equals_luong_general_with_identity():
    torch.manual_seed(6)
    dot, gen = LuongAttention(4, 4, "dot"), LuongAttention(4, 4, "general")
    with torch.no_grad():
        gen.score.weight.copy_(torch.eye(4))
    s, h = torch.randn(2, 4), torch.randn(2, 5, 4)
    for a, b in zip(run(dot, s, h), run(gen, s, h), strict=True):
        assert_close(a, b)


def test_bahdanau_learns_to_copy_alignment():
    """Trained on a toy task (attend to the position whose key matches the query), the
    attention puts most weight on the right position: the module is trainable end to end."""
    torch.manual_seed(7)
    mod = BahdanauAttention(8, 8, 16)
    opt = torch.optim.Adam(mod.parameters(), lr=3e-2)
    keys_bank = torch.randn(10, 8)

    def batch():
        idx = torch.randint(0, 10, (32, 6))  # (B, L)
        target = torch.randint(0, 6, (32,))
        return keys_bank[idx], keys_bank[idx[torch.arange(32), target]], target

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: extra threads only add contention on a shared CPU
    try:
        for _ in range(80):
            h, s, target = batch()
            _, w = run(mod, s, h)
            loss = -torch.log(w[torch.arange(32), target] + 1e-9).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    h, s, target = batch()
    _, w = run(mod, s, h)
    picked = w[torch.arange(32), target]
    assert picked.mean() > 0.6, f"mean weight on the target position {picked.mean():.3f}"
    assert loss.item() < math.log(6) / 2


# --------------------------------------------------------------------------- bad input


def test_constructor_errors():
    with pytest.raises(ValueError, match="query_dim"):
        BahdanauAttention(0, 4, 4)
    with pytest.raises(ValueError, match="hidden_dim"):
        BahdanauAttention(4, 4, -1)
    with pytest.raises(ValueError, match="score must be"):
        LuongAttention(4, 4, "bilinear")
    with pytest.raises(ValueError, match="query_dim == key_dim"):
        LuongAttention(3, 4, "dot")
    with pytest.raises(ValueError, match="hidden_dim only applies"):
        LuongAttention(4, 4, "general", hidden_dim=3)


def test_forward_errors():
    mod = LuongAttention(4, 4, "general")
    s, h = torch.randn(2, 4), torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match=r"query must have shape \(B, 4\)"):
        mod(torch.randn(2, 1, 4), h)
    with pytest.raises(ValueError, match=r"keys must have shape \(B, L, 4\)"):
        mod(s, torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="batch size"):
        mod(torch.randn(3, 4), h)
    with pytest.raises(TypeError, match="bool"):
        mod(s, h, torch.ones(2, 5))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(B, L\) = \(2, 5\)"):
        mod(s, h, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="share a dtype"):
        mod(s.double(), h)
    with pytest.raises(TypeError, match="floating-point"):
        mod(s.long(), h)
