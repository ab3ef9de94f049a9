"""Solutions to the exercises of notebooks/02_types/01_additive_vs_multiplicative.ipynb.

Each ``exercise_N`` computes the answer with the library and asserts it (tests/test_solutions.py
calls every one).
"""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from explore_attention.attention.core import masked_softmax
from explore_attention.attention.rnn import LuongAttention, LuongLocalAttention


def exercise_1() -> list[float]:
    """s = (0, 1): dot scores 0, 1, 1 -> h2 and h3 tie at e / (2e + 1)."""
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    s = torch.tensor([0.0, 1.0])
    w = LuongAttention(2, 2, "dot")(s[None], h[None]).weights
    big, small = math.e / (2 * math.e + 1), 1 / (2 * math.e + 1)
    assert_close(w[0], torch.tensor([small, big, big]))
    return w[0].tolist()


def _nonzero_at(p_t: float, window: int = 5, S: int = 10) -> int:
    """Non-zero local-p weights when the predicted position is exactly ``p_t``."""
    local = LuongLocalAttention(2, 2, "dot", window=window, alignment="predictive")
    # choose v_p so that S · sigmoid(v_pᵀ tanh(W_p h)) = p_t for h = e_1 and W_p = I
    with torch.no_grad():
        local.position[0].weight.copy_(torch.eye(2))
        z = math.log(p_t / (S - p_t))  # sigmoid(z) = p_t / S
        local.position[2].weight.copy_(torch.tensor([[z / math.tanh(1.0), 0.0]]))
    h_t = torch.tensor([[1.0, 0.0]])
    assert_close(local.aligned_position(h_t, torch.tensor([S])).detach(), torch.tensor([p_t]))
    with torch.no_grad():
        w = local(h_t, torch.randn(1, S, 2)).weights
    return int((w > 0).sum())


def exercise_2() -> tuple[int, int]:
    """p_t = 4.3: s ∈ {3, 4, 5, 6} (4 positions); p_t = 4.0: s ∈ {2..6} (5 positions)."""
    real, integer = _nonzero_at(4.3), _nonzero_at(4.0)
    assert (real, integer) == (4, 5)
    return real, integer


def _train_reversal(window: int, steps: int = 40) -> torch.Tensor:
    """The notebook's §5 task with local-p; returns the learned p_t for each step."""
    torch.manual_seed(1)
    V, L, D = 20, 8, 16
    embed, step_code = torch.randn(V, D), torch.eye(L)
    attn = LuongLocalAttention(D + L, D, "general", window=window, alignment="predictive")
    opt = torch.optim.Adam(attn.parameters(), lr=2e-2)
    target = torch.arange(L).flip(0)
    for _ in range(steps):
        keys = embed[torch.randint(0, V, (32, L))]
        noisy = keys[:, target] + 0.3 * torch.randn(32, L, D)
        queries = torch.cat([noisy, step_code.expand(32, L, L)], -1)
        w = torch.stack([attn(queries[:, t], keys).weights for t in range(L)], 1)
        loss = -torch.log(w[:, torch.arange(L), target] + 1e-6).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        queries = torch.cat([torch.zeros(L, D), step_code], -1)
        return attn.aligned_position(queries, torch.full((L,), L))


def exercise_3() -> tuple[float, float]:
    """window 5 leaves step 0 (answer 8) stuck near 4; window 9 (D = 4) reaches it."""
    narrow, wide = _train_reversal(5), _train_reversal(9)
    assert abs(float(narrow[0]) - 8) > 2, narrow
    assert abs(float(wide[0]) - 8) < 1, wide
    # a wider window puts the answer inside the window from the start: it gets a gradient
    return float(narrow[0]), float(wide[0])


def exercise_4() -> float:
    """Local-m over the whole sentence is global attention; local-p is not (Gaussian)."""
    torch.manual_seed(4)
    S = 8
    h_t, h_bar = torch.randn(3, 5), torch.randn(3, S, 5)
    glob = LuongAttention(5, 5, "general")
    local_m = LuongLocalAttention(5, 5, "general", window=2 * S + 1, alignment="monotonic")
    local_m.load_state_dict(glob.state_dict())
    a, b = local_m(h_t, h_bar, step=3), glob(h_t, h_bar)
    assert_close(a.output, b.output)
    assert_close(a.weights, b.weights)
    local_p = LuongLocalAttention(5, 5, "general", window=2 * S + 1, alignment="predictive")
    local_p.load_state_dict(glob.state_dict(), strict=False)
    with torch.no_grad():
        w_p = local_p(h_t, h_bar).weights
    gap = float((w_p.sum(-1) - 1).abs().max())
    assert gap > 0.01  # the Gaussian (σ = D/2 = 4) still shrinks weights away from p_t
    return gap


def exercise_5() -> torch.Tensor:
    """Local-m for all steps at once with a (T, S) window mask and masked_softmax."""
    torch.manual_seed(5)
    T, S, D = 6, 9, 2
    local = LuongLocalAttention(4, 4, "general", window=2 * D + 1, alignment="monotonic")
    h_dec, h_bar = torch.randn(T, 4), torch.randn(S, 4)
    scores = h_dec @ local.score.weight @ h_bar.T  # (T, S)
    t = torch.arange(T)[:, None]
    s = torch.arange(S)[None, :]
    weights = masked_softmax(scores, (s - t).abs() <= D)  # p_t = t, both 0-based here
    for step in range(T):
        w = local(h_dec[step : step + 1], h_bar[None], step=step).weights
        assert_close(weights[step], w[0])
    return weights
