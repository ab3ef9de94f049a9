r"""Which audio frames each output token attends to, and word timestamps from it.

Whisper's decoder cross-attends from every text token to the 1,500 encoder frames (20 ms each).
Radford et al. 2022 ("Robust Speech Recognition via Large-Scale Weak Supervision",
arXiv:2212.04356) found a few *alignment heads* whose cross-attention follows the speech; their
released code turns them into word timestamps. We re-derive that recipe here:

1. teacher-force the transcript and keep the cross-attention of the alignment heads
   :math:`A_{h} \in \mathbb{R}^{T \times N}` (tokens × frames), renormalised over the
   :math:`N` frames that hold audio (equal to a softmax over those frames' scores only);
2. standardise each head over the token axis, :math:`\tilde A_h = (A_h - \mu_h) / \sigma_h`,
   so every frame is scored by how much *more* this token attends to it than other tokens do;
3. median-filter along time (width 7) to remove single-frame spikes, then average the heads:
   :math:`M = \frac{1}{|\mathcal H|} \sum_h \operatorname{med}_7(\tilde A_h)`;
4. dynamic time warping finds the monotonic path through :math:`-M` of least cost
   (:func:`dtw`); the frame where the path first reaches a token is its start time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..inspect.trace import AttentionTrace

if TYPE_CHECKING:
    from transformers import WhisperForConditionalGeneration, WhisperProcessor
    from transformers.modeling_outputs import BaseModelOutput

__all__ = [
    "FRAME_SECONDS",
    "Alignment",
    "WordTiming",
    "alignment_matrix",
    "cross_attention_trace",
    "dtw",
    "median_filter",
    "split_words",
    "transcribe",
    "word_timestamps",
]

FRAME_SECONDS = 0.02  # one encoder frame: hop 10 ms × conv2 stride 2
_SAMPLE_RATE = 16_000


def median_filter(x: Tensor, width: int) -> Tensor:
    """Running median over the last axis, reflect-padded so the length is kept (odd ``width``)."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1 or width % 2 == 0:
        raise ValueError(f"width must be a positive odd int, got {width!r}")
    if width == 1:
        return x
    pad = width // 2
    if x.shape[-1] <= pad:
        raise ValueError(
            f"x has {x.shape[-1]} frames on its last axis; width {width} needs > {pad}"
        )
    lead = x.shape[:-1]
    y = F.pad(x.reshape(-1, 1, x.shape[-1]), (pad, pad), mode="reflect")  # (R, 1, N + 2p)
    windows = y.unfold(-1, width, 1)  # (R, 1, N, width)
    return windows.median(dim=-1).values.reshape(*lead, x.shape[-1])  # (..., N)


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Least-cost monotonic path through ``cost (T, N)`` from (0, 0) to (T-1, N-1).

    :math:`D_{i,j} = c_{i,j} + \min(D_{i-1,j-1}, D_{i-1,j}, D_{i,j-1})`; steps go diagonally,
    down a token, or right a frame. Returns the path's ``(token_indices, frame_indices)``.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2 or 0 in c.shape:
        raise ValueError(f"cost must be a non-empty 2-D array (T, N), got shape {c.shape}")
    T, N = c.shape
    D = np.full((T + 1, N + 1), np.inf)
    D[0, 0] = 0.0
    move = np.zeros((T + 1, N + 1), dtype=np.int8)  # 0 diagonal, 1 from above, 2 from left
    Dl, cl, ml = D.tolist(), c.tolist(), move.tolist()  # Python floats: ~20x faster loops
    for j in range(1, N + 1):
        for i in range(1, T + 1):
            diag, up, left = Dl[i - 1][j - 1], Dl[i - 1][j], Dl[i][j - 1]
            # Strict comparisons: ties go to "left" (stay on the token), as Whisper's code does.
            if diag < up and diag < left:
                best, k = diag, 0
            elif up < diag and up < left:
                best, k = up, 1
            else:
                best, k = left, 2
            Dl[i][j] = cl[i - 1][j - 1] + best
            ml[i][j] = k
    move = ml
    i, j, path = T, N, []
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        k = move[i][j]
        i, j = (i - 1, j - 1) if k == 0 else (i - 1, j) if k == 1 else (i, j - 1)
    tokens, frames = np.array(path[::-1]).T
    return tokens, frames


