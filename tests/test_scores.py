"""Score functions against explicit float64 formulas (Luong 2015 Eq. 8; Bahdanau 2014 A.1.2)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TOL

from explore_attention.attention import scores


def test_dot_and_scaled_dot():
    q = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    k = torch.randn(2, 3, 4, 7, dtype=torch.float64)
    ref = torch.einsum("bhid,bhjd->bhij", q, k)
    torch.testing.assert_close(scores.dot(q, k), ref, **TOL[torch.float64])
    torch.testing.assert_close(scores.scaled_dot(q, k), ref / math.sqrt(7), **TOL[torch.float64])
    torch.testing.assert_close(
        scores.scaled_dot(q, k, scale=-2.0), -2.0 * ref, **TOL[torch.float64]
    )
    # one entry by the definition
    assert scores.dot(q, k)[1, 2, 3, 1].item() == pytest.approx(
        float((q[1, 2, 3] * k[1, 2, 1]).sum())
    )


def test_general_is_q_w_k():
    torch.manual_seed(0)
    g = scores.General(5, 3).double()
    q = torch.randn(2, 4, 5, dtype=torch.float64)
    k = torch.randn(2, 6, 3, dtype=torch.float64)
    ref = torch.einsum("bip,pq,bjq->bij", q, g.weight, k)
    torch.testing.assert_close(g(q, k), ref, **TOL[torch.float64])


def test_additive_is_v_tanh_wq_plus_uk():
    torch.manual_seed(0)
    a = scores.Additive(5, 3, 8).double()
    q = torch.randn(2, 4, 5, dtype=torch.float64)
    k = torch.randn(2, 6, 3, dtype=torch.float64)
    ref = torch.empty(2, 4, 6, dtype=torch.float64)
    W, U, bU, v = a.W.weight, a.U.weight, a.U.bias, a.v.weight[0]
    for b in range(2):
        for i in range(4):
            for j in range(6):
                ref[b, i, j] = v @ torch.tanh(W @ q[b, i] + U @ k[b, j] + bU)
    torch.testing.assert_close(a(q, k), ref, **TOL[torch.float64])
    torch.testing.assert_close(a(q, k, projected_keys=a.project_keys(k)), ref, **TOL[torch.float64])


def test_scores_have_gradients():
    a = scores.Additive(4, 4, 6).double()
    q = torch.randn(1, 3, 4, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: a(x, y), (q, k))
    g = scores.General(4, 4).double()
    assert torch.autograd.gradcheck(lambda x, y: g(x, y), (q, k))
    assert torch.autograd.gradcheck(scores.scaled_dot, (q, k))


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"share the feature dim: q \(2, 3\), k \(4, 5\)"):
        scores.dot(torch.randn(2, 3), torch.randn(4, 5))
    with pytest.raises(ValueError, match="share leading dims"):
        scores.dot(torch.randn(2, 3, 4), torch.randn(3, 3, 4))
    with pytest.raises(ValueError, match=r"q must have shape \(\.\.\., L, D\)"):
        scores.scaled_dot(torch.randn(3), torch.randn(3, 3))
    with pytest.raises(TypeError, match=r"k must be a torch\.Tensor"):
        scores.dot(torch.randn(2, 3), [[1.0] * 3])
    with pytest.raises(ValueError, match=r"expected q \(\.\.\., Lq, 5\) and k \(\.\.\., Lk, 3\)"):
        scores.General(5, 3)(torch.randn(1, 2, 5), torch.randn(1, 2, 4))
    with pytest.raises(ValueError, match="hidden_dim must be a positive int, got 0"):
        scores.Additive(2, 2, 0)
    with pytest.raises(ValueError, match="query_dim"):
        scores.General(0, 2)
