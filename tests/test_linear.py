"""Linear attention (elu+1) against the quadratic formula with the same feature map, float64."""

from __future__ import annotations

import pytest
import torch
from conftest import TOL, qkv
from torch.testing import assert_close

from explore_attention.attention.linear import EPS, elu_feature_map, linear_attention

pytestmark = pytest.mark.usefixtures("one_thread")


def quadratic(q, k, v, causal):
    """Katharopoulos et al. 2020, Eq. 4 written directly: O(L²), same feature map."""
    H = q.shape[1]
    k, v = k.repeat_interleave(H // k.shape[1], 1), v.repeat_interleave(H // v.shape[1], 1)
    a = elu_feature_map(q) @ elu_feature_map(k).transpose(-1, -2)  # (B, H, Lq, Lk)
    Lq, Lk = a.shape[-2:]
    if causal:  # bottom-right aligned: query i at key position i + Lk − Lq
        keep = torch.arange(Lk)[None, :] <= torch.arange(Lq)[:, None] + (Lk - Lq)
        a = torch.where(keep, a, torch.zeros((), dtype=a.dtype))
    return (a @ v) / (a.sum(-1, keepdim=True) + EPS), a / (a.sum(-1, keepdim=True) + EPS)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("Lq", "Lk"), [(1, 1), (3, 3), (130, 130), (40, 150), (150, 40)])
def test_matches_quadratic_form_forward_and_backward(causal, Lq, Lk):
    q, k, v = qkv(2, 4, 2, Lq, Lk, 5, 3, grad=True)
    res = linear_attention(q, k, v, causal=causal, return_weights=True)
    ref, ref_w = quadratic(q, k, v, causal)
    assert_close(res.output, ref, **TOL[torch.float64])
    assert_close(res.weights, ref_w, **TOL[torch.float64])
    g = torch.randn_like(ref)
    for a, b in zip(
        torch.autograd.grad(res.output, (q, k, v), g), torch.autograd.grad(ref, (q, k, v), g)
    ):
        assert_close(a, b, **TOL[torch.float64])


@pytest.mark.parametrize("super_chunks", [1, 2])
@pytest.mark.parametrize(("Lq", "Lk"), [(150, 150), (40, 150), (150, 40)])
def test_causal_state_carried_across_passes(monkeypatch, super_chunks, Lq, Lk):
    """Several passes of SUPER_CHUNKS chunks (3 chunks of 64 here) equal the quadratic form."""
    from explore_attention.attention import linear

    monkeypatch.setattr(linear, "SUPER_CHUNKS", super_chunks)
    q, k, v = qkv(1, 2, 2, Lq, Lk, 5, 3, grad=True)
    out = linear_attention(q, k, v, causal=True).output
    ref, _ = quadratic(q, k, v, True)
    assert_close(out, ref, **TOL[torch.float64])
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(out, (q, k, v), g), torch.autograd.grad(ref, (q, k, v), g)):
        assert_close(a, b, **TOL[torch.float64])


def test_implied_weights_rows_sum_to_one_and_reproduce_output():
    q, k, v = qkv(1, 2, 2, 33, 33, 4, 4, grad=True)
    res = linear_attention(q, k, v, causal=True, return_weights=True)
    assert_close(res.weights.sum(-1), torch.ones(1, 2, 33, dtype=torch.float64), atol=1e-5, rtol=0)
    assert torch.all(res.weights.triu(1) == 0)
    assert_close(res.weights @ v, res.output, **TOL[torch.float64])
    assert linear_attention(q, k, v).weights is None


def test_causal_does_not_leak_future():
    q, k, v = qkv(1, 2, 2, 64, 64, 4, 4, grad=True)
    out = linear_attention(q, k, v, causal=True).output
    gk, gv = torch.autograd.grad(out[:, :, 20].sum(), (k, v))
    assert torch.all(gk[:, :, 21:] == 0) and torch.all(gv[:, :, 21:] == 0)
    assert gv[:, :, :21].abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_long_low_precision_inputs_give_no_nan(dtype):
    q, k, v = (
        t.detach() * 3 for t in qkv(1, 2, 2, 8192, 8192, 16, 16, dtype=torch.float32, grad=True)
    )
    ref = linear_attention(q, k, v, causal=True).output
    out = linear_attention(q.to(dtype), k.to(dtype), v.to(dtype), causal=True).output
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)


def test_bad_input():
    q, k, v = qkv(1, 2, 2, 4, 4, 3, 3, grad=True)
    with pytest.raises(TypeError, match="causal"):
        linear_attention(q, k, v, causal=1)
    with pytest.raises(ValueError, match="4 dimensions"):
        linear_attention(q[0], k, v)
    with pytest.raises(TypeError, match="dtype"):
        linear_attention(q, k.float(), v)


def test_threaded_head_groups_give_the_same_numbers():
    """Without autograd on several threads, heads run in parallel groups: same result."""
    q, k, v = (t.detach() for t in qkv(2, 5, 5, 150, 150, 6, 4, grad=True))
    ref = [linear_attention(q, k, v, causal=c).output for c in (False, True)]
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            out = [linear_attention(q, k, v, causal=c).output for c in (False, True)]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    for a, b in zip(out, ref):
        assert_close(a, b, **TOL[torch.float64])
