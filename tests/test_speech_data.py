"""espeak-ng clips, log-mel features (vs Hugging Face's Whisper extractor) and the digits cache."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import need_tool

from explore_attention.audio import features, synth
from explore_attention.data import speech


@pytest.fixture(autouse=True)
def _need_espeak():
    need_tool("espeak-ng")


def test_mel_filterbank_matches_hugging_face():
    from transformers.audio_utils import mel_filter_bank

    ref = mel_filter_bank(201, 80, 0.0, 8000.0, 16_000, norm="slaney", mel_scale="slaney")
    ours = features.mel_filterbank(80, 400, 16_000)  # (M, F), float64
    torch.testing.assert_close(ours, torch.from_numpy(ref.T), atol=1e-7, rtol=1e-6)
    m = torch.tensor([0.0, 500.0, 1000.0, 4000.0, 8000.0])
    torch.testing.assert_close(features.mel_to_hz(features.hz_to_mel(m)), m.double())
    with pytest.raises(ValueError, match="f_max"):
        features.mel_filterbank(80, 400, 16_000, f_max=9000.0)


def test_log_mel_matches_whisper_feature_extractor():
    from transformers import WhisperFeatureExtractor

    x = synth.speak("seven apples", voice="en-gb+f4", speed=170, pitch=60)
    ref = WhisperFeatureExtractor()._np_extract_fbank_features(x[None], "cpu")[0]  # (80, F)
    ours = features.log_mel_spectrogram(x)
    torch.testing.assert_close(ours, torch.from_numpy(ref).float(), atol=1e-4, rtol=1e-4)
    batch = features.log_mel_spectrogram(torch.from_numpy(np.stack([x, x[::-1].copy()])))
    torch.testing.assert_close(batch[0], ours)
    with pytest.raises(TypeError, match="floating point"):
        features.log_mel_spectrogram(torch.zeros(1000, dtype=torch.int16))
    with pytest.raises(ValueError, match="audio must have shape"):
        features.log_mel_spectrogram(torch.zeros(2, 2, 1000))


def test_resample_keeps_a_tone_and_speak_makes_16khz_speech():
    t = np.arange(22_050) / 22_050
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    y = synth.resample(tone, 22_050, 16_000)
    assert y.size == 16_000
    peak_hz = np.argmax(np.abs(np.fft.rfft(y))) * 16_000 / y.size
    assert abs(peak_hz - 440) <= 1
    x = synth.speak("one two three", speed=160)
    assert x.dtype == np.float32 and 0.6 < x.size / 16_000 < 3.0 and np.abs(x).max() <= 1
    slow = synth.speak("one two three", speed=90)
    assert slow.size > 1.3 * x.size  # speed is words per minute
    with pytest.raises(ValueError, match="speed"):
        synth.speak("one", speed=10)
    with pytest.raises(ValueError, match="text"):
        synth.speak("  ")


def test_speak_words_timing_is_exact():
    audio, timed = synth.speak_words(["red", "green", "blue"], gap=0.25, lead=0.4)
    sr = 16_000
    assert [w.word for w in timed] == ["red", "green", "blue"]
    assert timed[0].start == pytest.approx(0.4)
    for a, b in itertools.pairwise(timed):
        assert b.start - a.end == pytest.approx(0.25, abs=1 / sr)
    # Silence outside the words, sound at their edges.
    spoken = np.zeros(audio.size, bool)
    for w in timed:
        spoken[round(w.start * sr) : round(w.end * sr)] = True
    assert np.all(audio[~spoken] == 0)
    for w in timed:
        first = audio[round(w.start * sr) : round(w.start * sr) + 160]
        assert np.abs(first).max() > 0.02 * np.abs(audio).max()


def test_small_digits_cache_split_and_features(tmp_path, monkeypatch):
    cfg = speech.SpeechDigitsConfig(
        voices=("en-us", "en-gb+f2"), speeds=(150,), pitches=(40, 70), test_fraction=0.5
    )
    train, test = speech.load_speech_digits(cfg, root=tmp_path, progress=False)
    files = list(tmp_path.glob("speech-digits-*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp*"))
    assert len(train) == len(test) == 20 and train.audio.shape == (20, 16_000)
    train_voices = {s.split("|")[0] for s in train.speakers}
    test_voices = {s.split("|")[0] for s in test.speakers}
    assert train_voices.isdisjoint(test_voices)  # whole voices are held out
    assert sorted(train.labels.tolist()) == sorted(list(range(10)) * 2)
    # Each clip is centred: silence at both ends, speech in the middle.
    assert train.audio[:, :100].abs().max() == 0 and train.audio[:, -100:].abs().max() == 0
    assert train.audio[:, 7_900:8_100].abs().amax(1).min() > 0
    # The second load reads the cache and does not synthesise again.
    monkeypatch.setattr(speech, "_generate", lambda *a: pytest.fail("regenerated"))
    again, _ = speech.load_speech_digits(cfg, root=tmp_path)
    torch.testing.assert_close(again.audio, train.audio)
    mel = speech.features(train.audio[:4])
    assert mel.shape == (4, 40, 100) and torch.isfinite(mel).all()
    with pytest.raises(ValueError, match="two voices"):
        speech.load_speech_digits(speech.SpeechDigitsConfig(voices=("en-us",)), root=tmp_path)
    with pytest.raises(TypeError, match="SpeechDigitsConfig"):
        speech.load_speech_digits({"voices": ("en-us",)})
