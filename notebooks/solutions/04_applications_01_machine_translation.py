"""Solutions to the exercises of notebooks/04_applications/01_machine_translation.ipynb."""

from __future__ import annotations

from functools import lru_cache
from itertools import pairwise

import torch

from explore_attention.data import translation as T
from explore_attention.tasks import translation as tasks


@lru_cache(maxsize=2)
def _load(name: str):
    return tasks.load_translator(name)


def exercise_1() -> str:
    """The first German character of 'forty two' reads 'two'."""
    model, sv, tv, _ = _load("numbers-de-bahdanau")
    (out,), w = tasks.translate(model, sv, tv, ["forty two"])
    words = sv.pieces("forty two")
    first = words[int(w[0, 0].argmax())]
    assert out.startswith("zwei") and first == "two", (out, first)
    return first


def crosses(weights: torch.Tensor) -> bool:
    """True if the most-read source position ever moves back; ``weights`` is (T, S)."""
    best = weights.argmax(-1).tolist()
    return any(b < a for a, b in pairwise(best))


def exercise_2() -> bool:
    model, sv, tv, _ = _load("numbers-de-bahdanau")
    (out,), w = tasks.translate(model, sv, tv, ["forty two"])
    rows = w[0, : len(out)]  # (T, S)
    assert crosses(rows)
    assert not crosses(torch.eye(3))  # a monotonic alignment never moves back
    return crosses(rows)


def exercise_3() -> dict[str, float]:
    """Exact match on the unseen 11-word sources: attention vs none."""
    torch.set_num_threads(1)
    held_out = T.numbers(train_size=0, per_split=60)
    scores = {}
    for name in ("numbers-de-gru", "numbers-de-bahdanau"):
        model, sv, tv, _ = _load(name)
        res = tasks.evaluate_by_length(model, sv, tv, held_out.splits["long"])
        scores[name] = sum(r["exact_match"] for r in res.values()) / len(res)
    assert scores["numbers-de-bahdanau"] > scores["numbers-de-gru"], scores
    return scores
