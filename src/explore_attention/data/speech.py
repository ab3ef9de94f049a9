"""Spoken digits made with espeak-ng: several voices, speeds and pitches, cached on disk.

Every *speaker* is a (voice, speed, pitch) triple; it says the ten digit words "zero" … "nine".
The train / test split is by voice: the test set holds voices never heard in training, at every
speed and pitch.
Each clip is trimmed to its audible part and placed in a 1-second window; features are
Whisper-style log-mel spectrograms (:mod:`explore_attention.audio.features`), 40 bins every
10 ms, so one clip is a ``(40, 100)`` image over time.

Generate (or refresh) the cache from the command line::

    python -m explore_attention.data.speech            # 1,200 clips, about a minute
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DIGITS",
    "SpeechDigits",
    "SpeechDigitsConfig",
    "cache_dir",
    "features",
    "load_speech_digits",
    "main",
]

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SAMPLE_RATE = 16_000  # Hz
CLIP_SECONDS = 1.0  # every clip is padded / cut to this length


@dataclass(frozen=True)
class SpeechDigitsConfig:
    """Which speakers to synthesise; the cache file name is a hash of this config."""

    voices: tuple[str, ...] = (  # espeak-ng voices, "+variant" changes the timbre
        "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
        "en-us+f2", "en-gb+f4", "en-us+m3", "en-gb-x-rp+f1",
    )  # fmt: skip
    speeds: tuple[int, ...] = (120, 155, 190, 225)  # words per minute
    pitches: tuple[int, ...] = (25, 50, 75)  # espeak pitch, 0-99
    test_fraction: float = 0.2  # share of voices held out for testing (all their speeds/pitches)
    seed: int = 0  # which voices are held out

    @classmethod
    def small(cls) -> SpeechDigitsConfig:
        """16 speakers (160 clips, a few seconds to make) for tests and quick runs."""
        voices = ("en-us", "en-gb", "en-us+f2", "en-gb-scotland")
        return cls(voices=voices, speeds=(140, 200), pitches=(40, 70), test_fraction=0.25)

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


@dataclass
class SpeechDigits:
    """Waveforms, labels and speakers of one split."""

    audio: Tensor  # (N, 16000) float32 samples in [-1, 1]
    labels: Tensor  # (N,) int64 digit 0-9
    speakers: list[str]  # (N,) "voice|speed|pitch"

    def __len__(self) -> int:
        return self.labels.shape[0]


def cache_dir() -> Path:
    """``$EXPLORE_ATTENTION_CACHE`` or ``~/.cache/explore-attention``."""
    root = os.environ.get("EXPLORE_ATTENTION_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "explore-attention"


def _place(x: np.ndarray, n: int) -> np.ndarray:
    """Trim silence and centre the audible part in ``n`` samples (cut if longer)."""
    from ..audio.synth import speech_bounds

    a, b = speech_bounds(x)
    x = x[a:b][:n]
    out = np.zeros(n, np.float32)
    start = (n - x.size) // 2
    out[start : start + x.size] = x
    return out


def _generate(config: SpeechDigitsConfig, progress: bool) -> dict[str, np.ndarray]:
    from tqdm.auto import tqdm

    from ..audio.synth import speak

    speakers = list(itertools.product(config.voices, config.speeds, config.pitches))
    n = round(CLIP_SECONDS * SAMPLE_RATE)
    audio, labels, who = [], [], []
    for voice, speed, pitch in tqdm(speakers, desc="espeak-ng digits", disable=not progress):
        for label, word in enumerate(DIGITS):
            x = speak(word, voice=voice, speed=speed, pitch=pitch, sample_rate=SAMPLE_RATE)
            audio.append(np.round(_place(x, n) * 32767).astype(np.int16))
            labels.append(label)
            who.append(f"{voice}|{speed}|{pitch}")
    return {"audio": np.stack(audio), "labels": np.array(labels), "speakers": np.array(who)}


def load_speech_digits(
    config: SpeechDigitsConfig | None = None,
    *,
    root: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[SpeechDigits, SpeechDigits]:
    """``(train, test)`` splits, generating and caching the clips on first use (atomically)."""
    config = config or SpeechDigitsConfig()
    if not isinstance(config, SpeechDigitsConfig):
        raise TypeError(f"config must be a SpeechDigitsConfig, got {type(config).__name__}")
    if not 0.0 < config.test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {config.test_fraction}")
    if len(set(config.voices)) < 2 or not (config.speeds and config.pitches):
        raise ValueError(
            f"config needs at least two voices (one is held out), one speed and one pitch; got "
            f"voices={config.voices}, speeds={config.speeds}, pitches={config.pitches}"
        )
    folder = Path(root) if root is not None else cache_dir()
    path = folder / f"speech-digits-{config.key()}.npz"
    if not path.is_file():
        data = _generate(config, progress)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp.npz", dir=folder)
        os.close(fd)
        try:
            np.savez_compressed(tmp, **data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    with np.load(path) as f:
        audio = torch.from_numpy(f["audio"].astype(np.float32) / 32767.0)
        labels = torch.from_numpy(f["labels"].astype(np.int64))
        speakers = [str(s) for s in f["speakers"]]
    voices = [s.split("|")[0] for s in speakers]
    names = sorted(set(voices))
    rng = np.random.default_rng(config.seed)
    n_test = min(len(names) - 1, max(1, round(config.test_fraction * len(names))))
    held = {names[i] for i in rng.permutation(len(names))[:n_test].tolist()}
    is_test = torch.tensor([v in held for v in voices])
    split = [
        SpeechDigits(audio[m], labels[m], [s for s, t in zip(speakers, m.tolist()) if t])
        for m in (~is_test, is_test)
    ]
    return split[0], split[1]


def features(audio: Tensor, n_mels: int = 40) -> Tensor:
    """Log-mel features ``(B, n_mels, 100)`` of ``audio (B, 16000)`` (25 ms windows, 10 ms hop)."""
    from ..audio.features import log_mel_spectrogram

    return log_mel_spectrogram(audio, n_mels=n_mels)


def main(argv: list[str] | None = None) -> int:
    """Generate the spoken-digits cache: ``python -m explore_attention.data.speech``."""
    p = argparse.ArgumentParser(prog="python -m explore_attention.data.speech")
    p.add_argument("--root", help="cache folder (default ~/.cache/explore-attention)")
    args = p.parse_args(argv)
    train, test = load_speech_digits(root=args.root)
    test_voices = sorted({s.split("|")[0] for s in test.speakers})
    print(json.dumps({"train": len(train), "test": len(test), "test_voices": test_voices}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
