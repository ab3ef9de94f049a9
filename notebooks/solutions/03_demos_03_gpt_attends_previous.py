"""Solutions to the exercises of notebooks/03_demos/03_gpt_attends_previous.ipynb."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F

from explore_attention.data.text import pydoc_text
from explore_attention.inspect import (
    AttentionTrace,
    capture,
    classify_heads,
    load_model,
    mean_distance,
)
from explore_attention.train import load_checkpoint

CKPT = Path(str(resources.files("explore_attention") / "checkpoints"))


def exercise_1() -> tuple[float, float, float]:
    """induction-2l on 8 random tokens repeated: the induction head and the copying survive."""
    model, _ = load_checkpoint(CKPT / "induction-2l")
    vocab = model.lm_head.out_features
    ids = torch.randint(0, vocab, (8,), generator=torch.Generator().manual_seed(1))
    x = torch.cat([ids, ids])  # (16,)
    with torch.no_grad():
        logits = model(x[None]).logits[0]  # (16, V)
    nll = F.cross_entropy(logits[:-1], x[1:], reduction="none")  # (15,)
    first, second = nll[:7].mean().item(), nll[8:].mean().item()
    tr = capture(model, x, tokens=[f"t{int(i)}" for i in x])
    best = classify_heads(tr).ranked("induction")[0][2]
    assert best > 0.5, best
    assert second < 0.5 * first, (first, second)
    return best, first, second


def exercise_2() -> tuple[float, float]:
    """A sink head: 0.9 on token 0, 0.1 spread over the other visible keys."""
    L = 8
    A = torch.zeros(L, L)
    A[0, 0] = 1.0
    for i in range(1, L):
        A[i, 0] = 0.9
        A[i, 1 : i + 1] = 0.1 / i  # the i other keys 1..i
    toks = [f"w{i}" for i in range(L)]
    tr = AttentionTrace(A[None, None], toks, toks, "hand", "causal")
    first = float(classify_heads(tr).scores["first_token"][0, 0])
    assert abs(first - 0.9) < 1e-6  # every query i >= 1 puts exactly 0.9 on token 0
    # mean distance: query i puts 0.9 at distance i and 0.1/i at each distance 0..i-1
    by_hand = sum(0.9 * i + 0.1 / i * sum(range(i)) for i in range(1, L)) / L
    got = float(mean_distance(tr)[0, 0])
    assert abs(got - by_hand) < 1e-5, (got, by_hand)
    return first, got


def exercise_3() -> float:
    """Mean distance of llama-pydoc's most previous-token head, by hand vs the library."""
    model, tok = load_model(CKPT / "llama-pydoc")
    text = pydoc_text()
    ids = torch.tensor(tok(text[int(len(text) * 0.9) :])["input_ids"][:96])
    tr = capture(model, ids, tok)
    layer, head, _ = classify_heads(tr).ranked("previous_token")[0]
    A = tr.attentions[layer, head]  # (L, L)
    i = torch.arange(A.shape[0])
    by_hand = (A * (i[:, None] - i[None, :])).sum(-1).mean()
    torch.testing.assert_close(by_hand, mean_distance(tr)[layer, head])
    assert by_hand < 10  # a local head: a few tokens back on average
    return float(by_hand)
