"""MultiHeadAttention against ``nn.MultiheadAttention`` (via from_torch), the KV cache, GQA,
and bad inputs."""

from __future__ import annotations

import pytest
import torch
from conftest import TOL
from torch import nn

from explore_attention.attention import KVCache, MultiHeadAttention, attend, masks

E, H = 12, 3


def pair(dtype=torch.float64, bias=True, seed=0):
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(E, H, bias=bias, batch_first=True, dtype=dtype)
    # non-zero biases, so a bias copied to the wrong projection would show
    with torch.no_grad():
        for p in ref.parameters():
            if p.dim() == 1:
                p.normal_()
    return ref, MultiHeadAttention.from_torch(ref)


def grads(module, loss):
    module.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in module.named_parameters()}


def torch_grads_as_ours(ref):
    """nn.MultiheadAttention's gradients renamed to our parameter names."""
    gq, gk, gv = ref.in_proj_weight.grad.split(E)
    out = {
        "q_proj.weight": gq,
        "k_proj.weight": gk,
        "v_proj.weight": gv,
        "out_proj.weight": ref.out_proj.weight.grad,
    }
    if ref.in_proj_bias is not None:
        bq, bk, bv = ref.in_proj_bias.grad.split(E)
        out |= {"q_proj.bias": bq, "k_proj.bias": bk, "v_proj.bias": bv,
                "out_proj.bias": ref.out_proj.bias.grad}  # fmt: skip
    return out


def _pair(res):
    """``AttentionOutput`` → ``(output, weights)``."""
    return res.output, res.weights


