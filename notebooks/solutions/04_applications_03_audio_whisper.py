"""Solutions to the exercises of notebooks/04_applications/03_audio_whisper.ipynb."""

from __future__ import annotations

import numpy as np

from explore_attention.audio import alignment
from explore_attention.audio.wer import word_error_rate
from explore_attention.models import whisper_ct2


def exercise_1() -> int:
    """30 s at one encoder position per 20 ms = 1500 positions."""
    ct2 = whisper_ct2.read_ct2_model(whisper_ct2.shipped_model_dir())
    state, _ = whisper_ct2.ct2_to_hf_state_dict(ct2)
    n = state["model.encoder.embed_positions.weight"].shape[0]
    assert n == round(30 / 0.020) == 1500
    return n


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    D = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, D[0] = D[0], i
        for j, h in enumerate(hyp, 1):
            prev, D[j] = D[j], min(D[j] + 1, D[j - 1] + 1, prev + (r != h))
    return D[-1]


def exercise_2() -> float:
    ref, hyp = "the cat sat on the mat", "the cat sat on mat today"
    by_hand = edit_distance(ref.split(), hyp.split()) / len(ref.split())  # 1 deletion + 1 insertion
    assert abs(by_hand - 2 / 6) < 1e-12
    assert abs(word_error_rate(ref, hyp) - by_hand) < 1e-12
    return by_hand


def exercise_3() -> float:
    rng = np.random.default_rng(0)
    c = rng.random((5, 9))
    T, N = c.shape
    D = np.full((T + 1, N + 1), np.inf)
    D[0, 0] = 0.0
    for i in range(1, T + 1):
        for j in range(1, N + 1):
            D[i, j] = c[i - 1, j - 1] + min(D[i - 1, j - 1], D[i - 1, j], D[i, j - 1])
    rows, cols = alignment.dtw(c)
    path_cost = float(c[rows, cols].sum())
    assert abs(path_cost - D[T, N]) < 1e-12, (path_cost, D[T, N])
    return path_cost
