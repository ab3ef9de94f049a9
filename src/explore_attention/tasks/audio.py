"""Training task ``audio-digits``: spoken digits (espeak-ng) → which digit, by a small transformer.

Data: :mod:`explore_attention.data.speech` (generated once, cached); the test split holds
voices never heard in training (at every speed and pitch). Features: 40-bin log-mel, 100 frames.
Augmentation: a random shift of up to ±15 frames (150 ms) and a random gain in the log domain.
Metric: ``test_accuracy`` on the held-out voices.

``EXPLORE_ATTENTION_QUICK=1`` shortens the default run (tests, notebooks in CI).
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.speech import SpeechDigitsConfig, features, load_speech_digits
from ..models.audio import AudioTransformer, AudioTransformerConfig
from ..train import Task, TrainConfig
from .common import accuracy, model_config, quick

__all__ = ["accuracy", "make_digits", "shift_frames"]

MAX_SHIFT = 15  # frames (10 ms each) of random time shift in training


def shift_frames(mel: Tensor, shifts: Tensor) -> Tensor:
    """Shift each spectrogram ``(B, M, F)`` in time by ``shifts (B,)`` frames, padding with
    its quietest value (the log-mel floor) instead of wrapping around."""
    B, M, Fr = mel.shape
    idx = torch.arange(Fr)[None, :] - shifts[:, None]  # (B, F) source frame of each frame
    valid = (idx >= 0) & (idx < Fr)  # (B, F)
    out = mel.gather(2, idx.clamp(0, Fr - 1)[:, None, :].expand(B, M, Fr))  # (B, M, F)
    floor = mel.amin(dim=(1, 2), keepdim=True)  # (B, 1, 1)
    return torch.where(valid[:, None, :], out, floor)


def make_digits(
    *,
    d_model: int = 64,
    num_heads: int = 4,
    num_layers: int = 2,
    dropout: float = 0.1,
    n_mels: int = 40,
    data_seed: int = 0,
    data_root: str | None = None,
    small: bool | None = None,
) -> Task:
    """The ``audio-digits`` task; model sizes and the voice split are options.

    ``small``: use :meth:`SpeechDigitsConfig.small` (16 speakers); default: only under
    ``EXPLORE_ATTENTION_QUICK=1``.
    """
    small = quick() if small is None else small
    data_cfg = SpeechDigitsConfig.small() if small else SpeechDigitsConfig()
    data_cfg = replace(data_cfg, seed=data_seed)
    train, test = load_speech_digits(data_cfg, root=data_root)
    train_x, test_x = features(train.audio, n_mels), features(test.audio, n_mels)  # (N, M, 100)
    cfg = AudioTransformerConfig(
        n_mels=n_mels, max_frames=train_x.shape[-1], num_classes=10, d_model=d_model,
        num_heads=num_heads, num_layers=num_layers, mlp_ratio=2, dropout=dropout,
    )  # fmt: skip
    model = AudioTransformer(cfg)

    def sample(g: torch.Generator, batch_size: int) -> tuple[Tensor, Tensor]:
        idx = torch.randint(0, len(train), (batch_size,), generator=g)
        shifts = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (batch_size,), generator=g)
        gain = (torch.rand(batch_size, 1, 1, generator=g) - 0.5) * 0.5  # ±0.25 ≈ ±10 dB
        return shift_frames(train_x[idx], shifts) + gain, train.labels[idx]

    def loss(m: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        return F.cross_entropy(m(x).logits, y)

    def evaluate(m: nn.Module) -> dict[str, float]:
        return {"test_accuracy": accuracy(m, test_x, test.labels)}

    steps = 100 if quick() else 1500
    defaults = TrainConfig(
        steps=steps, batch_size=32 if quick() else 64, lr=2e-3, weight_decay=0.01, warmup=50,
        eval_every=min(100, steps), metric="test_accuracy",
    )  # fmt: skip
    meta = {
        "data": "explore_attention.data.speech (espeak-ng spoken digits)",
        "data_seed": data_seed,
        "data_config": "small" if small else "full",
        "labels": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
        "test_voices": sorted({s.split("|")[0] for s in test.speakers}),
    }
    return Task(model, model_config(model), sample, loss, evaluate, defaults, meta)
