"""Translation data (numbers, dates, TSV corpus), tasks, and the shipped translators' quality."""

from __future__ import annotations

import datetime
import random
from pathlib import Path

import pytest
import torch

from explore_attention import train as tr
from explore_attention.data import translation as T
from explore_attention.tasks import translation as tasks

pytestmark = pytest.mark.usefixtures("one_thread")


CKPT = Path(tasks.CHECKPOINTS)


def test_numbers_splits_are_disjoint_and_long_is_held_out() -> None:
    d = T.numbers(train_size=600, per_split=150, max_train_len=10)
    src = {k: {a for a, _ in v} for k, v in d.splits.items()}
    for a in ("validation", "test", "long"):
        for b in ("train", "validation", "test", "long"):
            if a != b:
                assert not src[a] & src[b], (a, b)
    assert max(len(a.split()) for a, _ in d.splits["train"]) <= 10
    assert min(len(a.split()) for a, _ in d.splits["long"]) == 11
    assert all(" " not in b and "-" not in a and "," not in a for a, b in d.splits["test"])
    # German puts the units first: the alignment crosses
    assert T._english_words(42) == "forty two"
    assert ("forty two", "zweiundvierzig") in [
        (T._english_words(42), b) for _, b in [("", "zweiundvierzig")]
    ]
    assert d.src_vocab.level == "word" and d.tgt_vocab.level == "char"


def test_dates_are_iso_and_split_by_date() -> None:
    d = T.dates(per_split=100, train_size=400)
    targets = {k: {b for _, b in v} for k, v in d.splits.items()}
    assert not targets["train"] & targets["test"]
    assert not targets["validation"] & targets["test"]
    for a, b in d.splits["test"]:
        day = datetime.date.fromisoformat(b)
        assert datetime.date(1950, 1, 1) <= day <= datetime.date(2049, 12, 31)
        assert str(day.day) in a  # the day of the month is written in every style
    text = " ".join(a for a, _ in d.splits["train"])
    assert any(w in text for w in ("octobre", "oct.", "janv.", "févr."))  # French
    assert any(w in text for w in ("Oktober", "Januar", "Mai", "März"))  # German


def test_vocab_round_trip_and_unknown() -> None:
    v = T.Vocab.build(["abc", "cab"], "char")
    assert v.tokens[:4] == T.SPECIALS
    assert v.decode(v.encode("cab")) == "cab"
    assert v.encode("z") == [T.UNK]
    w = T.Vocab.from_json(T.Vocab.build(["one two", "two"], "word").to_json())
    assert w.encode("two one") == [4, 5] and w.decode([1, 4, 5, 2]) == "two one"
    with pytest.raises(ValueError, match="level"):
        T.Vocab.build([], "byte")


def _write_corpus(path: Path, n: int = 300) -> None:
    rng = random.Random(0)
    words = ["red", "green", "blue", "cat", "dog", "fish"]
    lines = set()
    while len(lines) < n:
        s = [rng.choice(words) for _ in range(rng.randint(2, 4))]
        lines.add(" ".join(s) + "\t" + " ".join(reversed(s)))
    path.write_text("\n".join(sorted(lines)) + "\n\n", encoding="utf-8")


def test_load_tsv(tmp_path: Path) -> None:
    f = tmp_path / "corpus.tsv"
    _write_corpus(f, 100)
    d = T.load_tsv(f, validation=0.1, test=0.2)
    assert {k: len(v) for k, v in d.splits.items()} == {"train": 70, "validation": 10, "test": 20}
    assert not {a for a, _ in d.splits["train"]} & {a for a, _ in d.splits["test"]}
    with pytest.raises(FileNotFoundError, match="no parallel corpus"):
        T.load_tsv(tmp_path / "missing.tsv")
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\nx\ty\tz\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:2: expected 'source<TAB>target', got 3"):
        T.load_tsv(bad)
    bad.write_text("a\tb\nc\t \n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty target"):
        T.load_tsv(bad)


