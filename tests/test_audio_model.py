"""The small audio transformer: shapes, attention over time, and a learned accuracy floor."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from explore_attention.models.audio import AudioTransformer, AudioTransformerConfig
from explore_attention.tasks.audio import shift_frames

CHECKPOINT = Path(__file__).parents[1] / "src/explore_attention/checkpoints/audio-digits"


def test_positions_are_the_shared_sinusoids():
    from explore_attention.attention.positional import sinusoidal_positions

    model = AudioTransformer(n_mels=12, max_frames=30, d_model=16, num_heads=2, num_layers=1)
    assert torch.equal(model.positions, sinusoidal_positions(15, 16))


def test_forward_shapes_weights_and_backends_agree():
    torch.manual_seed(0)
    model = AudioTransformer(n_mels=12, max_frames=30, d_model=32, num_heads=4, num_layers=2)
    model.eval()
    mel = torch.randn(3, 12, 29)
    out = model(mel, return_weights=True)
    logits, weights = out.logits, out.attentions["encoder"]
    assert logits.shape == (3, 10) and len(weights) == 2
    assert weights[0].shape == (3, 4, 1 + math.ceil(29 / 2), 1 + math.ceil(29 / 2))
    torch.testing.assert_close(weights[1].sum(-1), torch.ones(3, 4, 16))
    # The fused SDPA path (no weights) computes the same logits as the reference path.
    torch.testing.assert_close(model(mel).logits, logits, atol=1e-5, rtol=1e-4)
    # Each clip is classified on its own: batch composition does not matter.
    torch.testing.assert_close(model(mel[1:2]).logits, logits[1:2], atol=1e-5, rtol=1e-4)
    trace = model.trace(mel[0])
    assert trace.kind == "self" and trace.tokens[:2] == ["[CLS]", "0.00s"]
    assert trace.attentions.shape == (2, 4, 16, 16)


def test_bad_input():
    model = AudioTransformer(n_mels=12, max_frames=30, d_model=32, num_heads=4)
    with pytest.raises(ValueError, match="n_mels=12"):
        model(torch.randn(2, 13, 20))
    with pytest.raises(ValueError, match="frames in"):
        model(torch.randn(2, 12, 31))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        model([[0.0]])
    with pytest.raises(ValueError, match="divisible by num_heads"):
        AudioTransformerConfig(d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="dropout"):
        AudioTransformerConfig(dropout=1.0)
    with pytest.raises(TypeError, match="AudioTransformerConfig"):
        AudioTransformer(AudioTransformerConfig(), d_model=8)


def test_shift_frames_matches_a_loop():
    mel = torch.randn(4, 3, 10)
    shifts = torch.tensor([0, 2, -3, 12])
    out = shift_frames(mel, shifts)
    for b, s in enumerate(shifts.tolist()):
        floor = mel[b].min()
        for f in range(10):
            src = f - s
            want = mel[b, :, src] if 0 <= src < 10 else floor.expand(3)
            torch.testing.assert_close(out[b, :, f], want)


ACCURACY_FLOOR = 0.8  # on a voice never heard in training; chance is 0.1


@pytest.mark.slow
def test_short_training_run_learns_spoken_digits(one_thread):
    from explore_attention.train import TrainConfig, get_task, train

    task = get_task("audio-digits", seed=0, small=True)
    # Measured: test accuracy 0.83 after 50 steps, 1.0 after 100 (seed 0).
    cfg = TrainConfig(steps=100, batch_size=32, lr=2e-3, warmup=20, eval_every=100,
                      metric="test_accuracy")  # fmt: skip
    before = task.evaluate(task.model)["test_accuracy"]
    result = train(task, cfg, progress=False, name="audio-digits")
    after = result.history[-1]["test_accuracy"]
    assert after >= ACCURACY_FLOOR, f"test accuracy {after:.3f} (before training {before:.3f})"
    assert result.history[-1]["loss"] < math.log(10) / 2  # well below chance-level loss


@pytest.mark.slow
def test_shipped_checkpoint_recognises_unseen_speeds_and_pitches():
    from explore_attention.data.speech import SpeechDigitsConfig, features, load_speech_digits
    from explore_attention.tasks.audio import accuracy
    from explore_attention.train import load_checkpoint

    model, config = load_checkpoint(CHECKPOINT)
    assert config["task"] == "audio-digits" and config["data_config"] == "full"
    # The small set's speeds (140, 200 wpm) and pitches (40, 70) never occur in the full
    # training set; its voice "en-us" is held out of the full training split.
    train, test = load_speech_digits(SpeechDigitsConfig.small(), progress=False)
    for split in (train, test):
        acc = accuracy(model, features(split.audio), split.labels)
        assert acc >= 0.9, f"shipped checkpoint accuracy {acc:.3f}"