def compare(ref, ours, x, context=None, kpm=None, attn_mask=None, mask_mod=None):
    tol = TOL[x.dtype]
    xr = x.clone().requires_grad_()
    xo = x.clone().requires_grad_()
    cr = co = None
    if context is not None:
        cr, co = context.clone().requires_grad_(), context.clone().requires_grad_()
    kv_r = xr if cr is None else cr
    out_r, w_r = ref(xr, kv_r, kv_r, key_padding_mask=kpm, attn_mask=attn_mask,
                     average_attn_weights=False)  # fmt: skip
    out_o, w_o = _pair(ours(xo, co, key_padding_mask=kpm, mask_mod=mask_mod))
    torch.testing.assert_close(out_o, out_r, **tol)
    torch.testing.assert_close(w_o, w_r, **tol)
    g = torch.randn_like(out_r)
    ref.zero_grad()
    (out_r * g).sum().backward()
    theirs = torch_grads_as_ours(ref)
    mine = grads(ours, (out_o * g).sum())
    assert set(mine) == set(theirs)
    for n in mine:
        torch.testing.assert_close(mine[n], theirs[n], **tol, msg=lambda m, n=n: f"{n}: {m}")
    torch.testing.assert_close(xo.grad, xr.grad, **tol)
    if context is not None:
        torch.testing.assert_close(co.grad, cr.grad, **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_self_attention_matches_torch(dtype, bias):
    ref, ours = pair(dtype, bias)
    compare(ref, ours, torch.randn(2, 5, E, dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_cross_attention_matches_torch(dtype):
    ref, ours = pair(dtype)
    compare(ref, ours, torch.randn(2, 4, E, dtype=dtype), context=torch.randn(2, 7, E, dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_key_padding_bool_matches_torch(dtype):
    ref, ours = pair(dtype)
    kpm = torch.tensor([[False] * 7, [False] * 4 + [True] * 3])  # True = padding
    compare(ref, ours, torch.randn(2, 3, E, dtype=dtype), torch.randn(2, 7, E, dtype=dtype), kpm)
    w = ours(torch.randn(2, 3, E, dtype=dtype), torch.randn(2, 7, E, dtype=dtype),
             key_padding_mask=kpm).weights  # fmt: skip
    assert torch.all(w[1, :, :, 4:] == 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_key_padding_additive_float_matches_torch(dtype):
    ref, ours = pair(dtype)
    kpm = torch.randn(2, 6, dtype=dtype)
    kpm[1, 4:] = float("-inf")
    compare(ref, ours, torch.randn(2, 6, E, dtype=dtype), kpm=kpm)


def test_causal_mask_matches_torch_attn_mask():
    ref, ours = pair()
    L = 6
    attn_mask = torch.ones(L, L, dtype=torch.bool).triu(1)  # torch: True = NOT allowed
    compare(ref, ours, torch.randn(2, L, E, dtype=torch.float64), attn_mask=attn_mask,
            mask_mod=masks.causal)  # fmt: skip


def test_gradcheck_float64():
    _, ours = pair()
    x = torch.randn(1, 3, E, dtype=torch.float64, requires_grad=True)
    c = torch.randn(1, 4, E, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: ours(a, b, mask_mod=masks.padding([3])).output, (x, c)
    )


def test_gqa_heads_share_keys():
    torch.manual_seed(0)
    m = MultiHeadAttention(16, 4, num_kv_heads=2).double()
    assert m.k_proj.out_features == 8 and m.v_proj.out_features == 8
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    out, w = _pair(m(x, mask_mod=masks.causal))
    # by hand: project, repeat each kv head for its 2 query heads, attend, project out
    q = m.q_proj(x).view(2, 5, 4, 4).transpose(1, 2)  # (B, H, L, Dh)
    k = m.k_proj(x).view(2, 5, 2, 4).transpose(1, 2).repeat_interleave(2, 1)  # (B, H, L, Dh)
    v = m.v_proj(x).view(2, 5, 2, 4).transpose(1, 2).repeat_interleave(2, 1)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    ref = m.out_proj(ref.transpose(1, 2).reshape(2, 5, 16))
    torch.testing.assert_close(out, ref, **TOL[torch.float64])
    assert w.shape == (2, 4, 5, 5)


@pytest.mark.parametrize("num_kv_heads", [None, 1])
@pytest.mark.parametrize("chunks", [[1] * 7, [3, 1, 2, 1]])
def test_cached_decoding_equals_full(num_kv_heads, chunks):
    torch.manual_seed(0)
    m = MultiHeadAttention(E, H if num_kv_heads is None else 3, num_kv_heads=num_kv_heads).double()
    x = torch.randn(2, 7, E, dtype=torch.float64)
    full, wfull = _pair(m(x, mask_mod=masks.causal))
    cache = m.new_cache(2, capacity=8)
    outs, start = [], 0
    for n in chunks:
        o, w = _pair(m(x[:, start : start + n], mask_mod=masks.causal, cache=cache))
        assert w.shape == (2, 3, n, start + n)
        torch.testing.assert_close(
            w, wfull[:, :, start : start + n, : start + n], **TOL[torch.float64]
        )
        outs.append(o)
        start += n
    assert cache.length == 7
    torch.testing.assert_close(torch.cat(outs, 1), full, **TOL[torch.float64])


def test_cache_capacity_and_shape_errors():
    m = MultiHeadAttention(E, H)
    cache = m.new_cache(1, capacity=3)
    m(torch.randn(1, 2, E), cache=cache)
    with pytest.raises(ValueError, match="capacity exceeded: 2 cached \\+ 2 new > capacity 3"):
        m(torch.randn(1, 2, E), cache=cache)
    cache.reset()
    assert cache.length == 0
    with pytest.raises(ValueError, match="the cache holds"):
        m(torch.randn(2, 1, E), cache=cache)  # batch 2 into a batch-1 cache
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        KVCache.empty(1, 1, 0, 4)


def test_dropout_only_in_training():
    torch.manual_seed(0)
    m = MultiHeadAttention(E, H, dropout=0.5)
    x = torch.randn(2, 6, E)
    m.eval()
    a, b = m(x).output, m(x).output
    assert torch.equal(a, b)
    m.train()
    torch.manual_seed(1)
    c, wc = _pair(m(x))
    torch.manual_seed(1)
    d, _ = _pair(m(x))
    assert torch.equal(c, d) and not torch.allclose(c, a)
    assert (wc == 0).any()  # the returned weights are the dropped ones


def test_return_weights_false_uses_fused_kernel_and_agrees():
    _, ours = pair()
    x = torch.randn(2, 5, E, dtype=torch.float64)
    a, w = _pair(ours(x, mask_mod=masks.causal, return_weights=False))
    b, _ = _pair(ours(x, mask_mod=masks.causal))
    assert w is None
    torch.testing.assert_close(a, b, **TOL[torch.float64])


def test_attend_is_what_the_module_calls():
    """The module is a thin layer over attend(): same heads, same weights."""
    _, ours = pair()
    x = torch.randn(1, 4, E, dtype=torch.float64)
    _, w = _pair(ours(x))
    q = ours.q_proj(x).view(1, 4, H, E // H).transpose(1, 2)  # (B, H, L, Dh)
    k = ours.k_proj(x).view(1, 4, H, E // H).transpose(1, 2)
    v = ours.v_proj(x).view(1, 4, H, E // H).transpose(1, 2)
    torch.testing.assert_close(w, attend(q, k, v).weights, **TOL[torch.float64])


def test_bad_construction():
    with pytest.raises(ValueError, match=r"d_model \(10\) must be divisible by num_heads \(3\)"):
        MultiHeadAttention(10, 3)
    for bad in (0, -1):
        with pytest.raises(ValueError, match=f"num_heads must be an int >= 1, got {bad}"):
            MultiHeadAttention(12, bad)
    with pytest.raises(
        ValueError, match=r"num_heads \(4\) must be divisible by num_kv_heads \(3\)"
    ):
        MultiHeadAttention(12, 4, num_kv_heads=3)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        MultiHeadAttention(12, 3, dropout=1.0)
    with pytest.raises(ValueError, match="d_model"):
        MultiHeadAttention(12.0, 3)
    with pytest.raises(TypeError, match=r"nn\.MultiheadAttention"):
        MultiHeadAttention.from_torch(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="kdim"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2, kdim=4, vdim=4))


def test_bad_forward_inputs():
    m = MultiHeadAttention(E, H)
    x = torch.randn(2, 5, E)
    with pytest.raises(
        ValueError, match=r"x must have shape \(B, L, d_model=12\), got \(2, 5, 8\)"
    ):
        m(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match=r"x must have shape.*got \(5, 12\)"):
        m(torch.randn(5, E))
    with pytest.raises(ValueError, match="context batch size 3 != x batch size 2"):
        m(x, torch.randn(3, 4, E))
    with pytest.raises(
        ValueError, match=r"key_padding_mask must have shape \(B, Lk\) = \(2, 5\), got \(2, 4\)"
    ):
        m(x, key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"key_padding_mask must be bool.*int64"):
        m(x, key_padding_mask=torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        m([[0.0] * E])


def test_kv_cache_keeps_gradients_across_appends():
    """Issue 11: ``append`` wrote under no_grad and silently cut the graph. Two appends, both
    results used, then one backward: the gradients equal those of the plain concatenation."""
    g = torch.Generator().manual_seed(0)
    k1, k2, v1, v2 = (
        torch.randn(2, 1, n, 3, generator=g, dtype=torch.float64, requires_grad=True)
        for n in (2, 3, 2, 3)
    )
    w = torch.randn(2, 1, 5, 3, generator=g, dtype=torch.float64)
    cache = KVCache.empty(2, 1, 6, 3, dtype=torch.float64)
    ka, va = cache.append(k1, v1)
    first = (ka * va).sum()
    kb, vb = cache.append(k2, v2)
    loss = first + (kb * vb * w).sum()
    k, v = torch.cat([k1, k2], 2), torch.cat([v1, v2], 2)
    ref = (k1 * v1).sum() + (k * v * w).sum()
    got = torch.autograd.grad(loss, (k1, k2, v1, v2))
    want = torch.autograd.grad(ref, (k1, k2, v1, v2))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, **TOL[torch.float64])


def test_cached_decoding_backpropagates_like_full_attention():
    """Token-by-token attention over the cache, in grad mode, gives the full causal pass's
    gradients with respect to every key and value."""
    g = torch.Generator().manual_seed(1)
    q, k, v = (
        torch.randn(1, 2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
        for _ in range(3)
    )
    cache = KVCache.empty(1, 2, 5, 4, dtype=torch.float64)
    steps = []
    for t in range(5):
        kc, vc = cache.append(k[:, :, t : t + 1], v[:, :, t : t + 1])
        steps.append(attend(q[:, :, t : t + 1], kc, vc, mask_mod=masks.causal).output)
    out = torch.cat(steps, 2)  # (1, 2, 5, 4)
    full = attend(q, k, v, mask_mod=masks.causal).output
    torch.testing.assert_close(out, full, **TOL[torch.float64])
    w = torch.randn(out.shape, generator=g, dtype=torch.float64)
    for a, b in zip(
        torch.autograd.grad(out, (q, k, v), w), torch.autograd.grad(full, (q, k, v), w), strict=True
    ):
        torch.testing.assert_close(a, b, **TOL[torch.float64])


def test_kv_cache_checks_values():
    cache = KVCache.empty(1, 2, 4, 3)
    with pytest.raises(ValueError, match=r"v has shape \(1, 2, 1, 5\), the cache holds"):
        cache.append(torch.zeros(1, 2, 1, 3), torch.zeros(1, 2, 1, 5))
    with pytest.raises(ValueError, match="same number of new tokens"):
        cache.append(torch.zeros(1, 2, 1, 3), torch.zeros(1, 2, 2, 3))
    with pytest.raises(TypeError, match=r"v must be a torch\.Tensor"):
        cache.append(torch.zeros(1, 2, 1, 3), None)
    assert cache.length == 0
    with torch.no_grad():  # inference writes in place: the buffer is reused
        buffer = cache.keys
        cache.append(torch.ones(1, 2, 1, 3), torch.ones(1, 2, 1, 3))
    assert cache.keys is buffer and cache.length == 1
