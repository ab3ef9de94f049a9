"""Solutions to the exercises of notebooks/01_foundations/04_first_look_minilm.ipynb.

Each function computes the answer with the library and asserts it; tests/test_solutions.py runs
them all. The bundled all-MiniLM-L6-v2 loads offline.
"""

from __future__ import annotations

import math
from functools import cache

import torch
from torch.testing import assert_close

SENTENCES = [
    "The animal didn't cross the street because it was too tired",
    "Attention lets every word look at every other word in the sentence.",
    "She put the book on the table and then she left the room quietly.",
    "Small models trained on a laptop can still learn surprisingly useful patterns.",
]


@cache
def _model():
    from explore_attention.inspect import load_model

    return load_model()


def _previous_token(text: str) -> torch.Tensor:
    """The library classifier's ``previous_token`` score, (layers, heads), on ``text``."""
    from explore_attention.inspect import capture, classify_heads

    model, tok = _model()
    return classify_heads(capture(model, text, tok)).scores["previous_token"]


def exercise_1() -> tuple[int, float]:
    """The layer-0 previous-token head keeps its job on unseen text: far above 1/L."""
    prev = sum(_previous_token(s) for s in SENTENCES) / len(SENTENCES)  # (layers, heads)
    head = int(prev[0].argmax())
    text = "Cats chase mice across the old wooden floor at night"
    share = _previous_token(text)[0, head].item()
    _, tok = _model()
    L = len(tok(text)["input_ids"])  # tokens with [CLS] and [SEP]
    assert share > 3 / L, (share, L)  # far above a uniform share
    return head, share


def exercise_2() -> None:
    from explore_attention.inspect import capture

    model, tok = _model()
    trace = capture(model, SENTENCES[0], tok)
    enc = tok(SENTENCES[0], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states[2]  # input of layer 2
        sa = model.encoder.layer[2].attention.self
        cols = slice(7 * 32, 8 * 32)
        q, k = sa.query(hidden)[0, :, cols], sa.key(hidden)[0, :, cols]
        a = torch.softmax(q @ k.T / math.sqrt(32), dim=-1)
    assert_close(a, trace.attentions[2, 7])


def normalised_entropy(a: torch.Tensor) -> torch.Tensor:
    """-sum_j a_j log a_j / log L over the last axis (0 log 0 = 0)."""
    L = a.shape[-1]
    return -(a * a.clamp_min(1e-12).log()).sum(-1) / math.log(L)


def exercise_3() -> tuple[int, int]:
    from explore_attention.inspect import capture

    uniform, onehot = torch.full((8,), 1 / 8), torch.eye(8)[3]
    assert abs(normalised_entropy(uniform).item() - 1) < 1e-6
    assert abs(normalised_entropy(onehot).item()) < 1e-6
    model, tok = _model()
    a = capture(model, SENTENCES[0], tok).attentions  # (layers, heads, L, L)
    h = normalised_entropy(a).mean(-1)  # (layers, heads)
    assert bool(((h >= 0) & (h <= 1 + 1e-6)).all())
    from explore_attention.inspect import classify_heads

    trace = capture(model, SENTENCES[0], tok)
    assert_close(h, classify_heads(trace).scores["broad"])  # the library's broad score
    layer, head = divmod(int(h.argmax()), h.shape[1])
    return layer, head
