"""Solutions to the exercises of notebooks/01_foundations/01_why_attention.ipynb.

Each function computes the answer with the library and asserts it; tests/test_solutions.py runs
them all.
"""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

H = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # the worked example's annotations


def exercise_1() -> torch.Tensor:
    """Scaling the state by 5 scales the scores by 5: the softmax sharpens. h_2's weight falls
    from 1/(2e^2+1) ~ 0.063 to 1/(2e^10+1) ~ 2e-5, and the context moves to the mean of h_1 and
    h_3, (1, 0.5)."""
    s = torch.tensor([10.0, 0.0])
    a = torch.softmax(H @ s, dim=0)
    assert math.isclose(a[1].item(), 1 / (2 * math.exp(10) + 1), rel_tol=1e-5)
    c = a @ H
    assert_close(c, torch.tensor([1.0, 0.5]), atol=1e-4, rtol=0)
    return c


def exercise_2() -> torch.Tensor:
    """The ideal reversal alignment is the anti-diagonal: output step i reads input L-1-i."""
    L = 5
    src = torch.tensor([3, 1, 4, 1, 5])
    A = torch.eye(L).flip(1)  # a_ij = 1 iff j = L-1-i
    onehot = torch.nn.functional.one_hot(src, 10).float()  # (L, 10): the values
    out = A @ onehot  # each output row copies one input row
    assert torch.equal(out.argmax(-1), src.flip(0))
    assert torch.equal(A.sum(-1), torch.ones(L))  # rows are distributions
    return A


def exercise_3() -> None:
    """Bahdanau's additive score by hand from the module's own parameters."""
    from explore_attention.attention.rnn import BahdanauAttention

    torch.manual_seed(0)
    attn = BahdanauAttention(query_dim=4, key_dim=6, hidden_dim=5)
    s_prev, h = torch.randn(2, 4), torch.randn(2, 7, 6)  # (B, Dq), (B, L, Dk)
    with torch.no_grad():
        res = attn(s_prev, h)
        context, weights = res.output, res.weights
        sc = attn.score
        e = sc.v(torch.tanh(sc.W(s_prev)[:, None, :] + sc.U(h)))[..., 0]  # (B, L)
        a = torch.softmax(e, dim=-1)
        c = (a[..., None] * h).sum(1)  # (B, Dk)
    assert_close(weights, a)
    assert_close(context, c)


def exercise_4() -> None:
    """A bidirectional encoder's h_j depends on *later* inputs too (so the digit needed at the
    mirror position is in h_j itself); a left-to-right GRU's h_j does not."""
    torch.manual_seed(0)
    x = torch.randn(1, 6, 3, requires_grad=True)
    for bidirectional, expect_future in ((False, False), (True, True)):
        gru = torch.nn.GRU(3, 4, batch_first=True, bidirectional=bidirectional)
        out, _ = gru(x)  # (1, 6, 4 or 8)
        (grad,) = torch.autograd.grad(out[0, 2].sum(), x)  # d h_2 / d x
        depends_on_future = bool(grad[0, 3:].abs().sum() > 0)
        assert depends_on_future == expect_future
