"""Cross-attention alignment and DTW word timestamps, against references and known timing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import need_tool

from explore_attention.audio import alignment as al


def test_dtw_matches_hugging_face_reference():
    from transformers.models.whisper.generation_whisper import _dynamic_time_warping

    rng = np.random.default_rng(0)
    for T, N in [(1, 1), (1, 7), (5, 1), (4, 9), (9, 40), (7, 113)]:
        cost = rng.standard_normal((T, N))
        rows, frames = al.dtw(cost)
        ref_rows, ref_frames = _dynamic_time_warping(cost)
        np.testing.assert_array_equal(rows, ref_rows)
        np.testing.assert_array_equal(frames, ref_frames)
        # The path is monotonic, starts at (0, 0), ends at (T-1, N-1), moves one cell at a time.
        assert (rows[0], frames[0], rows[-1], frames[-1]) == (0, 0, T - 1, N - 1)
        if T * N > 1:
            steps = np.stack([np.diff(rows), np.diff(frames)])
            assert steps.min() >= 0 and steps.max() <= 1 and steps.sum(0).min() >= 1


def test_dtw_finds_the_minimum_cost_path_by_brute_force():
    import itertools

    rng = np.random.default_rng(1)
    cost = rng.random((3, 5))
    best = np.inf
    # Every monotone path is a sequence of moves: (1,1), (1,0), (0,1).
    for n in range(2, 8):
        for moves in itertools.product([(1, 1), (1, 0), (0, 1)], repeat=n):
            i = j = 0
            total = cost[0, 0]
            for di, dj in moves:
                i, j = i + di, j + dj
                if i > 2 or j > 4:
                    break
                total += cost[i, j]
            else:
                if (i, j) == (2, 4):
                    best = min(best, total)
    rows, frames = al.dtw(cost)
    assert cost[rows, frames].sum() == pytest.approx(best, abs=1e-12)


def test_median_filter_matches_scipy():
    from scipy.ndimage import median_filter

    x = torch.randn(3, 4, 57, dtype=torch.float64)
    for width in (1, 3, 7):
        ref = median_filter(x.numpy(), size=(1, 1, width), mode="mirror")
        torch.testing.assert_close(al.median_filter(x, width), torch.from_numpy(ref))
    with pytest.raises(ValueError, match="width"):
        al.median_filter(x, 4)


def test_alignment_matrix_matches_float64_formula():
    """Softmax over the audio frames' scores only, standardise over tokens, median, mean."""
    from scipy.ndimage import median_filter

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 6, 9, 300, generator=g, dtype=torch.float64)  # (L, H, T, 1500-ish)
    cross = logits.softmax(-1)  # what the model returns: softmax over *all* frames
    heads, N = [(1, 0), (3, 2), (3, 5)], 120
    ours = al.alignment_matrix(cross, heads, N)
    ref = []
    for lay, h in heads:
        w = logits[lay, h, :, :N].softmax(-1).numpy()  # (T, N)
        w = (w - w.mean(0)) / w.std(0)
        ref.append(median_filter(w, size=(1, 7), mode="mirror"))
    torch.testing.assert_close(ours, torch.from_numpy(np.mean(ref, 0)), atol=1e-10, rtol=1e-7)
    with pytest.raises(ValueError, match="heads"):
        al.alignment_matrix(cross, [(4, 0)], N)
    with pytest.raises(ValueError, match="num_frames"):
        al.alignment_matrix(cross, heads, 301)
    with pytest.raises(ValueError, match="cross must have shape"):
        al.alignment_matrix(cross[0], heads, N)


def test_split_words_merges_pieces_and_punctuation():
    pieces = [" Hello", ",", " wor", "ld", ".", " It", "'s", " 42"]
    assert al.split_words(pieces) == [[0, 1], [2, 3, 4], [5, 6], [7]]


# Words spoken one by one with known silences between them: the truth is exact.
WORDS = ["apple", "river", "garden", "yellow", "window", "morning"]
GAP, LEAD = 0.2, 0.3  # seconds of silence between words / before the first and after the last
BOUNDARY_BOUND = 0.2  # s; mean |error| of word starts and ends (measured: 0.13 s)


@pytest.fixture(scope="module")
def aligned():
    from explore_attention.audio import synth
    from explore_attention.models.whisper_ct2 import load_whisper

    need_tool("espeak-ng")
    audio, truth = synth.speak_words(WORDS, gap=GAP, lead=LEAD, voice="en-us")
    model, processor = load_whisper()
    return al.word_timestamps(model, processor, audio), truth, audio


@pytest.mark.slow
def test_word_timestamps_match_known_timing(aligned):
    result, truth, audio = aligned
    assert [w.word.lower().strip(".,") for w in result.words] == WORDS, result.text
    starts = np.array([w.start for w in result.words])
    ends = np.array([w.end for w in result.words])
    true_starts = np.array([t.start for t in truth])
    true_ends = np.array([t.end for t in truth])
    err = np.concatenate([np.abs(starts - true_starts), np.abs(ends - true_ends)])
    assert err.mean() < BOUNDARY_BOUND, f"mean boundary error {err.mean():.3f} s"
    # Each word's true midpoint lies inside its predicted interval, and words are in order.
    mids = (true_starts + true_ends) / 2
    assert np.all((starts <= mids) & (mids <= ends))
    assert np.all(np.diff(starts) > 0) and ends[-1] <= len(audio) / 16_000 + al.FRAME_SECONDS


@pytest.mark.slow
def test_alignment_pieces_and_trace(aligned):
    result, _, audio = aligned
    L, H, T, N = result.cross.shape
    assert (L, H) == (4, 6)  # tiny.en: 4 decoder layers of 6 heads
    assert len(result.tokens) == T and len(audio) // 160 // 2 == N
    assert result.matrix.shape == (T - result.prefix, N)
    assert result.features.shape == (80, 2 * N)
    trace = al.cross_attention_trace(result)
    assert trace.kind == "cross" and trace.attentions.shape == (L, H, T, N)
    assert trace.key_tokens[:2] == ["0.00s", "0.02s"] and trace.tokens[0] == "<|startoftranscript|>"
    # Cut to the audio frames, rows hold at most their full mass (the rest went to padding).
    assert torch.all(result.cross.sum(-1) <= 1 + 1e-5)
    # The DTW path visits every text row in order and ends on the last audio frame.
    rows, frames = result.path
    assert sorted(set(rows.tolist())) == list(range(T - result.prefix))
    assert frames[-1] == N - 1
    with pytest.raises(ValueError, match="heads"):
        al.alignment_matrix(result.cross, [], N)