@dataclass(frozen=True)
class WordTiming:
    """One word of the transcript and where the alignment heads place it."""

    word: str  # as decoded, without the leading space
    start: float  # seconds
    end: float  # seconds
    tokens: tuple[int, ...]  # its token ids


@dataclass
class Alignment:
    """Everything the pictures need: transcript, attention, alignment matrix, DTW path."""

    text: str  # the decoded transcript
    tokens: list[int]  # prefix + text tokens + end-of-text, as teacher-forced
    token_strings: list[str]  # decoded pieces, one per token
    cross: Tensor  # (layers, heads, T, N) cross-attention over the audio frames
    matrix: Tensor  # (T_text + 1, N): step 3's combined alignment heads
    path: tuple[np.ndarray, np.ndarray]  # DTW (row, frame) indices through ``matrix``
    words: list[WordTiming]  # word timestamps
    features: Tensor  # (n_mels, 2 N) log-mel frames that hold audio
    prefix: int  # number of prefix tokens before the text


def transcribe(
    model: WhisperForConditionalGeneration,
    processor: WhisperProcessor,
    audio: np.ndarray,
    *,
    max_new_tokens: int = 96,
) -> tuple[str, list[int], BaseModelOutput]:
    """Greedy transcription of ``audio`` (16 kHz float samples, ≤ 30 s).

    Returns ``(text, token ids with prefix and end-of-text, encoder outputs)``; the encoder
    runs once and its outputs are reused by :func:`word_timestamps`.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"audio must be 1-D samples, got shape {audio.shape}")
    if audio.size > 30 * _SAMPLE_RATE:
        raise ValueError(
            f"audio must be at most 30 s ({30 * _SAMPLE_RATE} samples), got {audio.size}"
        )
    feats = processor(audio, sampling_rate=_SAMPLE_RATE, return_tensors="pt").input_features
    gen = model.generation_config
    prefix = [gen.decoder_start_token_id, gen.no_timestamps_token_id]
    with torch.no_grad():
        encoded = model.get_encoder()(feats)
        encoded.input_features = feats
        out = model.generate(
            encoder_outputs=encoded,
            decoder_input_ids=torch.tensor([prefix]),
            max_length=len(prefix) + max_new_tokens,
            do_sample=False,
        )
    ids = [int(t) for t in out[0] if int(t) not in prefix]
    text_ids = [t for t in ids if t != gen.eos_token_id]
    text = processor.tokenizer.decode(text_ids, skip_special_tokens=True).strip()
    return text, [*prefix, *text_ids, gen.eos_token_id], encoded


def split_words(token_strings: list[str]) -> list[list[int]]:
    """Group text-token positions into words: a token starting with a space starts a word;
    punctuation-only tokens join the word before them (as Whisper's code merges them)."""
    groups: list[list[int]] = []
    for i, s in enumerate(token_strings):
        punct = s.strip() != "" and not any(ch.isalnum() for ch in s)
        if groups and (punct or not s.startswith(" ")):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def alignment_matrix(
    cross: Tensor, heads: list[tuple[int, int]], num_frames: int, *, filter_width: int = 7
) -> Tensor:
    """Steps 1–3 of the module docstring: ``cross (layers, heads, T, ≥N)`` → ``(T, N)``."""
    if cross.dim() != 4:
        raise ValueError(
            f"cross must have shape (layers, heads, T, frames), got {tuple(cross.shape)}"
        )
    L, H = cross.shape[:2]
    bad = [(lay, h) for lay, h in heads if not (0 <= lay < L and 0 <= h < H)]
    if not heads or bad:
        raise ValueError(
            f"heads must be non-empty (layer, head) pairs within {(L, H)}, got {bad or heads}"
        )
    if not 0 < num_frames <= cross.shape[-1]:
        raise ValueError(f"num_frames must be in [1, {cross.shape[-1]}], got {num_frames}")
    w = torch.stack([cross[lay, h, :, :num_frames] for lay, h in heads]).double()  # (K, T, N)
    w = w / w.sum(-1, keepdim=True)  # softmax over the audio frames only
    std, mean = torch.std_mean(w, dim=-2, keepdim=True, unbiased=False)  # over tokens
    w = (w - mean) / std.clamp_min(1e-12)
    return median_filter(w, filter_width).mean(0)  # (T, N)


def _cross_attentions(model, encoded: BaseModelOutput, tokens: list[int]) -> Tensor:
    with torch.no_grad():
        out = model(
            encoder_outputs=encoded,
            decoder_input_ids=torch.tensor([tokens]),
            output_attentions=True,
        )
    if not out.cross_attentions or out.cross_attentions[0] is None:
        raise ValueError(
            "the model returned no cross-attention; load it with attn_implementation='eager'"
        )
    return torch.stack([a[0] for a in out.cross_attentions]).float()  # (layers, heads, T, 1500)


def word_timestamps(
    model: WhisperForConditionalGeneration,
    processor: WhisperProcessor,
    audio: np.ndarray,
    *,
    heads: list[tuple[int, int]] | None = None,
    filter_width: int = 7,
) -> Alignment:
    """Transcribe ``audio`` and time every word from the alignment heads' cross-attention.

    ``heads``: ``(layer, head)`` pairs; default the model's ``generation_config.alignment_heads``
    (for tiny.en, the list OpenAI published with the model).
    """
    heads = (
        heads if heads is not None else getattr(model.generation_config, "alignment_heads", None)
    )
    if not heads:
        raise ValueError("heads: the model has no alignment_heads; pass (layer, head) pairs")
    heads = [(int(a), int(b)) for a, b in heads]
    text, tokens, encoded = transcribe(model, processor, audio)
    feats = encoded.input_features  # (1, 80, 3000)
    n_audio = min(len(audio) // 160, feats.shape[-1])  # 10 ms mel frames that hold audio
    num_frames = max(n_audio // 2, filter_width)  # encoder frames (20 ms)
    cross = _cross_attentions(model, encoded, tokens)[..., :num_frames]  # (L, H, T, N)
    prefix = 2  # <|startoftranscript|> <|notimestamps|>
    matrix = alignment_matrix(cross, heads, num_frames, filter_width=filter_width)
    # Row t of the decoder *predicts* token t + 1, so the rows from the last prefix token to
    # the last text token are the ones that predict the text tokens and the end-of-text.
    matrix = matrix[prefix - 1 : -1]  # (T_text + 1, N)
    rows, frames = dtw(-matrix.numpy())
    # The frame where the path first enters each row: that token's start.
    first = np.ones_like(rows, dtype=bool)
    first[1:] = np.diff(rows) > 0
    starts = frames[first] * FRAME_SECONDS  # (T_text + 1,)
    text_ids = tokens[prefix:-1]
    pieces = [processor.tokenizer.decode([t]) for t in text_ids]
    words = []
    for group in split_words(pieces):
        a, b = group[0], group[-1] + 1
        word = "".join(pieces[i] for i in group).strip()
        ids = tuple(text_ids[i] for i in group)
        words.append(WordTiming(word, float(starts[a]), float(starts[b]), ids))
    return Alignment(
        text=text,
        tokens=tokens,
        token_strings=[processor.tokenizer.decode([t]) for t in tokens],
        cross=cross,
        matrix=matrix.float(),
        path=(rows, frames),
        words=words,
        features=feats[0, :, : 2 * num_frames],
        prefix=prefix,
    )


def cross_attention_trace(
    alignment: Alignment, model_name: str = "whisper-tiny.en"
) -> AttentionTrace:
    """The cross-attention of every layer and head as an :class:`AttentionTrace` (kind "cross").

    Key tokens are the encoder frames' start times (``"0.42s"``).
    """
    N = alignment.cross.shape[-1]
    return AttentionTrace(
        attentions=alignment.cross,
        tokens=alignment.token_strings,
        key_tokens=[f"{j * FRAME_SECONDS:.2f}s" for j in range(N)],
        model_name=model_name,
        kind="cross",
        meta={"frame_seconds": FRAME_SECONDS, "text": alignment.text},
    )