def test_tsv_task_learns(tmp_path: Path) -> None:
    f = tmp_path / "corpus.tsv"
    _write_corpus(f)
    task = tr.get_task("tsv", seed=0, path=str(f), hidden=32, emb_dim=16, eval_size=60)
    res = tr.train(
        task, tr.TrainConfig(steps=250, batch_size=32, eval_every=125, lr=5e-3), progress=False
    )
    assert res.history[-1]["loss"] < 0.2 * res.history[0]["loss"] + 0.05, res.history
    assert res.history[-1]["accuracy"] >= 0.8, res.history


@pytest.fixture(scope="module")
def held_out() -> T.ParallelData:
    # Test and long numbers are fixed by construction (hash of the value), independent of the
    # training set's size, so a small generation gives genuine held-out pairs.
    return T.numbers(train_size=0, per_split=300, max_train_len=10)


@pytest.mark.skipif(not (CKPT / "numbers-de-bahdanau").exists(), reason="checkpoint not shipped")
def test_shipped_translators(held_out: T.ParallelData) -> None:
    """Attention: ≥ 99 % exact match on unseen numbers, and it keeps its accuracy on the held-out
    longest sources; the no-attention baseline drops there."""
    acc = {}
    for name in ("numbers-de-bahdanau", "numbers-de-gru"):
        model, sv, tv, _ = tasks.load_translator(name)
        for split in ("test", "long"):
            pairs = held_out.splits[split]
            hyps, _ = tasks.translate(model, sv, tv, [a for a, _ in pairs])
            acc[name, split] = sum(h == b for h, (_, b) in zip(hyps, pairs)) / len(pairs)
    assert acc["numbers-de-bahdanau", "test"] >= 0.99, acc
    assert acc["numbers-de-bahdanau", "long"] >= 0.9 * acc["numbers-de-bahdanau", "test"], acc
    assert acc["numbers-de-gru", "long"] <= acc["numbers-de-bahdanau", "long"] - 0.05, acc


@pytest.mark.skipif(not (CKPT / "numbers-de-bahdanau").exists(), reason="checkpoint not shipped")
def test_crossed_alignment() -> None:
    """In 'forty two' → 'zweiundvierzig' the model reads 'two' first, then 'forty'."""
    model, sv, tv, _ = tasks.load_translator("numbers-de-bahdanau")
    (out,), w = tasks.translate(model, sv, tv, ["forty two"])
    assert out == "zweiundvierzig"
    w = w[0, : len(out)]  # (T, S): rows = German characters
    assert w[: len("zwei")].argmax(-1).tolist().count(1) >= 3  # "zwei" attends to "two"
    assert w[len("zweiund") :].argmax(-1).tolist().count(0) >= 4  # "vierzig" attends to "forty"
    beam, _ = tasks.translate(model, sv, tv, ["forty two"], beam=3)
    assert beam == ["zweiundvierzig"]
    with pytest.raises(TypeError, match="list of strings"):
        tasks.translate(model, sv, tv, "forty two")
    torch.testing.assert_close(w.sum(-1), torch.ones(len(out)))


@pytest.mark.skipif(not (CKPT / "dates-iso-bahdanau").exists(), reason="checkpoint not shipped")
def test_shipped_dates_translator() -> None:
    """Every date that is not genuinely ambiguous (en M/D/YY vs es D/M/YY) comes out right."""
    from explore_attention.tasks.translation_report import ambiguous_date

    assert ambiguous_date("3/10/24") and not ambiguous_date("13/10/24")
    assert not ambiguous_date("03.10.24") and not ambiguous_date("3/3/24")
    model, sv, tv, _ = tasks.load_translator("dates-iso-bahdanau")
    pairs = [
        p for p in T.dates(train_size=0, per_split=300).splits["test"] if not ambiguous_date(p[0])
    ]
    hyps, _ = tasks.translate(model, sv, tv, [a for a, _ in pairs])
    assert sum(h == b for h, (_, b) in zip(hyps, pairs)) / len(pairs) >= 0.99
