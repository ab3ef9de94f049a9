"""Translation pairs generated from real language resources, and a loader for your own corpus.

* :func:`numbers` — English number words → German number words (``num2words``, Savoir-faire
  Linux). German says units before tens (*zweiundvierzig* = "two-and-forty" for *forty-two*),
  so the alignment between the two sides **crosses**: a non-monotonic alignment to learn.
* :func:`dates` — dates written by ``babel`` (Unicode CLDR data) in English, French, German and
  Spanish in four styles (``10/3/24``, ``3 oct. 2024``, ``3. Oktober 2024``, ``jueves, 3 de
  octubre de 2024``) → ISO 8601 ``2024-10-03``.
* :func:`load_tsv` — a parallel corpus with one ``source<TAB>target`` pair per line.

Tokenisation (a decision, see docs/design.md): **words** on the English side of ``numbers``
(so an alignment plot reads "forty", "two"; hyphens and commas become spaces), **characters**
on the German side (German number words are single compounds) and on both sides of ``dates``.
:class:`Vocab` does either; ids 0–3 are PAD, BOS, EOS, UNK on every side, matching
:mod:`explore_attention.data.synthetic`.

Splits are made by construction, never by chance overlap: every number / date goes to exactly
one of train / validation / test by a hash of its value (for ``numbers``, 1–99 — the lexicon
every other number is composed of — always go to train, so the test split measures composition
of unseen numbers), and for ``numbers`` the source lengths above ``max_train_len`` words form a
separate ``long`` split, never seen in training, that tests length generalisation.
"""

from __future__ import annotations

import datetime
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["SPECIALS", "ParallelData", "Vocab", "dates", "encode_pairs", "load_tsv", "numbers"]

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")  # ids 0, 1, 2, 3
PAD, BOS, EOS, UNK = 0, 1, 2, 3
Pair = tuple[str, str]


@dataclass(frozen=True)
class Vocab:
    tokens: tuple[str, ...]  # id -> token; the first four are SPECIALS
    level: str  # "char" or "word": how text is split into tokens

    @classmethod
    def build(cls, texts: Iterable[str], level: str) -> Vocab:
        """All tokens seen in ``texts``, in order of frequency (ties alphabetically)."""
        if level not in ("char", "word"):
            raise ValueError(f"level must be 'char' or 'word', got {level!r}")
        counts = Counter(t for text in texts for t in cls.split(text, level))
        return cls(SPECIALS + tuple(sorted(counts, key=lambda t: (-counts[t], t))), level)

    @staticmethod
    def split(text: str, level: str) -> list[str]:
        return list(text) if level == "char" else text.split()

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (unknown tokens → UNK), without BOS/EOS."""
        index = {t: i for i, t in enumerate(self.tokens)}
        return [index.get(t, UNK) for t in self.split(text, self.level)]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; specials are dropped."""
        toks = [self.tokens[i] for i in ids if i >= len(SPECIALS) or i == UNK]
        return ("" if self.level == "char" else " ").join(toks)

    def pieces(self, text: str) -> list[str]:
        """The tokens of ``text`` (labels for attention plots)."""
        return self.split(text, self.level)

    def to_json(self) -> dict:
        return {"tokens": list(self.tokens), "level": self.level}

    @classmethod
    def from_json(cls, d: dict) -> Vocab:
        return cls(tuple(d["tokens"]), d["level"])


@dataclass(frozen=True)
class ParallelData:
    splits: dict[str, list[Pair]]  # "train" / "validation" / "test" (/ "long") -> pairs
    src_vocab: Vocab  # built from the training split
    tgt_vocab: Vocab


def encode_pairs(pairs: Sequence[Pair], src: Vocab, tgt: Vocab) -> tuple[Tensor, Tensor]:
    """Pad pairs into ``src (N, S)`` and ``tgt (N, T)`` (targets framed by BOS … EOS)."""
    if not pairs:
        raise ValueError("pairs must not be empty")
    s = [src.encode(a) for a, _ in pairs]
    t = [[BOS, *tgt.encode(b), EOS] for _, b in pairs]
    S, T = max(map(len, s)), max(map(len, t))
    src_t = torch.zeros(len(pairs), S, dtype=torch.long)  # (N, S), PAD = 0
    tgt_t = torch.zeros(len(pairs), T, dtype=torch.long)  # (N, T)
    for i, (a, b) in enumerate(zip(s, t)):
        src_t[i, : len(a)] = torch.tensor(a)
        tgt_t[i, : len(b)] = torch.tensor(b)
    return src_t, tgt_t


def _bucket(value: int) -> float:
    """A fixed pseudo-random number in [0, 1) for ``value`` (Knuth's multiplicative hash)."""
    return ((value * 2654435761) % 2**32) / 2**32


def _split_of(value: int) -> str:
    u = _bucket(value)
    return "train" if u < 0.8 else "validation" if u < 0.9 else "test"


def _english_words(n: int) -> str:
    from num2words import num2words

    return num2words(n, lang="en").replace("-", " ").replace(",", "")


