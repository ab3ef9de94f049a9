"""Linear attention (elu+1) against the quadratic formula with the same feature map, float64."""

from __future__ import annotations

import pytest
import torch
from conftest import TOL, qkv
from torch.testing import assert_close

from explore_attention.attention import masks
from explore_attention.attention.linear import (
    EPS,
    elu_feature_map,
    linear_attention,
    linear_attention_from_features,
)

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
    res = linear_attention(q, k, v, mask_mod=masks.causal if causal else None)
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
    out = linear_attention(q, k, v, mask_mod=masks.causal, return_weights=False).output
    ref, _ = quadratic(q, k, v, True)
    assert_close(out, ref, **TOL[torch.float64])
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(out, (q, k, v), g), torch.autograd.grad(ref, (q, k, v), g)):
        assert_close(a, b, **TOL[torch.float64])


def test_implied_weights_rows_sum_to_one_and_reproduce_output():
    q, k, v = qkv(1, 2, 2, 33, 33, 4, 4, grad=True)
    res = linear_attention(q, k, v, mask_mod=masks.causal)
    assert_close(res.weights.sum(-1), torch.ones(1, 2, 33, dtype=torch.float64), atol=1e-5, rtol=0)
    assert torch.all(res.weights.triu(1) == 0)
    assert_close(res.weights @ v, res.output, **TOL[torch.float64])
    assert linear_attention(q, k, v, return_weights=False).weights is None


def test_causal_does_not_leak_future():
    q, k, v = qkv(1, 2, 2, 64, 64, 4, 4, grad=True)
    out = linear_attention(q, k, v, mask_mod=masks.causal, return_weights=False).output
    gk, gv = torch.autograd.grad(out[:, :, 20].sum(), (k, v))
    assert torch.all(gk[:, :, 21:] == 0) and torch.all(gv[:, :, 21:] == 0)
    assert gv[:, :, :21].abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_long_low_precision_inputs_give_no_nan(dtype):
    q, k, v = (
        t.detach() * 3 for t in qkv(1, 2, 2, 8192, 8192, 16, 16, dtype=torch.float32, grad=True)
    )
    ref = linear_attention(q, k, v, mask_mod=masks.causal, return_weights=False).output
    out = linear_attention(
        q.to(dtype), k.to(dtype), v.to(dtype), mask_mod=masks.causal, return_weights=False
    ).output
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)


def test_bad_input():
    q, k, v = qkv(1, 2, 2, 4, 4, 3, 3, grad=True)
    with pytest.raises(TypeError, match="return_weights must be a bool"):
        linear_attention(q, k, v, return_weights=1)
    with pytest.raises(ValueError, match="4 dimensions"):
        linear_attention(q[0], k, v)
    with pytest.raises(TypeError, match="dtype"):
        linear_attention(q, k.float(), v)


def test_threaded_head_groups_give_the_same_numbers():
    """Without autograd on several threads, heads run in parallel groups: same result."""
    q, k, v = (t.detach() for t in qkv(2, 5, 5, 150, 150, 6, 4, grad=True))
    ref = [linear_attention(q, k, v, mask_mod=m).output for m in (None, masks.causal)]
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            out = [
                linear_attention(q, k, v, mask_mod=m, return_weights=False).output
                for m in (None, masks.causal)
            ]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    for a, b in zip(out, ref):
        assert_close(a, b, **TOL[torch.float64])


@pytest.mark.parametrize(
    "mask_mod", [masks.sliding_window(4), masks.full, lambda b, h, q, kv: kv <= q]
)
def test_masks_other_than_causal_are_refused_by_name(mask_mod):
    """Causal is a mask (docs/design.md): the prefix-sum form can honour no other one."""
    q, k, v = qkv(1, 2, 2, 4, 4, 3, 3, grad=True)
    with pytest.raises(NotImplementedError, match=r"linear attention supports .*masks\.causal"):
        linear_attention(q, k, v, mask_mod=mask_mod)


def test_weights_are_returned_by_default():
    """Mechanisms default to return_weights=True, like attend (docs/design.md, Vocabulary)."""
    q, k, v = qkv(1, 2, 2, 5, 5, 3, 3, grad=True)
    assert linear_attention(q, k, v).weights.shape == (1, 2, 5, 5)


def test_features_function_checks_its_inputs():
    q, k, v = (t.detach() for t in qkv(1, 2, 1, 4, 4, 3, 3, grad=True))
    with pytest.raises(ValueError, match="same heads"):
        linear_attention_from_features(q, k, v)
    k2 = k.repeat(1, 2, 1, 1)
    v2 = v.repeat(1, 2, 1, 1)
    with pytest.raises(ValueError, match=r"key_log_scale must have shape \(B, H, Lk\)"):
        linear_attention_from_features(q, k2, v2, key_log_scale=torch.zeros(1, 2, 3))
