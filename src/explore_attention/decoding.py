r"""Greedy and beam-search decoding for any model with ``encode`` / ``step``, and the metrics.

A decodable model (:class:`~explore_attention.models.seq2seq.Seq2Seq`,
:class:`~explore_attention.models.transformer.Transformer`) provides::

    encode(src (B, S)) -> state                       # dict of batch-first tensors (or KV caches)
    step(y_prev (B,), state) -> (logits (B, V), state, weights (B, S) or None)

Beam search keeps the ``k`` best prefixes by total log-probability
:math:`\sum_t \log p(y_t \mid y_{<t}, x)` and ranks finished hypotheses by the length-normalised
score :math:`\log p / |y|^\alpha` (Wu et al. 2016, "Google's Neural Machine Translation System",
arXiv:1609.08144, §7, without its constant 5).

Metrics: exact match (the whole output equals the reference) and corpus BLEU (Papineni et al.
2002) computed by ``sacrebleu`` (Post 2018, arXiv:1804.08771).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .attention.multihead import KVCache

__all__ = ["beam_search", "bleu", "exact_match", "greedy", "reorder_state"]

BOS, EOS = 1, 2


def reorder_state(state: Any, index: Tensor) -> Any:
    """Select batch rows ``index`` of every tensor / KV cache inside a decoder state."""
    if isinstance(state, Tensor):
        return state.index_select(0, index)
    if isinstance(state, KVCache):
        return KVCache(
            state.keys.index_select(0, index), state.values.index_select(0, index), state.length
        )
    if isinstance(state, dict):
        return {k: reorder_state(v, index) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(reorder_state(v, index) for v in state)
    return state  # ints (positions) and None


@torch.no_grad()
def greedy(
    model: torch.nn.Module, src: Tensor, max_len: int = 64
) -> tuple[list[list[int]], Tensor | None]:
    """Decode ``src (B, S)`` greedily; return token lists (no BOS/EOS) and weights ``(B, T, S)``."""
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a positive int, got {max_len!r}")
    B = src.shape[0]
    state = model.encode(src)
    y = torch.full((B,), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    tokens, weights = [], []
    for _ in range(max_len):
        logits, state, w = model.step(y, state)
        y = logits.argmax(-1)  # (B,)
        tokens.append(y)
        weights.append(w)
        done |= y == EOS
        if bool(done.all()):
            break
    toks = torch.stack(tokens, 1).tolist()  # (B, T)
    out = [row[: row.index(EOS)] if EOS in row else row for row in toks]
    w = None if weights[0] is None else torch.stack(weights, 1)  # (B, T, S)
    return out, w


@torch.no_grad()
def beam_search(
    model: torch.nn.Module, src: Tensor, beam: int = 4, max_len: int = 64, alpha: float = 0.6
) -> list[list[int]]:
    """Beam-search each row of ``src (B, S)``; return the best token list per row."""
    if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
        raise ValueError(f"beam must be a positive int, got {beam!r}")
    results = []
    for b in range(src.shape[0]):
        state = model.encode(src[b : b + 1])
        scores = torch.zeros(1, device=src.device)  # (k,) log p of each live prefix
        prefixes: list[list[int]] = [[]]
        finished: list[tuple[float, list[int]]] = []
        y = torch.full((1,), BOS, dtype=torch.long, device=src.device)
        for t in range(max_len):
            logits, state, _ = model.step(y, state)
            logp = torch.log_softmax(logits.float(), -1) + scores[:, None]  # (k, V)
            V = logp.shape[1]
            top, idx = logp.flatten().topk(min(2 * beam, logp.numel()))
            new_rows, new_scores, new_prefixes = [], [], []
            for s, i in zip(top.tolist(), idx.tolist()):
                row, tok = divmod(i, V)
                if tok == EOS:
                    finished.append((s / max(1, t + 1) ** alpha, prefixes[row]))
                else:
                    new_rows.append(row)
                    new_scores.append(s)
                    new_prefixes.append([*prefixes[row], tok])
                if len(new_rows) == beam:
                    break
            best_live = max(new_scores, default=float("-inf")) / max(1, max_len) ** alpha
            if (len(finished) >= beam and max(f[0] for f in finished) >= best_live) or not new_rows:
                break
            index = torch.tensor(new_rows, device=src.device)
            state = reorder_state(state, index)
            scores = torch.tensor(new_scores, device=src.device)
            prefixes = new_prefixes
            y = torch.tensor([p[-1] for p in prefixes], device=src.device)
        if not finished:  # ran out of length: take the best live prefix
            finished = [(float(scores.max()), prefixes[int(scores.argmax())])]
        results.append(max(finished, key=lambda f: f[0])[1])
    return results


def exact_match(hypotheses: Sequence[Any], references: Sequence[Any]) -> float:
    """Fraction of hypotheses equal to their reference."""
    if len(hypotheses) != len(references):
        raise ValueError(f"got {len(hypotheses)} hypotheses for {len(references)} references")
    if not references:
        raise ValueError("references must not be empty")
    return sum(h == r for h, r in zip(hypotheses, references)) / len(references)


def bleu(
    hypotheses: Sequence[str], references: Sequence[str], *, char_level: bool = False
) -> float:
    """Corpus BLEU (0–100) by sacrebleu; ``char_level=True`` scores characters as tokens."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"got {len(hypotheses)} hypotheses for {len(references)} references")
    if char_level:  # German number words are single compounds: BLEU over characters
        hypotheses = [" ".join(h.replace(" ", "_")) for h in hypotheses]
        references = [" ".join(r.replace(" ", "_")) for r in references]
    return float(
        sacrebleu.corpus_bleu(
            list(hypotheses), [list(references)], tokenize="none" if char_level else "13a"
        ).score
    )
