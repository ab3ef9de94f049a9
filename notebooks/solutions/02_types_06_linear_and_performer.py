"""Solutions to the exercises of notebooks/02_types/06_linear_and_performer.ipynb.

Each ``exercise_N`` computes the answer with the library and asserts it (tests/test_solutions.py
calls every one).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.testing import assert_close

from explore_attention.attention import attend, linear, masks, performer

PHI_Q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
PHI_K = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])


def exercise_1() -> list[float]:
    """V = (1, 0, 0): AV = first column of A = (1, 1, 2); / (2, 2, 4) = (0.5, 0.5, 0.5)."""
    v = torch.tensor([[1.0], [0.0], [0.0]])
    out = linear.linear_attention_from_features(PHI_Q[None, None], PHI_K[None, None], v[None, None])
    assert_close(out.output[0, 0, :, 0], torch.tensor([0.5, 0.5, 0.5]), atol=1e-5, rtol=1e-5)
    return out.output[0, 0, :, 0].tolist()


def exercise_2() -> float:
    """x = y = 0: ‖x+y‖ = 0 so Lemma 2 gives MSE 0; φ(0) = (1/√m, …) and φ(0)·φ(0) = 1 = e^0."""
    m, D = 16, 8
    omega = performer.orthogonal_random_features(m, D, generator=torch.Generator().manual_seed(0))
    phi_hat, log_scale = performer.favor_features(torch.zeros(1, 1, 1, D), omega)
    phi = phi_hat * torch.exp(log_scale).unsqueeze(-1)  # undo the stabilising shift
    assert_close(phi[0, 0, 0], torch.full((m,), 1 / math.sqrt(m)))
    estimate = float((phi[0, 0, 0] ** 2).sum())
    assert abs(estimate - 1.0) < 1e-6  # exact for every draw: zero error
    s2 = 0.0
    lemma = math.exp(s2) * 1.0**2 * (1 - math.exp(-s2)) / m
    assert lemma == 0.0
    return estimate


def exercise_3() -> float:
    """Changing the last 8 keys/values leaves the first 16 causal outputs unchanged."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 24, 8, generator=g, dtype=torch.float64) for _ in range(3))
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 16:] = torch.randn(1, 2, 8, 8, generator=g, dtype=torch.float64) * 5
    v2[:, :, 16:] = torch.randn(1, 2, 8, 8, generator=g, dtype=torch.float64) * 5
    a = linear.linear_attention(q, k, v, mask_mod=masks.causal).output
    b = linear.linear_attention(q, k2, v2, mask_mod=masks.causal).output
    gap = float((a[:, :, :16] - b[:, :, :16]).abs().max())
    assert gap < 1e-12
    assert float((a[:, :, 16:] - b[:, :, 16:]).abs().max()) > 1e-3  # the rest does move
    return gap


def _mse(x: torch.Tensor, y: torch.Tensor, draw, n: int) -> float:
    sm = math.exp(float(x @ y))
    errs = []
    for _ in range(n):
        w = draw()  # (m, D)
        m = w.shape[0]
        fx = torch.exp(w @ x - x @ x / 2) / math.sqrt(m)
        fy = torch.exp(w @ y - y @ y / 2) / math.sqrt(m)
        errs.append((float(fx @ fy) - sm) ** 2)
    return sum(errs) / n


def exercise_4() -> tuple[float, float]:
    """Orthogonal features give a lower MSE than i.i.d. ones for the same m = D = 16."""
    g = torch.Generator().manual_seed(0)
    D = m = 16
    x = torch.randn(D, generator=g, dtype=torch.float64) * 0.25
    y = torch.randn(D, generator=g, dtype=torch.float64) * 0.25
    iid = _mse(x, y, lambda: torch.randn(m, D, generator=g, dtype=torch.float64), 3000)
    ortho = _mse(
        x,
        y,
        lambda: performer.orthogonal_random_features(m, D, generator=g, dtype=torch.float64),
        3000,
    )
    assert ortho < iid
    return iid, ortho


def exercise_5() -> tuple[float, float]:
    """relu + 1e-3 features: matches its quadratic form; compare both kernels' errors."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 24, 8, generator=g, dtype=torch.float64) for _ in range(3))

    def relu_phi(x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) + 1e-3

    out = linear.linear_attention_from_features(relu_phi(q), relu_phi(k), v).output
    a = relu_phi(q) @ relu_phi(k).transpose(-1, -2)
    assert_close(out, (a @ v) / (a.sum(-1, keepdim=True) + linear.EPS), atol=1e-10, rtol=1e-7)
    exact = attend(q, k, v).output

    def err(o: torch.Tensor) -> float:
        return float((o - exact).norm() / exact.norm())

    e_relu, e_elu = err(out), err(linear.linear_attention(q, k, v).output)
    assert min(e_relu, e_elu) > 0.05  # both are different attentions, neither is exact
    return e_relu, e_elu
