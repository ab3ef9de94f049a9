r"""Word error rate: the edit distance between word sequences over the reference length.

.. math::

    \mathrm{WER} = \frac{S + D + I}{N}

with :math:`S, D, I` the substitutions, deletions and insertions of a minimum-cost alignment
(Levenshtein 1966) and :math:`N` the number of reference words. Text is normalised first:
lower case, punctuation dropped, digits spelled as they are (no number normalisation).
"""

from __future__ import annotations

import re

__all__ = ["edit_distance", "normalize", "word_error_rate"]


def normalize(text: str) -> list[str]:
    """Lower-case words with punctuation removed (apostrophes inside words kept)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return re.findall(r"[a-z0-9]+(?:'[a-z0-9]+)*", text.lower())


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance between two token lists, by dynamic programming in O(len·len)."""
    prev = list(range(len(hyp) + 1))  # distances from the empty reference prefix
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of ``hypothesis`` against ``reference`` (0 = perfect; can exceed 1)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        raise ValueError(f"reference must contain at least one word, got {reference!r}")
    return edit_distance(ref, hyp) / len(ref)
