"""Speech made on this machine: ``espeak-ng`` speaks text to a WAV, resampled to 16 kHz
(the program is found by :mod:`explore_attention.tools`).

Clips built from separately spoken words joined by silences of known length carry their exact
word timing, which is the ground truth the cross-attention timestamps are checked against.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import tools

__all__ = [
    "SAMPLE_RATE",
    "TimedWord",
    "espeak_available",
    "resample",
    "speak",
    "speak_words",
    "speech_bounds",
]

SAMPLE_RATE = 16_000  # Hz, what Whisper and our features expect


def espeak_available() -> bool:
    """Whether ``espeak-ng`` is found (:func:`explore_attention.tools.find`)."""
    return tools.find(tools.ESPEAK) is not None


def resample(x: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited polyphase resampling (``scipy.signal.resample_poly``) to ``new_rate``."""
    from scipy.signal import resample_poly

    for name, val in (("orig_rate", orig_rate), ("new_rate", new_rate)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    if orig_rate == new_rate:
        return x.astype(np.float32)
    g = math.gcd(orig_rate, new_rate)
    return resample_poly(x, new_rate // g, orig_rate // g).astype(np.float32)


def speak(
    text: str,
    *,
    voice: str = "en-us",
    speed: int = 160,
    pitch: int = 50,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Speak ``text`` with espeak-ng; return float32 mono samples in [-1, 1] at ``sample_rate``.

    ``voice``: an espeak-ng voice, optionally with a variant (``"en-gb+f3"``); ``speed``: words
    per minute (80–450); ``pitch``: 0–99.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty str, got {text!r}")
    if not 80 <= speed <= 450:
        raise ValueError(f"speed must be in [80, 450] words per minute, got {speed}")
    if not 0 <= pitch <= 99:
        raise ValueError(f"pitch must be in [0, 99], got {pitch}")
    espeak = tools.require(tools.ESPEAK)  # ToolNotFoundError with the install command
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        cmd = [espeak, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path)]
        # "--" ends the options, so a text starting with "-" is spoken, not parsed.
        res = subprocess.run([*cmd, "--", text], capture_output=True, text=True, check=False)
        if res.returncode != 0 or not path.is_file():
            raise ValueError(f"espeak-ng failed for voice {voice!r}: {res.stderr.strip()}")
        with wave.open(str(path), "rb") as w:
            rate, width = w.getframerate(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"espeak-ng wrote {8 * width}-bit audio; expected 16-bit")
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    return resample(x, rate, sample_rate)


def speech_bounds(x: np.ndarray, *, threshold: float = 0.02, frame: int = 160) -> tuple[int, int]:
    """First and one-past-last sample of speech: frames whose peak exceeds ``threshold·max|x|``."""
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x must be a non-empty 1-D array, got shape {x.shape}")
    n = x.size // frame
    peaks = np.abs(x[: n * frame]).reshape(n, frame).max(axis=1)  # (frames,)
    loud = np.flatnonzero(peaks > threshold * np.abs(x).max())
    if loud.size == 0:
        return 0, x.size
    return int(loud[0] * frame), int(min((loud[-1] + 1) * frame, x.size))


@dataclass(frozen=True)
class TimedWord:
    """A word and where it is audible in a clip."""

    word: str  # the text that was spoken
    start: float  # seconds from the clip start to the first audible sample
    end: float  # seconds to the last audible sample


def speak_words(
    words: list[str],
    *,
    gap: float = 0.3,
    lead: float = 0.5,
    voice: str = "en-us",
    speed: int = 160,
    pitch: int = 50,
    sample_rate: int = SAMPLE_RATE,
) -> tuple[np.ndarray, list[TimedWord]]:
    """Speak each word on its own, trim its silence, join with ``gap`` seconds of silence.

    Returns the clip and the exact (start, end) of every word: the ground truth for word
    timestamps. ``lead`` seconds of silence come first and last.
    """
    if not words or not all(isinstance(w, str) and w.strip() for w in words):
        raise ValueError(f"words must be a non-empty list of non-empty str, got {words!r}")
    if gap < 0 or lead < 0:
        raise ValueError(f"gap and lead must be >= 0 seconds, got gap={gap}, lead={lead}")
    pieces = [np.zeros(round(lead * sample_rate), np.float32)]
    timed, pos = [], pieces[0].size
    for i, word in enumerate(words):
        x = speak(word, voice=voice, speed=speed, pitch=pitch, sample_rate=sample_rate)
        a, b = speech_bounds(x)
        pieces.append(x[a:b])
        timed.append(TimedWord(word, pos / sample_rate, (pos + b - a) / sample_rate))
        pos += b - a
        silence = round((gap if i < len(words) - 1 else lead) * sample_rate)
        pieces.append(np.zeros(silence, np.float32))
        pos += silence
    return np.concatenate(pieces), timed
