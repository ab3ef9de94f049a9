"""Performer FAVOR+ (Choromanski et al. 2020, arXiv:2009.14794): an unbiased kernel estimate,
a causal form that never reads a later key, and an error that shrinks as features grow."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from conftest import TOL
from torch.testing import assert_close

from explore_attention.attention import attend, masks
from explore_attention.attention.linear import EPS
from explore_attention.attention.performer import (
    favor_features,
    orthogonal_random_features,
    performer_attention,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def data(L=64, D=16, seed=0, Lq=None, grad=False):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, 2, L if Lq is None else Lq, D, generator=g, dtype=torch.float64)
    k, v = (torch.randn(1, 2, L, D, generator=g, dtype=torch.float64) for _ in range(2))
    return [t.requires_grad_(grad) for t in (q * 0.5, k * 0.5, v)]


def reference(q, k, v, omega, causal):
    """The module docstring's formula, query by query in float64: query features scaled by
    their own max, key features by the largest key log-feature among the keys the query sees.
    The maxima are constants for autograd (they cancel in the ratio up to the ε)."""
    D = q.shape[-1]
    x, y = q / D**0.25, k / D**0.25
    lq = x @ omega.T - (x * x).sum(-1, keepdim=True) / 2  # (B, H, Lq, m)
    lk = y @ omega.T - (y * y).sum(-1, keepdim=True) / 2  # (B, H, Lk, m)
    Lq, Lk = q.shape[2], k.shape[2]
    rows = []
    for i in range(Lq):
        seen = i + Lk - Lq + 1 if causal else Lk  # keys 0 .. seen-1
        if seen <= 0:
            rows.append(torch.zeros_like(v[:, :, 0]))
            continue
        fq = torch.exp(lq[:, :, i] - lq[:, :, i].amax(-1, keepdim=True).detach())  # (B, H, m)
        top = lk[:, :, :seen].amax(dim=(-2, -1), keepdim=True).detach()
        fk = torch.exp(lk[:, :, :seen] - top)  # (B, H, seen, m)
        a = torch.einsum("bhm,bhjm->bhj", fq, fk) / omega.shape[0]  # (B, H, seen)
        rows.append((a.unsqueeze(-1) * v[:, :, :seen]).sum(2) / (a.sum(-1, keepdim=True) + EPS))
    return torch.stack(rows, 2)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("Lq", "Lk"), [(150, 150), (40, 150), (150, 40)])
@pytest.mark.parametrize("super_chunks", [1, 32])
def test_matches_stabilised_formula_forward_and_backward(monkeypatch, causal, Lq, Lk, super_chunks):
    """Chunks of 64 and passes of 1 or 32 chunks: the running-max rescaling is exact."""
    from explore_attention.attention import linear

    monkeypatch.setattr(linear, "SUPER_CHUNKS", super_chunks)
    q, k, v = data(L=Lk, Lq=Lq, grad=True)
    with torch.no_grad():
        k[:, :, 70:75] *= 6  # a few long keys: the running max jumps inside a later chunk
    mask_mod = masks.causal if causal else None
    res = performer_attention(
        q, k, v, num_features=24, mask_mod=mask_mod, generator=torch.Generator().manual_seed(1)
    )
    omega = orthogonal_random_features(
        24, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    ref = reference(q, k, v, omega, causal)
    assert_close(res.output, ref, **TOL[torch.float64])
    assert_close(res.weights @ v, res.output, **TOL[torch.float64])
    fast = performer_attention(
        q,
        k,
        v,
        num_features=24,
        mask_mod=mask_mod,
        generator=torch.Generator().manual_seed(1),
        return_weights=False,
    ).output
    assert_close(fast, ref, **TOL[torch.float64])
    g = torch.randn_like(ref)
    for a, b in zip(
        torch.autograd.grad(fast, (q, k, v), g), torch.autograd.grad(ref, (q, k, v), g), strict=True
    ):
        assert_close(a, b, **TOL[torch.float64])


@pytest.mark.parametrize("return_weights", [False, True])
def test_causal_output_ignores_a_later_key(return_weights):
    """Changing only the last key leaves every earlier output unchanged. The new key lies along
    a feature direction, ``k = D^{1/4} ω₀``, so its log-feature ``‖ω₀‖²/2 ≈ 32`` dwarfs every
    earlier key's: a max over all keys (the old stabiliser) then shrinks the earlier keys'
    features below the normaliser's ε and moves earlier outputs by O(1)."""
    q, k, v = data(L=150, D=64, seed=3)
    omega = orthogonal_random_features(
        64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    k2 = k.clone()
    k2[:, :, -1] = 64**0.25 * omega[0]
    out = [
        performer_attention(
            q,
            kk,
            v,
            num_features=64,
            mask_mod=masks.causal,
            generator=torch.Generator().manual_seed(0),
            return_weights=return_weights,
        )
        for kk in (k, k2)
    ]
    assert_close(out[0].output[:, :, :-1], out[1].output[:, :, :-1], atol=1e-13, rtol=0)
    assert (out[0].output[:, :, -1] - out[1].output[:, :, -1]).abs().max() > 1e-3
    if return_weights:
        assert_close(out[0].weights[:, :, :-1], out[1].weights[:, :, :-1], atol=1e-13, rtol=0)


def test_orthogonal_rows_are_standard_gaussian():
    """Over 2,000 draws, each row's coordinates have mean 0 and variance 1 (Haar blocks times
    chi lengths); an unfixed QR sign puts the first row's first coordinate always below 0."""
    w = torch.stack(
        [
            orthogonal_random_features(8, 8, generator=torch.Generator().manual_seed(s))
            for s in range(2000)
        ]
    ).double()  # (draws, m, D)
    se = w.std(0) / math.sqrt(w.shape[0])
    assert (w.mean(0).abs() < 4 * se).all(), (w.mean(0) / se).abs().max()
    assert_close(w.var(0), torch.ones(8, 8, dtype=torch.float64), atol=0.15, rtol=0)
    blk = w[0] / w[0].norm(dim=1, keepdim=True)
    assert_close(blk @ blk.T, torch.eye(8, dtype=torch.float64), atol=1e-6, rtol=0)


@pytest.mark.parametrize(("D", "y1", "y2"), [(4, 0.5, 0.0), (8, 0.5, 0.0), (8, 0.3, 0.3)])
def test_kernel_estimate_is_unbiased(D, y1, y2):
    """Lemma 1: E[φ(x)ᵀφ(y)] = exp(xᵀy). The mean of 2,000 independent estimates (orthogonal
    blocks of m = D features) lies within 4 standard errors of the exact kernel. ``x`` lies
    along e₁, where an unfixed QR sign biases the first feature (the old code was 13, 10 and
    6 standard errors low here)."""
    draws = 2000
    x = torch.zeros(1, 1, 1, D, dtype=torch.float64)
    y = torch.zeros(1, 1, 1, D, dtype=torch.float64)
    x[..., 0], y[..., 0], y[..., 1] = 0.5, y1, y2
    estimates = []
    for s in range(draws):
        omega = orthogonal_random_features(
            D, D, generator=torch.Generator().manual_seed(s), dtype=torch.float64
        )
        (fx, cx), (fy, cy) = favor_features(x, omega), favor_features(y, omega)
        estimates.append(float((fx * fy).sum() * torch.exp(cx + cy)))  # φ = φ̂ e^c
    est = torch.tensor(estimates, dtype=torch.float64)
    exact = math.exp(float((x * y).sum()))
    se = float(est.std()) / math.sqrt(draws)
    assert abs(float(est.mean()) - exact) < 4 * se, (float(est.mean()), exact, se)


def mean_error(num_features, causal, seeds=range(6)):
    """Relative Frobenius error vs exact attention, averaged over feature draws."""
    q, k, v = data()
    exact = attend(q, k, v, mask_mod=masks.causal if causal else None, backend="reference").output
    errs = []
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        approx = performer_attention(
            q,
            k,
            v,
            num_features=num_features,
            mask_mod=masks.causal if causal else None,
            generator=g,
            return_weights=False,
        )
        errs.append(((approx.output - exact).norm() / exact.norm()).item())
    return sum(errs) / len(errs)


@pytest.mark.parametrize("causal", [False, True])
def test_error_shrinks_as_features_grow(causal):
    """DESIGN §6: the approximation improves with capacity (roughly as 1/√m)."""
    errors = [mean_error(m, causal) for m in (8, 32, 128, 512, 2048)]
    print("Performer relative error vs num_features 8..2048:", [f"{e:.3f}" for e in errors])
    assert all(a > b for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] < 0.1 < errors[0]


def test_same_generator_same_result_and_weights_consistent():
    q, k, v = data(L=20)
    a = performer_attention(q, k, v, num_features=64, generator=torch.Generator().manual_seed(3))
    b = performer_attention(
        q, k, v, num_features=64, generator=torch.Generator().manual_seed(3), return_weights=False
    )
    assert b.weights is None
    assert_close(a.output, b.output, **TOL[torch.float64])
    assert_close(a.weights @ v, a.output, **TOL[torch.float64])
    assert (a.weights > 0).all()  # positive features: every implied weight is positive
    exact = attend(q, k, v, backend="reference").weights
    assert (a.weights - exact).abs().max() < 0.2


def test_low_precision_no_nan():
    q, k, v = (t.float() for t in data(L=4096))
    out = performer_attention(
        q.bfloat16(),
        k.bfloat16(),
        v.bfloat16(),
        num_features=64,
        mask_mod=masks.causal,
        generator=torch.Generator().manual_seed(0),
        return_weights=False,
    ).output
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_long_keys_do_not_overflow():
    """Key log-features of several hundred would overflow exp: the stabiliser keeps them."""
    q, k, v = (t.float() for t in data(L=300))
    res = performer_attention(
        q * 20, k * 20, v, num_features=32, mask_mod=masks.causal, return_weights=False
    )
    assert torch.isfinite(res.output).all()


def test_bad_input():
    q, k, v = data(L=4)
    with pytest.raises(ValueError, match="num_features"):
        performer_attention(q, k, v, num_features=0)
    with pytest.raises(TypeError, match="num_features"):
        performer_attention(q, k, v, num_features=2.5)
    with pytest.raises(TypeError, match="generator"):
        performer_attention(q, k, v, num_features=4, generator=3)
    with pytest.raises(NotImplementedError, match=r"Performer attention supports .*masks\.causal"):
        performer_attention(q, k, v, num_features=4, mask_mod=masks.sliding_window(2))


def test_threaded_head_groups_give_the_same_numbers():
    """Without autograd on several threads, heads run in parallel groups (each with its slice
    of the key log-scales): the same numbers as one thread."""
    q, k, v = (t.repeat(1, 3, 1, 1) for t in data(L=150))  # 6 heads
    kw = {"num_features": 32, "return_weights": False}
    for mask_mod in (None, masks.causal):
        ref = performer_attention(
            q, k, v, mask_mod=mask_mod, generator=torch.Generator().manual_seed(2), **kw
        ).output
        torch.set_num_threads(2)
        try:
            with torch.no_grad():
                out = performer_attention(
                    q, k, v, mask_mod=mask_mod, generator=torch.Generator().manual_seed(2), **kw
                ).output
        finally:
            torch.set_num_threads(1)
        assert_close(out, ref, **TOL[torch.float64])
