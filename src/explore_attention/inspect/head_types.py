r"""What does each head do? One classifier of attention patterns, over an :class:`AttentionTrace`.

For every layer :math:`l` and head :math:`h` (weights :math:`A_{ij}`, query :math:`i`, key
:math:`j`) six scores in :math:`[0, 1]` are computed, each the mean over the queries it applies to:

* ``previous_token``: :math:`A_{i,i-1}` over queries :math:`i \ge 1` (Voita et al. 2019,
  arXiv:1905.09418, "positional heads");
* ``induction``: :math:`\sum_{j \in S_i} A_{ij}`,
  :math:`S_i = \{j + 1 : j + 1 < i,\ t_j = t_i\}`: the token *after* an earlier copy of
  the current token, over queries that have such a copy (Olsson et al. 2022, arXiv:2209.11895);
* ``first_token``: :math:`A_{i,0}` over :math:`i \ge 1`, the first token as an attention sink
  (Xiao et al. 2023, arXiv:2309.17453; Clark et al. 2019's [CLS] heads);
* ``delimiter``: :math:`\sum_{j \in D} A_{ij}` over all queries, :math:`D` = separator and
  punctuation keys other than position 0 (Clark et al. 2019, arXiv:1906.04341: [SEP] and "."
  heads);
* ``diagonal``: :math:`A_{ii}`, attending to oneself;
* ``broad``: the normalised entropy :math:`-\sum_j A_{ij} \log A_{ij} / \log n_i` over the
  :math:`n_i \ge 2` keys query :math:`i` may see (1 = uniform; Clark et al. 2019's broad heads).

A score that cannot be measured on this input (no repeated token for ``induction``, no
delimiter for ``delimiter``) is ``nan`` and never wins. The **label** of a head is the pattern
with the highest score among the five specific ones whose score reaches its threshold in
:data:`THRESHOLDS` (0.4: the head puts at least 40 % of its weight, on average, where the
pattern says); failing that ``"broad"`` when its entropy score reaches 0.8; else ``"mixed"``.

Causal traces: query :math:`i` sees :math:`n_i = i + 1` keys, so query 0 (which can only attend
to itself) is left out of ``first_token``, ``diagonal`` and ``broad``. Cross-attention (queries
and keys from different sequences) has no positions to compare; it is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .trace import AttentionTrace, self_attention_weights

__all__ = ["DELIMITERS", "PATTERNS", "THRESHOLDS", "HeadTypes", "classify_heads"]

PATTERNS = ("previous_token", "induction", "first_token", "delimiter", "diagonal", "broad")

# Minimum score for a head to get a pattern's label (see the module docstring).
THRESHOLDS: dict[str, float] = {
    "previous_token": 0.4,
    "induction": 0.4,
    "first_token": 0.4,
    "delimiter": 0.4,
    "diagonal": 0.4,
    "broad": 0.8,
}

# Key tokens counted as delimiters, after stripping BPE / SentencePiece word markers and spaces.
DELIMITERS = frozenset(
    {"[SEP]", "</s>", "<|endoftext|>", "<eos>", ".", ",", ";", ":", "!", "?", "\n", "\\n", "Ċ"}
)


def _is_delimiter(token: str) -> bool:
    if token in DELIMITERS or (token and token.strip() == "" and "\n" in token):
        return True
    return token.lstrip("Ġ▁").strip() in DELIMITERS


@dataclass(frozen=True)
class HeadTypes:
    """Per-head pattern scores and labels for one trace.

    ``scores[pattern]`` is ``(layers, heads)``; ``labels[l][h]`` is a pattern name or
    ``"mixed"``.
    """

    scores: dict[str, Tensor]  # pattern -> (layers, heads), nan where not measurable
    labels: list[list[str]]  # (layers, heads)

    def ranked(self, pattern: str) -> list[tuple[int, int, float]]:
        """``(layer, head, score)`` for every head, best first (unmeasurable heads omitted)."""
        if pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")
        S = self.scores[pattern]
        out = [
            (l, h, float(S[l, h]))
            for l in range(S.shape[0])
            for h in range(S.shape[1])
            if not math.isnan(float(S[l, h]))
        ]
        return sorted(out, key=lambda t: -t[2])

    def to_dict(self) -> dict:
        """JSON-ready: ``{"scores": {pattern: [[...]]}, "labels": [[...]], "thresholds"}``."""
        return {
            "scores": {
                p: [[None if math.isnan(v) else round(v, 4) for v in row] for row in s.tolist()]
                for p, s in self.scores.items()
            },
            "labels": self.labels,
            "thresholds": dict(THRESHOLDS),
        }


def classify_heads(trace: AttentionTrace) -> HeadTypes:
    """Score every head of ``trace`` on the six patterns and label it (module docstring)."""
    A = self_attention_weights(trace, "head types")  # (layers, heads, L, L)
    n_layers, n_heads, L, _ = A.shape
    nan = torch.full((n_layers, n_heads), float("nan"))
    causal = trace.kind == "causal"
    i = torch.arange(L)
    later = i[1:]  # queries 1 .. L-1
    scores: dict[str, Tensor] = {}

    scores["previous_token"] = A[:, :, later, later - 1].mean(-1) if L > 1 else nan
    scores["first_token"] = A[:, :, later, 0].mean(-1) if L > 1 else nan
    rows = later if causal else i  # a causal query 0 can only attend to itself
    scores["diagonal"] = A[:, :, rows, rows].mean(-1) if len(rows) else nan

    # induction: for query i, the keys right after earlier copies of token i
    tok = trace.tokens
    target = torch.zeros(L, L)
    for q in range(L):
        for j in range(q - 1):  # j + 1 < q
            if tok[j] == tok[q]:
                target[q, j + 1] = 1.0
    has = target.sum(-1) > 0  # (L,) queries with an earlier copy
    if has.any():
        scores["induction"] = (A[:, :, has] * target[has]).sum(-1).mean(-1)
    else:
        scores["induction"] = nan

    delim = torch.tensor([_is_delimiter(t) for t in trace.key_tokens])  # (L,)
    delim[0] = False  # position 0 is the first-token pattern's
    if delim.any():
        scores["delimiter"] = A[..., delim].sum(-1).mean(-1)
    else:
        scores["delimiter"] = nan

    visible = (i + 1).float() if causal else torch.full((L,), float(L))  # (L,) keys per query
    use = visible >= 2
    if use.any():
        P = A[:, :, use]  # (layers, heads, n, L)
        ent = -(P * torch.log(P.clamp_min(1e-12))).sum(-1)  # (layers, heads, n)
        scores["broad"] = (ent / torch.log(visible[use])).mean(-1).clamp(0, 1)
    else:
        scores["broad"] = nan
    scores = {p: scores[p].float() for p in PATTERNS}

    labels = []
    for l in range(n_layers):
        row = []
        for h in range(n_heads):
            best, best_score = "mixed", -1.0
            for p in PATTERNS[:-1]:
                s = float(scores[p][l, h])
                if not math.isnan(s) and s >= THRESHOLDS[p] and s > best_score:
                    best, best_score = p, s
            b = float(scores["broad"][l, h])
            if best == "mixed" and not math.isnan(b) and b >= THRESHOLDS["broad"]:
                best = "broad"
            row.append(best)
        labels.append(row)
    return HeadTypes(scores, labels)
