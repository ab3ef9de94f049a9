"""Solutions to the exercises of notebooks/03_demos/02_head_types_minilm.ipynb."""

from __future__ import annotations

from functools import lru_cache

import torch

from explore_attention.inspect import capture, classify_heads, load_model
from explore_attention.inspect.head_types import THRESHOLDS
from explore_attention.inspect.trace import AttentionTrace

TEXT = (
    "The quick brown fox jumps over the lazy dog. She gave him the book because he "
    "had asked for it twice. The quick brown fox jumps over the lazy dog."
)


@lru_cache(maxsize=1)
def _minilm_trace() -> AttentionTrace:
    model, tokenizer = load_model()
    return capture(model, TEXT, tokenizer)


def _one_head(A: torch.Tensor, tokens: list[str]) -> AttentionTrace:
    return AttentionTrace(A[None, None], tokens, tokens, "hand-made", "self")


def exercise_1() -> str:
    """Row 3 of the first-token head becomes [0.2, 0.1, 0.1, 0.6]."""
    A = torch.tensor([[1.0, 0, 0, 0], [0.6, 0.4, 0, 0], [0.7, 0.1, 0.2, 0], [0.2, 0.1, 0.1, 0.6]])
    types = classify_heads(_one_head(A, ["[CLS]", "cats", "sleep", "."]))
    first = float(types.scores["first_token"][0, 0])
    diagonal = float(types.scores["diagonal"][0, 0])
    assert abs(first - (0.6 + 0.7 + 0.2) / 3) < 1e-6  # 0.5, still above 0.4
    assert abs(diagonal - (1.0 + 0.4 + 0.2 + 0.6) / 4) < 1e-6  # 0.55 now beats it
    assert types.labels[0][0] == "diagonal"
    return types.labels[0][0]


def exercise_2() -> str:
    """A next-token head: none of the six patterns fits, so it is 'mixed'."""
    L = 5
    A = torch.full((L, L), 0.1 / (L - 1))
    for i in range(L):
        A[i, min(i + 1, L - 1)] = 0.9
    types = classify_heads(_one_head(A, ["a", "b", "c", "d", "e"]))
    measured = [float(s[0, 0]) for s in types.scores.values() if not s.isnan().all()]
    assert max(measured) < 0.4  # nothing reaches a threshold (broad: entropy ~0.29)
    assert types.scores["delimiter"].isnan().all()  # no delimiter token in the input
    assert types.labels[0][0] == "mixed"
    next_score = torch.stack([A[i, i + 1] for i in range(L - 1)]).mean()
    torch.testing.assert_close(next_score, torch.tensor(0.9))  # Clark's "next token" pattern
    return types.labels[0][0]


def exercise_3() -> tuple[int, int]:
    """First-token heads at threshold 0.6 vs the library's 0.4."""
    S = classify_heads(_minilm_trace()).scores["first_token"]  # (layers, heads)
    at_04 = int((THRESHOLDS["first_token"] <= S).sum())
    at_06 = int((S >= 0.6).sum())
    by_loop = sum(1 for row in S.tolist() for v in row if v >= 0.6)
    assert at_06 == by_loop
    assert 0 < at_06 < at_04  # a stricter threshold keeps fewer, but some heads clear it
    return at_04, at_06


def next_token_score(A: torch.Tensor) -> torch.Tensor:
    """Mean of a_{i,i+1} over queries i < L - 1; ``A`` is (..., L, L)."""
    L = A.shape[-1]
    i = torch.arange(L - 1)
    return A[..., i, i + 1].mean(-1)


def exercise_4() -> tuple[int, int, float]:
    """The best next-token head of MiniLM on the passage."""
    A = _minilm_trace().attentions  # (layers, heads, L, L)
    S = next_token_score(A)  # (layers, heads)
    l, h = divmod(int(S.argmax()), S.shape[1])
    loop = sum(float(A[l, h, i, i + 1]) for i in range(A.shape[-1] - 1)) / (A.shape[-1] - 1)
    assert abs(loop - float(S[l, h])) < 1e-5
    assert float(S[l, h]) > float(S.median())
    return l, h, float(S[l, h])
