"""Performer FAVOR+ against exact softmax attention: error shrinks as features grow."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.testing import assert_close

from explore_attention.attention import attend, masks
from explore_attention.attention.linear import orthogonal_random_features, performer_attention

pytestmark = pytest.mark.usefixtures("one_thread")


def data(L=64, D=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, 2, L, D, generator=g, dtype=torch.float64) for _ in range(3))
    return q * 0.5, k * 0.5, v


def mean_error(num_features, causal, seeds=range(6)):
    """Relative Frobenius error vs exact attention, averaged over feature draws."""
    q, k, v = data()
    exact = attend(q, k, v, mask_mod=masks.causal if causal else None, backend="reference").output
    errs = []
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        approx = performer_attention(q, k, v, num_features=num_features, causal=causal, generator=g)
        errs.append(((approx.output - exact).norm() / exact.norm()).item())
    return sum(errs) / len(errs)


@pytest.mark.parametrize("causal", [False, True])
def test_error_shrinks_as_features_grow(causal):
    errors = [mean_error(m, causal) for m in (8, 32, 128, 512, 2048)]
    print("Performer relative error vs num_features 8..2048:", [f"{e:.3f}" for e in errors])
    assert all(a > b for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] < 0.1 < errors[0]


def test_same_generator_same_result_and_weights_consistent():
    q, k, v = data(L=20)
    a = performer_attention(
        q, k, v, num_features=64, generator=torch.Generator().manual_seed(3), return_weights=True
    )
    b = performer_attention(q, k, v, num_features=64, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.output, b.output)
    assert_close(a.weights @ v, a.output, atol=1e-10, rtol=1e-7)
    assert (a.weights > 0).all()  # positive features: every implied weight is positive
    exact = attend(q, k, v, backend="reference").weights
    assert (a.weights - exact).abs().max() < 0.2


def test_orthogonal_blocks():
    w = orthogonal_random_features(32, 16, generator=torch.Generator().manual_seed(0))
    blk = w[:16] / w[:16].norm(dim=1, keepdim=True)
    assert_close(blk @ blk.T, torch.eye(16), atol=1e-5, rtol=0)


def test_low_precision_no_nan():
    q, k, v = (t.float() for t in data(L=4096))
    out = performer_attention(
        q.bfloat16(),
        k.bfloat16(),
        v.bfloat16(),
        num_features=64,
        causal=True,
        generator=torch.Generator().manual_seed(0),
    ).output
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_bad_input():
    q, k, v = data(L=4)
    with pytest.raises(ValueError, match="num_features"):
        performer_attention(q, k, v, num_features=0)
    with pytest.raises(TypeError, match="num_features"):
        performer_attention(q, k, v, num_features=2.5)
    with pytest.raises(TypeError, match="generator"):
        performer_attention(q, k, v, num_features=4, generator=3)
