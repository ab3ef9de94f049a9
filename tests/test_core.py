"""attend() against PyTorch's fused ``F.scaled_dot_product_attention``, forward and backward,
plus the properties, edge cases and bad inputs of DESIGN §6."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import TOL, qkv
from hypothesis import given, settings
from hypothesis import strategies as st

from explore_attention.attention import attend, masked_softmax, masks, repeat_kv

BACKENDS = ["reference", "sdpa"]
DTYPES = [torch.float32, torch.float64]


def fwd_bwd(fn, q, k, v, seed=1):
    """Output and d(out·g)/d(q, k, v) for a fixed random cotangent g."""
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out = fn(q, k, v)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    (out * g).sum().backward()
    return out.detach(), q.grad, k.grad, v.grad


def torch_ref(q, k, v, mask=None, scale=None):
    """F.scaled_dot_product_attention with a dense bool mask; rows with no key give 0."""
    H = q.shape[1]
    k, v = repeat_kv(k, H), repeat_kv(v, H)
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    live = mask.any(-1, keepdim=True)
    safe = mask | ~live
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=safe, scale=scale)
    return out * live  # exact zeros for empty rows


def assert_matches(backend, q, k, v, mask_mod, mask, scale=None):
    tol = TOL[q.dtype]
    ours = fwd_bwd(
        lambda a, b, c: (
            attend(
                a, b, c, mask_mod=mask_mod, scale=scale, backend=backend, return_weights=False
            ).output
        ),
        q,
        k,
        v,
    )
    ref = fwd_bwd(lambda a, b, c: torch_ref(a, b, c, mask, scale), q, k, v)
    for name, a, b in zip(("output", "dq", "dk", "dv"), ours, ref):
        torch.testing.assert_close(a, b, **tol, msg=lambda m, n=name: f"{n}: {m}")


# --------------------------------------------------------------------------- equivalence

SIZES = [(1, 1), (2, 3), (3, 21), (15, 1), (15, 21), (113, 3)]  # (L, head dim)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("L", "D"), SIZES)
def test_unmasked_matches_sdpa(backend, dtype, L, D):
    q, k, v = qkv(Lq=L, D=D, dtype=dtype)
    assert_matches(backend, q, k, v, None, None)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("L", "D"), SIZES)
def test_causal_matches_sdpa_is_causal(backend, dtype, L, D):
    q, k, v = qkv(Lq=L, D=D, dtype=dtype)
    tol = TOL[dtype]
    ours = fwd_bwd(
        lambda a, b, c: (
            attend(a, b, c, mask_mod=masks.causal, backend=backend, return_weights=False).output
        ),
        q,
        k,
        v,
    )
    ref = fwd_bwd(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True), q, k, v)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("Lq", "Lk"), [(1, 7), (3, 15), (15, 3), (7, 1), (2, 113)])
def test_causal_lq_ne_lk_is_bottom_right(backend, dtype, Lq, Lk):
    q, k, v = qkv(Lq=Lq, Lk=Lk, D=5, Dv=3, dtype=dtype)
    i = torch.arange(Lq)[:, None] + (Lk - Lq)
    mask = torch.arange(Lk)[None, :] <= i  # PyTorch's causal_lower_right
    assert_matches(backend, q, k, v, masks.causal, mask)
    if Lq > Lk:  # the first Lq - Lk queries see nothing: output exactly 0
        out = attend(q, k, v, mask_mod=masks.causal, backend=backend, return_weights=False).output
        assert torch.all(out[:, :, : Lq - Lk] == 0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bool_mask_matches_sdpa(backend, dtype):
    q, k, v = qkv(B=3, H=2, Lq=6, Lk=9, D=4, dtype=dtype)
    g = torch.Generator().manual_seed(3)
    mask = torch.rand(3, 2, 6, 9, generator=g) > 0.4
    mask[..., 0] = True  # every row keeps a key (empty rows are tested separately)
    assert_matches(backend, q, k, v, masks.from_bool(mask), mask)
    # a (Lq, Lk) mask broadcast over batch and heads
    assert_matches(backend, q, k, v, masks.from_bool(mask[0, 0]), mask[0, 0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("window", [1, 3, 20])
@pytest.mark.parametrize("causal", [True, False])
def test_sliding_window_matches_sdpa(backend, dtype, window, causal):
    L = 15
    q, k, v = qkv(Lq=L, D=3, dtype=dtype)
    d = torch.arange(L)[:, None] - torch.arange(L)[None, :]  # i - j
    mask = ((d >= 0) & (d < window)) if causal else (d.abs() <= window // 2)
    assert_matches(backend, q, k, v, masks.sliding_window(window, causal=causal), mask)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("Hkv", [1, 2])
@pytest.mark.parametrize("mask_name", ["none", "causal", "padding"])
def test_gqa_matches_sdpa_enable_gqa_and_repeated_kv(backend, dtype, Hkv, mask_name):
    q, k, v = qkv(B=2, H=4, Hkv=Hkv, Lq=7, D=6, Dv=5, dtype=dtype)
    mm, mask = {
        "none": (None, None),
        "causal": (masks.causal, torch.ones(7, 7, dtype=torch.bool).tril()),
        "padding": (
            masks.padding([4, 7]),
            (torch.arange(7) < torch.tensor([[4], [7]]))[:, None, None],
        ),
    }[mask_name]
    assert_matches(backend, q, k, v, mm, mask)
    out = attend(q, k, v, mask_mod=mm, backend=backend, return_weights=False).output
    rep = attend(q, repeat_kv(k, 4), repeat_kv(v, 4), mask_mod=mm, backend=backend,
                 return_weights=False).output  # fmt: skip
    torch.testing.assert_close(out, rep, **TOL[dtype])
    fused = (
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        if mask is not None
        else F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    )
    torch.testing.assert_close(out, fused, **TOL[dtype])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale", [-0.5, 0.0, 2.0])
def test_explicit_and_negative_scale(backend, scale):
    q, k, v = qkv(Lq=4, Lk=6, D=3)
    assert_matches(backend, q, k, v, None, None, scale=scale)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reference_and_sdpa_agree_with_weights(backend):
    """The weights returned are the ones applied: output == weights @ v."""
    q, k, v = qkv(H=4, Hkv=2, Lq=6, Lk=8, D=4, Dv=3)
    res = attend(q, k, v, mask_mod=masks.sliding_window(3, causal=False), backend="reference")
    torch.testing.assert_close(res.output, res.weights @ repeat_kv(v, 4), **TOL[torch.float64])
    other = attend(q, k, v, mask_mod=masks.sliding_window(3, causal=False), backend=backend,
                   return_weights=False)  # fmt: skip
    torch.testing.assert_close(other.output, res.output, **TOL[torch.float64])


# --------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mask_name", ["none", "causal", "empty_row"])
def test_gradcheck_float64(backend, mask_name):
    q, k, v = (t.requires_grad_() for t in qkv(B=1, H=2, Hkv=1, Lq=3, Lk=4, D=3, Dv=2))
    bm = torch.ones(3, 4, dtype=torch.bool)
    bm[1] = False  # row 1 sees no key
    mm = {"none": None, "causal": masks.causal, "empty_row": masks.from_bool(bm)}[mask_name]

    def f(a, b, c):
        return attend(a, b, c, mask_mod=mm, backend=backend, return_weights=False).output

    assert torch.autograd.gradcheck(f, (q, k, v))
    assert torch.autograd.gradgradcheck(f, (q, k, v)) if backend == "reference" else True


# --------------------------------------------------------------------------- properties


@settings(max_examples=20, deadline=None)
@given(
    B=st.integers(1, 2),
    H=st.integers(1, 3),
    Lq=st.integers(1, 9),
    Lk=st.integers(1, 9),
    D=st.integers(1, 5),
    p=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_rows_sum_to_one_and_masked_weights_exactly_zero(B, H, Lq, Lk, D, p, seed):
    q, k, v = qkv(B, H, None, Lq, Lk, D, dtype=torch.float64, seed=seed)
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, H, Lq, Lk, generator=g) < p
    w = attend(q, k, v, mask_mod=masks.from_bool(mask)).weights
    assert torch.all(w[~mask] == 0)
    live = mask.any(-1)
    sums = w.sum(-1)
    torch.testing.assert_close(sums[live], torch.ones_like(sums[live]), **TOL[torch.float64])
    assert torch.all(sums[~live] == 0) and not torch.isnan(w).any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_causal_no_leak_by_gradient_and_by_value(backend):
    q, k, v = (t.requires_grad_() for t in qkv(B=1, H=2, Lq=6, D=4))
    out = attend(q, k, v, mask_mod=masks.causal, backend=backend, return_weights=False).output
    i = 2
    out[:, :, i].sum().backward()
    assert torch.all(k.grad[:, :, i + 1 :] == 0) and torch.all(v.grad[:, :, i + 1 :] == 0)
    assert k.grad[:, :, : i + 1].abs().sum() > 0
    with torch.no_grad():
        k2, v2 = k.clone(), v.clone()
        k2[:, :, i + 1 :] = torch.randn_like(k2[:, :, i + 1 :]) * 100
        v2[:, :, i + 1 :] = torch.randn_like(v2[:, :, i + 1 :]) * 100
        out2 = attend(
            q, k2, v2, mask_mod=masks.causal, backend=backend, return_weights=False
        ).output
    torch.testing.assert_close(out2[:, :, : i + 1], out.detach()[:, :, : i + 1], rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_permutation_equivariance(backend):
    q, k, v = qkv(B=2, H=3, Lq=7, D=4)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(0))
    out = attend(q, k, v, backend=backend, return_weights=False).output
    outp = attend(q[:, :, perm], k[:, :, perm], v[:, :, perm], backend=backend,
                  return_weights=False).output  # fmt: skip
    torch.testing.assert_close(outp, out[:, :, perm], **TOL[torch.float64])
    # permuting only keys and values together changes nothing at all
    outk = attend(q, k[:, :, perm], v[:, :, perm], backend=backend, return_weights=False).output
    torch.testing.assert_close(outk, out, **TOL[torch.float64])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [1e10, -1e10, float("nan"), float("inf")])
def test_masked_key_with_huge_or_nan_changes_nothing(backend, bad):
    q, k, v = qkv(B=2, H=2, Lq=4, Lk=6, D=3)
    mm = masks.padding([4, 6])
    ref = fwd_bwd(lambda a, b, c: attend(a, b, c, mask_mod=mm, backend=backend,
                                         return_weights=False).output, q, k, v)  # fmt: skip
    k2, v2 = k.clone(), v.clone()
    k2[0, :, 4:] = bad
    v2[0, :, 4:] = bad
    got = fwd_bwd(lambda a, b, c: attend(a, b, c, mask_mod=mm, backend=backend,
                                         return_weights=False).output, q, k2, v2)  # fmt: skip
    for a, b in zip(got[:2], ref[:2]):  # output and dq are bit-for-bit unchanged
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.isnan(got[2]).any() and not torch.isnan(got[3]).any()
    assert torch.all(got[3][0, :, 4:] == 0)  # padded values get no gradient


@pytest.mark.parametrize("backend", BACKENDS)
def test_equal_queries_and_keys_give_mean_of_values(backend):
    q = torch.ones(2, 2, 5, 4, dtype=torch.float64) * 0.3
    k = torch.ones(2, 2, 7, 4, dtype=torch.float64) * -1.7
    v = torch.randn(2, 2, 7, 3, dtype=torch.float64)
    out = attend(q, k, v, backend=backend, return_weights=False).output
    torch.testing.assert_close(
        out, v.mean(-2, keepdim=True).expand(2, 2, 5, 3), **TOL[torch.float64]
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [*DTYPES, torch.bfloat16], ids=str)
def test_fully_masked_rows_are_zero_never_nan(backend, dtype):
    q, k, v = qkv(B=2, H=2, Hkv=1, Lq=4, Lk=5, D=3, dtype=dtype)
    bm = torch.ones(2, 2, 4, 5, dtype=torch.bool)
    bm[0, 1, 2] = False
    bm[1, :, :] = False  # a whole batch element with no key
    mm = masks.from_bool(bm)
    out, dq, dk, dv = fwd_bwd(
        lambda a, b, c: attend(a, b, c, mask_mod=mm, backend=backend, return_weights=False).output,
        q, k, v,
    )  # fmt: skip
    assert torch.all(out[0, 1, 2] == 0) and torch.all(out[1] == 0)
    for t in (out, dq, dk, dv):
        assert torch.isfinite(t).all()
    assert torch.all(dq[0, 1, 2] == 0) and torch.all(dq[1] == 0)
    w = attend(q, k, v, mask_mod=mm, backend="reference").weights
    assert torch.all(w[0, 1, 2] == 0) and torch.all(w[1] == 0)
    # with padding(lengths=0) too
    out0 = attend(q, k, v, mask_mod=masks.padding([0, 5]), backend=backend,
                  return_weights=False).output  # fmt: skip
    assert torch.all(out0[0] == 0) and torch.isfinite(out0).all()


def test_masked_softmax_directly():
    s = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    m = torch.tensor([[True, False, True], [False, False, False]])
    w = masked_softmax(s, m)
    e = torch.tensor([math.e**1, math.e**3], dtype=torch.float64)
    torch.testing.assert_close(
        w[0], torch.stack([e[0], torch.tensor(0.0, dtype=torch.float64), e[1]]) / e.sum()
    )
    assert torch.all(w[1] == 0)
    torch.testing.assert_close(masked_softmax(s, None), torch.softmax(s, -1))


# --------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_same_seed_same_output_and_p0_bitwise(backend):
    q, k, v = qkv(Lq=6, D=4, dtype=torch.float32)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        outs.append(attend(q, k, v, dropout_p=0.3, backend=backend, return_weights=False).output)
    assert torch.equal(outs[0], outs[1])
    torch.manual_seed(124)
    other = attend(q, k, v, dropout_p=0.3, backend=backend, return_weights=False).output
    assert not torch.equal(other, outs[0])
    a = attend(q, k, v, dropout_p=0.0, backend=backend, return_weights=False).output
    b = attend(q, k, v, dropout_p=0.0, backend=backend, return_weights=False).output
    assert torch.equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_rate_close_to_p(backend, p):
    """With equal scores and v = identity, the output *is* the dropped weight matrix."""
    L = 64
    q = torch.zeros(2, 4, L, 8)
    k = torch.zeros(2, 4, L, 8)
    v = torch.eye(L).expand(2, 4, L, L)
    torch.manual_seed(0)
    out = attend(q, k, v, dropout_p=p, backend=backend, return_weights=False).output
    n = out.numel()
    rate = (out == 0).float().mean().item()
    assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / n)  # within 4 standard errors
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (L * (1 - p))))


# --------------------------------------------------------------------------- precision, layout


def _bf16_supported() -> bool:
    try:
        a = torch.ones(2, 2, dtype=torch.bfloat16)
        return bool(torch.equal((a @ a).float(), torch.full((2, 2), 2.0)))
    except RuntimeError:
        return False


@pytest.mark.skipif(not _bf16_supported(), reason="this CPU has no bfloat16 matmul")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mask_mod", [None, masks.causal], ids=["none", "causal"])
def test_bfloat16_against_float64(backend, mask_mod):
    q, k, v = qkv(B=2, H=2, Lq=15, D=21, dtype=torch.float64)
    exact = attend(q, k, v, mask_mod=mask_mod, backend="reference").output
    low = attend(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask_mod=mask_mod, backend=backend,
                 return_weights=False).output  # fmt: skip
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.double(), exact, **TOL[torch.bfloat16])


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_inputs(backend):
    x = torch.randn(2, 7, 3, 8, dtype=torch.float64)  # (B, L, H, D) as projections produce
    q = x.transpose(1, 2)  # (B, H, L, D) view, not contiguous
    k = torch.randn(2, 3, 7, 16, dtype=torch.float64)[..., ::2]  # strided last dim
    v = torch.randn(2, 3, 5, 7, dtype=torch.float64).transpose(-1, -2)  # (2, 3, 7, 5)
    assert not (q.is_contiguous() or k.is_contiguous() or v.is_contiguous())
    assert_matches(backend, q, k, v, masks.causal, torch.ones(7, 7, dtype=torch.bool).tril())
    out = attend(q, k, v, backend=backend, return_weights=False).output
    ref = attend(q.contiguous(), k.contiguous(), v.contiguous(), backend=backend,
                 return_weights=False).output  # fmt: skip
    torch.testing.assert_close(out, ref, **TOL[torch.float64])


def test_sdpa_backend_warns_and_gives_no_weights():
    q, k, v = qkv()
    with pytest.warns(UserWarning, match="cannot return attention weights"):
        res = attend(q, k, v, backend="sdpa")
    assert res.weights is None
    assert attend(q, k, v, return_weights=False).weights is None
    assert attend(q, k, v).weights is not None  # auto picks a backend that gives weights


def test_score_mod_applied_after_scaling():
    q, k, v = qkv(Lq=4, D=4)
    bias = torch.randn(4, 4, dtype=torch.float64)
    res = attend(q, k, v, score_mod=lambda s, b, h, i, j: s + bias[i, j])
    mask = None
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=bias) if mask is None else None
    torch.testing.assert_close(res.output, ref, **TOL[torch.float64])


# --------------------------------------------------------------------------- bad input


def test_bad_shapes_name_argument_and_shapes():
    q, k, v = qkv(B=2, H=4, Lq=3, D=8, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"q must have 4 dimensions.*\(4, 3, 8\)"):
        attend(q[0], k, v)
    with pytest.raises(ValueError, match=r"k's head dim.*\(2, 4, 3, 8\).*D=8.*D=5"):
        attend(q, k[..., :5], v)
    with pytest.raises(ValueError, match=r"multiple of k's heads.*H=4.*Hkv=3"):
        attend(q, k[:, :3], v[:, :3])
    with pytest.raises(ValueError, match=r"k and v must agree.*\(2, 4, 2, 8\)"):
        attend(q, k, v[:, :, :2])
    with pytest.raises(ValueError, match="batch sizes differ"):
        attend(q, k[:1], v[:1])
    with pytest.raises(TypeError, match=r"q must be a torch\.Tensor"):
        attend(q.tolist(), k, v)
    with pytest.raises(TypeError, match=r"floating-point.*int64"):
        attend(q.long(), k, v)


def test_bad_masks():
    q, k, v = qkv(B=2, H=2, Lq=3, Lk=5, D=4)
    with pytest.raises(
        ValueError, match=r"mask has shape \(\.\.\., 3, 4\), expected \(\.\.\., 3, 5\)"
    ):
        attend(q, k, v, mask_mod=masks.from_bool(torch.ones(3, 4, dtype=torch.bool)))
    with pytest.raises(ValueError, match="mask dim 0 has size 3, expected 1 or 2"):
        attend(q, k, v, mask_mod=masks.from_bool(torch.ones(3, 2, 3, 5, dtype=torch.bool)))
    for dtype in (torch.int64, torch.uint8, torch.float32):
        with pytest.raises(TypeError, match=f"bool tensor.*{dtype}"):
            masks.from_bool(torch.ones(3, 5, dtype=dtype))
    with pytest.raises(TypeError, match=r"must return a bool tensor, got dtype torch\.int64"):
        attend(q, k, v, mask_mod=lambda b, h, i, j: (i >= j).long())
    with pytest.raises(ValueError, match="does not broadcast"):
        attend(q, k, v, mask_mod=lambda b, h, i, j: torch.ones(7, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask_mod must be a callable"):
        attend(q, k, v, mask_mod=torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="built for batch size 3"):
        attend(q, k, v, mask_mod=masks.padding([1, 2, 3]))


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_dropout(p):
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\)"):
        attend(q, k, v, dropout_p=p)
    with pytest.raises(TypeError, match="dropout_p"):
        attend(q, k, v, dropout_p="0.1")


def test_mixed_dtypes_devices_and_options():
    q, k, v = qkv(dtype=torch.float32)
    with pytest.raises(TypeError, match=r"share one dtype.*float32.*float64"):
        attend(q, k.double(), v)
    with pytest.raises(ValueError, match=r"one device.*cpu.*meta"):
        attend(q, k.to("meta"), v)
    with pytest.raises(ValueError, match="backend must be one of"):
        attend(q, k, v, backend="flash9")
    with pytest.raises(ValueError, match="cannot apply a score_mod"):
        attend(q, k, v, backend="sdpa", score_mod=lambda s, b, h, i, j: s)
    with pytest.raises(TypeError, match="scale must be a float"):
        attend(q, k, v, scale="1")
    with pytest.raises(TypeError, match="score_mod must be a callable"):
        attend(q, k, v, score_mod=3)


# --------------------------------------------------------------------------- issue 11


@pytest.mark.parametrize("backend", ["reference", "sdpa", "tiled", "auto"])
def test_no_keys_gives_zeros_on_every_backend(backend):
    """Lk = 0: every row is empty, output 0 (old code: the reference crashed in amax)."""
    q, k, v = qkv(B=2, H=2, Lq=3, Lk=1, D=4)
    k, v = k[:, :, :0], v[:, :, :0]  # (B, H, 0, D)
    res = attend(q, k, v, backend=backend, return_weights=backend == "reference")
    assert torch.equal(res.output, torch.zeros(2, 2, 3, 4, dtype=q.dtype))
    if backend == "reference":
        assert res.weights.shape == (2, 2, 3, 0)


def test_dropout_is_applied_whenever_positive_and_weights_are_the_applied_ones():
    """attend knows no training mode: dropout_p > 0 drops, also under no_grad (a module passes
    0.0 in eval). The weights returned are the ones applied. ``auto`` with a score_mod and
    dropout runs the reference backend (old code sent it to tiled, which refuses dropout)."""
    q, k, v = qkv(B=1, H=2, Lq=40, D=8)
    with torch.no_grad():
        res = attend(q, k, v, dropout_p=0.5)
    plain = attend(q, k, v)
    assert (res.weights == 0).any() and not (plain.weights == 0).any()
    torch.testing.assert_close(res.output, res.weights @ v, **TOL[q.dtype])
    kept = res.weights != 0
    torch.testing.assert_close(res.weights[kept], 2 * plain.weights[kept], **TOL[q.dtype])
    torch.manual_seed(0)
    out = attend(q, k, v, dropout_p=0.3, score_mod=lambda s, b, h, i, j: s, return_weights=False)
    assert out.output.shape == q.shape
    with pytest.raises(ValueError, match="backend='tiled' does not support dropout_p"):
        attend(q, k, v, dropout_p=0.3, backend="tiled", return_weights=False)


def test_weights_budget_refuses_before_allocating():
    """The default call at L = 16384, 8 heads would need 8 GiB of weights: a ValueError names
    the shape, the GiB and the way out, instead of the allocator dying (old code)."""
    from explore_attention.attention import core

    q = torch.zeros(1, 8, 16384, 64)  # 32 MiB; the weights would be 8 GiB
    with pytest.raises(
        ValueError, match=r"\(1, 8, 16384, 16384\).*8\.00 GiB.*return_weights=False"
    ):
        attend(q, q, q, mask_mod=masks.causal)
    before = core.weights_budget()
    try:
        core.set_weights_budget(1e-6)  # ~1 KiB
        small = torch.zeros(1, 1, 20, 20)
        with pytest.raises(ValueError, match="budget"):
            attend(small, small, small)
        out = attend(small, small, small, return_weights=False)  # the way out works
        assert out.weights is None
    finally:
        core.set_weights_budget(before)
    with pytest.raises(ValueError, match="gib must be a positive number"):
        core.set_weights_budget(0)


def test_auto_looks_at_the_mask():
    from explore_attention.attention import core, sparse

    def choose(L, mask_mod=None, score_mod=None, return_weights=False, dropout_p=0.0, Lk=None):
        q = torch.zeros(1, 2, L, 8)
        k = torch.zeros(1, 2, Lk or L, 8)
        return core.choose_backend(q, k, mask_mod, score_mod, dropout_p, return_weights)

    assert choose(2048, masks.causal, return_weights=True) == "reference"
    assert choose(2048, masks.causal) == "sdpa"  # SDPA's causal fast path
    assert choose(2048) == "sdpa"
    assert choose(2048, masks.sliding_window(256)) == "tiled"  # few live tiles
    assert choose(2048, sparse.longformer(256, [0])) == "tiled"
    dense = masks.from_bool(
        torch.rand(2048, 2048, generator=torch.Generator().manual_seed(0)) > 0.1
    )
    assert choose(2048, dense) == "sdpa"  # every tile live: SDPA with the lowered mask
    assert choose(256, masks.sliding_window(16)) == "sdpa"  # too few tiles to bother
    assert choose(2048, masks.sliding_window(256), dropout_p=0.1) == "sdpa"
    assert choose(2048, score_mod=lambda s, b, h, i, j: s) == "tiled"
    assert choose(2048, score_mod=lambda s, b, h, i, j: s, dropout_p=0.1) == "reference"
    # and the answer is the same whichever it picks
    q, k, v = qkv(B=1, H=2, Lq=700, D=8, dtype=torch.float64)
    for mm in (masks.sliding_window(64), masks.causal):
        fast = attend(q, k, v, mask_mod=mm, return_weights=False).output
        torch.testing.assert_close(fast, attend(q, k, v, mask_mod=mm).output, **TOL[q.dtype])
