"""Measure the offline Whisper on espeak-ng speech: WER and word-timestamp error, as JSON.

``python -m explore_attention.audio.evaluate`` speaks a few sentences and word lists in several
voices, transcribes them with the converted tiny.en and prints per-clip and mean numbers. These
are the numbers quoted in the docs; the tests assert bounds on one clip each.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

__all__ = ["SENTENCES", "VOICES", "WORD_LISTS", "main", "measure"]

SENTENCES = (
    "Please call Stella and ask her to bring these things with her from the store.",
    "The birch canoe slid on the smooth planks.",
    "We also need a small plastic snake and a big toy frog for the kids.",
)
WORD_LISTS = (
    ("apple", "river", "garden", "yellow", "window", "morning"),
    ("orange", "table", "summer", "pencil", "happy", "letter"),
)
VOICES = ("en-us", "en-gb", "en-us+f2")


def measure(voices: tuple[str, ...] = VOICES, gap: float = 0.2, lead: float = 0.3) -> dict:
    """WER per (voice, sentence) and mean |boundary error| per (voice, word list)."""
    from tqdm.auto import tqdm

    from ..models.whisper_ct2 import load_whisper
    from . import synth
    from .alignment import transcribe, word_timestamps
    from .wer import word_error_rate

    model, processor = load_whisper()
    wer, timing = [], []
    jobs = [(v, s) for v in voices for s in SENTENCES] + [
        (v, w) for v in voices for w in WORD_LISTS
    ]
    for voice, item in tqdm(jobs, desc="whisper on espeak-ng"):
        if isinstance(item, str):
            text, _, _ = transcribe(model, processor, synth.speak(item, voice=voice, speed=160))
            wer.append({"voice": voice, "reference": item, "hypothesis": text,
                        "wer": word_error_rate(item, text)})  # fmt: skip
            continue
        audio, truth = synth.speak_words(list(item), gap=gap, lead=lead, voice=voice)
        result = word_timestamps(model, processor, audio)
        said = [w.word.lower().strip(".,!?") for w in result.words]
        entry = {"voice": voice, "words": list(item), "heard": said, "exact": said == list(item)}
        # Timing is scored whenever the word count matches (a misspelt word still has a place).
        entry["matched"] = len(said) == len(item)
        if entry["matched"]:
            err = [abs(w.start - t.start) for w, t in zip(result.words, truth)]
            err += [abs(w.end - t.end) for w, t in zip(result.words, truth)]
            entry["mean_abs_boundary_error_s"] = float(np.mean(err))
        timing.append(entry)
    matched = [t["mean_abs_boundary_error_s"] for t in timing if t["matched"]]
    return {
        "mean_wer": float(np.mean([w["wer"] for w in wer])),
        "mean_abs_boundary_error_s": float(np.mean(matched)) if matched else None,
        "word_lists_timed": f"{len(matched)}/{len(timing)}",
        "word_lists_transcribed_exactly": f"{sum(t['exact'] for t in timing)}/{len(timing)}",
        "wer": wer,
        "timing": timing,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m explore_attention.audio.evaluate")
    p.add_argument("--voices", nargs="+", default=list(VOICES), help="espeak-ng voices")
    args = p.parse_args(argv)
    print(json.dumps(measure(tuple(args.voices)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
