"""Solutions to the exercises of notebooks/05_bonus/03_induction_heads_and_gpt.ipynb."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

import torch

from explore_attention.inspect import ablate_heads, capture
from explore_attention.tasks.induction import (
    in_context_loss,
    induction_scores,
    previous_token_scores,
    repeated_tokens,
)
from explore_attention.train import load_checkpoint


@lru_cache(maxsize=1)
def _model_and_data():
    model, cfg = load_checkpoint(files("explore_attention") / "checkpoints" / "induction-2l")
    d = cfg["data"]
    ev = repeated_tokens(64, d["half_len"], d["vocab_size"], torch.Generator().manual_seed(1))
    return model.eval(), ev, d["half_len"]


def exercise_1() -> float:
    """A perfect induction head at query i >= T attends to key i - T + 1."""
    model, ev, T = _model_and_data()
    ind = induction_scores(model, ev)  # (layers, heads)
    h = int(ind[1].argmax())
    x = ev[0]
    trace = capture(model, x, tokens=[str(t) for t in x.tolist()], kind="causal")
    rows = torch.arange(T, 2 * T)
    looks = trace.attentions[1, h, rows].argmax(-1)  # (T,)
    share = float((looks == rows - T + 1).float().mean())
    assert share > 0.9, share
    return share


def exercise_2() -> None:
    """The previous-token score by hand equals the library's."""
    model, ev, _ = _model_and_data()
    x = ev[:4]
    hand = []
    for row in x:
        tr = capture(model, row, tokens=[str(t) for t in row.tolist()], kind="causal")
        A = tr.attentions  # (layers, heads, L, L)
        i = torch.arange(1, A.shape[-1])
        hand.append(A[:, :, i, i - 1].mean(-1))
    torch.testing.assert_close(torch.stack(hand).mean(0), previous_token_scores(model, x))


def exercise_3() -> tuple[float, float]:
    """Ablating the layer-0 previous-token head breaks the induction circuit."""
    model, ev, _ = _model_and_data()
    prev = previous_token_scores(model, ev)
    head0 = int(prev[0].argmax())
    before = in_context_loss(model, ev)
    with ablate_heads(model, [(0, head0)]):
        after = in_context_loss(model, ev)
    drop_before, drop_after = before["icl_drop"], after["icl_drop"]
    assert drop_after < 0.5 * drop_before, (drop_before, drop_after)
    return drop_before, drop_after
