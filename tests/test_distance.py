"""Attention by distance: hand-made traces with known answers."""

from __future__ import annotations

import pytest
import torch

from explore_attention.inspect import AttentionTrace, attention_by_distance, mean_distance


def _trace(A: torch.Tensor, kind: str = "causal") -> AttentionTrace:
    toks = [f"t{i}" for i in range(A.shape[-1])]
    return AttentionTrace(A, toks, toks, "hand", kind)


def test_previous_token_and_first_token_heads() -> None:
    L = 6
    prev = torch.zeros(L, L)
    prev[0, 0] = 1
    prev[torch.arange(1, L), torch.arange(L - 1)] = 1  # every query on the token before it
    first = torch.zeros(L, L)
    first[:, 0] = 1  # every query on position 0
    tr = _trace(torch.stack([prev, first])[None])  # (1 layer, 2 heads, L, L)
    P = attention_by_distance(tr)
    assert P.shape == (1, 2, L)
    torch.testing.assert_close(P[0, 0], torch.tensor([1 / L, 1, 0, 0, 0, 0]))
    # first-token head: query i puts 1 at distance i, and L - d queries share distance d
    torch.testing.assert_close(P[0, 1], torch.tensor([1 / (L - d) for d in range(L)]))
    torch.testing.assert_close(mean_distance(tr)[0], torch.tensor([5 / 6, sum(range(L)) / L]))


def test_uniform_causal_head_matches_the_formula() -> None:
    L = 5
    A = torch.tril(torch.ones(L, L)) / torch.arange(1, L + 1)[:, None]  # (L, L)
    P = attention_by_distance(_trace(A[None, None]))[0, 0]
    want = [sum(1 / (i + 1) for i in range(d, L)) / (L - d) for d in range(L)]
    torch.testing.assert_close(P, torch.tensor(want))


def test_cross_attention_is_refused() -> None:
    A = torch.full((1, 1, 2, 3), 1 / 3)
    tr = AttentionTrace(A, ["a", "b"], ["x", "y", "z"], "hand", "cross")
    with pytest.raises(ValueError, match="cross"):
        attention_by_distance(tr)
    with pytest.raises(TypeError, match="AttentionTrace"):
        mean_distance(A)