def numbers(
    max_value: int = 999_999,
    max_train_len: int = 10,
    per_split: int = 2000,
    train_size: int = 40_000,
    seed: int = 0,
) -> ParallelData:
    """English number words → German, e.g. ``forty two`` → ``zweiundvierzig``.

    Numbers are drawn log-uniformly from ``1..max_value`` (so short and long ones both occur).
    ``train`` holds ``train_size`` pairs (repeats allowed) of at most ``max_train_len`` source
    words, including every number below 100 — the lexicon the others are composed from;
    ``validation`` / ``test`` hold ``per_split`` distinct numbers ≥ 100 each, assigned by a hash
    of the value, so no number is in two splits; ``long`` holds numbers longer than
    ``max_train_len`` words (held out from every other split).
    """
    from num2words import num2words

    if not 10 <= max_value < 10**9:
        raise ValueError(f"max_value must be in [10, 1e9), got {max_value}")
    rng = random.Random(seed)
    want = {"train": train_size, "validation": per_split, "test": per_split, "long": per_split}
    splits: dict[str, list[Pair]] = {k: [] for k in want}
    seen: set[int] = set()  # validation / test / long hold distinct numbers
    digits = len(str(max_value))
    tries = 0
    while any(len(splits[k]) < want[k] for k in want) and tries < 50 * sum(want.values()):
        tries += 1
        d = rng.randint(1, digits)
        n = rng.randint(10 ** (d - 1), min(max_value, 10**d - 1))
        src = _english_words(n)
        # 1..99 are the lexicon every number is built from: always training data
        name = "long" if len(src.split()) > max_train_len else "train" if n < 100 else _split_of(n)
        if len(splits[name]) >= want[name] or (name != "train" and n in seen):
            continue
        seen.add(n)
        splits[name].append((src, num2words(n, lang="de")))
    return _with_vocabs(splits, "word", "char")


def dates(
    start: datetime.date = datetime.date(1950, 1, 1),
    end: datetime.date = datetime.date(2049, 12, 31),
    locales: Sequence[str] = ("en", "fr", "de", "es"),
    styles: Sequence[str] = ("short", "medium", "long", "full"),
    per_split: int = 2000,
    train_size: int = 40_000,
    seed: int = 0,
) -> ParallelData:
    """Dates written in several languages → ISO 8601 (``jeudi 3 octobre 2024`` → ``2024-10-03``).

    Each date belongs to one split by a hash of its day number; locale and style are random.
    """
    from babel.dates import format_date

    if end <= start:
        raise ValueError(f"end must be after start, got start={start}, end={end}")
    rng = random.Random(seed)
    days = (end - start).days + 1
    want = {"train": train_size, "validation": per_split, "test": per_split}
    splits: dict[str, list[Pair]] = {k: [] for k in want}
    while any(len(splits[k]) < want[k] for k in want):
        offset = rng.randrange(days)
        name = _split_of(offset)
        if len(splits[name]) >= want[name]:
            continue
        d = start + datetime.timedelta(days=offset)
        text = format_date(d, rng.choice(list(styles)), locale=rng.choice(list(locales)))
        splits[name].append((text, d.isoformat()))
    return _with_vocabs(splits, "char", "char")


def _with_vocabs(splits: dict[str, list[Pair]], src_level: str, tgt_level: str) -> ParallelData:
    train = splits["train"]
    return ParallelData(
        splits,
        Vocab.build((a for a, _ in train), src_level),
        Vocab.build((b for _, b in train), tgt_level),
    )


def load_tsv(
    path: str | Path,
    *,
    src_level: str = "word",
    tgt_level: str = "word",
    validation: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
) -> ParallelData:
    """Load a ``source<TAB>target`` corpus (UTF-8, one pair per line, blank lines skipped).

    Pairs are shuffled with ``seed`` and split into train / validation / test; duplicate
    sources stay in one split. Raises ``FileNotFoundError`` or ``ValueError`` naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no parallel corpus at {path}")
    if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
        raise ValueError(
            f"validation and test must be fractions summing below 1, got "
            f"validation={validation}, test={test}"
        )
    pairs: list[Pair] = []
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise ValueError(
                f"{path}:{no}: expected 'source<TAB>target', got {len(parts)} "
                f"tab-separated fields in {line[:60]!r}"
            )
        a, b = parts[0].strip(), parts[1].strip()
        if not a or not b:
            raise ValueError(f"{path}:{no}: empty {'source' if not a else 'target'} in {line!r}")
        pairs.append((a, b))
    if len(pairs) < 3:
        raise ValueError(f"{path}: need at least 3 pairs to split, got {len(pairs)}")
    sources = sorted({a for a, _ in pairs})
    random.Random(seed).shuffle(sources)
    n_val, n_test = round(validation * len(sources)), round(test * len(sources))
    where = {a: "test" for a in sources[:n_test]}
    where.update({a: "validation" for a in sources[n_test : n_test + n_val]})
    splits: dict[str, list[Pair]] = {"train": [], "validation": [], "test": []}
    for a, b in pairs:
        splits[where.get(a, "train")].append((a, b))
    if not splits["train"]:
        raise ValueError(f"{path}: no training pairs left after the split")
    return _with_vocabs(splits, src_level, tgt_level)
