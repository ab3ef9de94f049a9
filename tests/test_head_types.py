"""inspect.head_types: constructed patterns get their label; the shipped induction model's heads."""

from __future__ import annotations

import math

import pytest
import torch

from explore_attention.inspect import AttentionTrace, classify_heads
from explore_attention.inspect.head_types import PATTERNS, THRESHOLDS


def rows(M: torch.Tensor) -> torch.Tensor:
    return M / M.sum(-1, keepdim=True)


def one_head(M: torch.Tensor, tokens: list[str], kind: str = "self") -> AttentionTrace:
    return AttentionTrace(M[None, None], tokens, tokens, "constructed", kind)


L = 8
TOKS = [f"t{i}" for i in range(L)]


def previous_token() -> torch.Tensor:
    M = torch.zeros(L, L)
    M[0, 0] = 1
    M[torch.arange(1, L), torch.arange(L - 1)] = 1
    return M


def test_each_constructed_pattern_gets_its_label():
    eye = torch.eye(L)
    sink = torch.zeros(L, L)
    sink[:, 0] = 1
    uniform = torch.full((L, L), 1 / L)
    toks_delim = ["[CLS]", "a", "b", ".", "c", "d", "e", "[SEP]"]
    delim = torch.zeros(L, L)
    delim[:, 3], delim[:, 7] = 0.5, 0.5
    cases = [
        (previous_token(), TOKS, "previous_token"),
        (eye, TOKS, "diagonal"),
        (sink, TOKS, "first_token"),
        (uniform, TOKS, "broad"),
        (delim, toks_delim, "delimiter"),
    ]
    for M, toks, want in cases:
        ht = classify_heads(one_head(M, toks))
        assert ht.labels == [[want]], (want, ht.scores)
        assert float(ht.scores[want][0, 0]) == pytest.approx(1.0)


def test_induction_needs_a_repeat_and_scores_the_token_after_the_copy():
    toks = ["A", "B", "C", "D", "A", "B", "C", "D"]
    M = torch.zeros(L, L)
    for i in range(L):
        M[i, i - 3 if i >= 4 else 0] = 1  # query A(4) -> B(1), B(5) -> C(2), ...
    ht = classify_heads(one_head(M, toks, "causal"))
    assert ht.labels == [["induction"]]
    assert float(ht.scores["induction"][0, 0]) == pytest.approx(1.0)
    # no repeated token: induction is not measurable (nan) and cannot win
    ht2 = classify_heads(one_head(M, TOKS, "causal"))
    assert math.isnan(float(ht2.scores["induction"][0, 0]))
    assert ht2.labels[0][0] != "induction"


def test_below_every_threshold_is_mixed_and_scores_are_exact():
    g = torch.Generator().manual_seed(0)
    # 0.6 on the previous token, 0.4 on itself: both reach 0.4, the higher one wins
    M = 0.6 * previous_token() + 0.4 * torch.eye(L)
    M[0] = torch.eye(L)[0]
    ht = classify_heads(one_head(M, TOKS, "causal"))
    assert float(ht.scores["previous_token"][0, 0]) == pytest.approx(0.6)
    assert float(ht.scores["diagonal"][0, 0]) == pytest.approx(0.4)
    assert ht.labels == [["previous_token"]]
    # a peaked but patternless head: spread over 3 random keys, far from uniform
    M = torch.zeros(L, L)
    for i in range(L):
        M[i, torch.randperm(L, generator=g)[:3]] = torch.tensor([0.34, 0.33, 0.33])
    M[:, 0] = 0
    M[torch.arange(L), torch.arange(L)] = 0
    M[torch.arange(1, L), torch.arange(L - 1)] = 0
    M = rows(M + 1e-3)
    ht = classify_heads(one_head(M, TOKS))
    measured = {
        p: float(ht.scores[p][0, 0]) for p in PATTERNS if p not in ("induction", "delimiter")
    }
    assert all(v < THRESHOLDS[p] for p, v in measured.items()), measured
    assert ht.labels == [["mixed"]]


def test_ranked_and_to_dict_and_bad_input():
    A = torch.stack([previous_token(), torch.eye(L)])[None]  # (1, 2, L, L)
    ht = classify_heads(AttentionTrace(A, TOKS, TOKS, "m", "causal"))
    assert ht.labels == [["previous_token", "diagonal"]]
    assert [r[:2] for r in ht.ranked("previous_token")] == [(0, 0), (0, 1)]
    d = ht.to_dict()
    assert d["scores"]["induction"] == [[None, None]] and d["labels"] == ht.labels
    with pytest.raises(ValueError, match="pattern must be one of"):
        ht.ranked("nonsense")
    with pytest.raises(TypeError, match="trace must be an AttentionTrace"):
        classify_heads(A)
    cross = AttentionTrace(torch.ones(1, 1, 2, 3) / 3, ["a", "b"], ["x", "y", "z"], "m", "cross")
    with pytest.raises(ValueError, match="'cross'"):
        classify_heads(cross)


def test_shipped_induction_model_has_previous_token_then_induction_heads():
    """Olsson et al.'s circuit, found by the classifier in the trained 2-layer model."""
    from explore_attention.app.models import checkpoints_dir
    from explore_attention.inspect import capture
    from explore_attention.tasks.induction import induction_scores, repeated_tokens
    from explore_attention.train import load_checkpoint

    model, _ = load_checkpoint(checkpoints_dir() / "induction-2l")
    g = torch.Generator().manual_seed(1)
    x = repeated_tokens(1, 16, model.config.vocab_size, generator=g)  # (1, 32)
    if len(set(x[0, :16].tolist())) < 16:  # keep the reference's targets the only copies
        x = torch.cat([torch.randperm(model.config.vocab_size, generator=g)[:16]] * 2)[None]
    toks = [str(t) for t in x[0].tolist()]
    trace = capture(model, x, tokens=toks)
    ht = classify_heads(trace)
    assert "previous_token" in ht.labels[0]
    assert "induction" in ht.labels[1]
    # the same number as the task's own measure (a second implementation), on this input
    ref = induction_scores(model, x)  # (layers, heads), queries in the second half only
    best = ht.ranked("induction")[0]
    assert best[0] == 1
    # with no repeats inside a half, the induction targets are exactly the task's i - T + 1
    torch.testing.assert_close(ht.scores["induction"], ref, atol=1e-6, rtol=0)
    assert float(ref[1].max()) > 0.5
