"""Translation tasks for :mod:`explore_attention.train`: ``numbers-de``, ``dates-iso``, ``tsv``.

Also the tools that use a trained translator: :func:`translate` (greedy or beam, with the
attention weights), :func:`evaluate_by_length` (exact match and BLEU per source length, the
measurement behind Bahdanau et al. 2014's Fig. 2) and :func:`load_translator`.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path

import torch
from torch import Tensor, nn

from ..data import translation as tr
from ..decoding import beam_search, bleu, greedy
from ..train import Task, TrainConfig, load_checkpoint
from .common import build_model, seq2seq_loss

__all__ = [
    "evaluate_by_length",
    "load_translator",
    "make_dates",
    "make_numbers",
    "make_tsv",
    "translate",
]

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"

# Cached so a notebook or test that builds several models generates the data once.
_numbers = functools.lru_cache(maxsize=4)(tr.numbers)
_dates = functools.lru_cache(maxsize=4)(tr.dates)


def _make(
    data: tr.ParallelData, data_meta: dict, model: str, sizes: dict, eval_size: int, steps: int
) -> Task:
    sv, tv = data.src_vocab, data.tgt_vocab
    net, config = build_model(model, len(sv), len(tv), **sizes)
    src, tgt = tr.encode_pairs(data.splits["train"], sv, tv)
    val = data.splits["validation"][:eval_size]
    val_src, _ = tr.encode_pairs(val, sv, tv)

    def sample(g: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
        idx = torch.randint(0, src.shape[0], (n,), generator=g)
        s, t = src[idx], tgt[idx]
        # trim columns that are padding in every row: (n, S') and (n, T')
        return s[:, : int((s != 0).sum(1).max())], t[:, : int((t != 0).sum(1).max())]

    def evaluate(m: nn.Module) -> dict[str, float]:
        dev = next(m.parameters()).device
        hyps, _ = greedy(m, val_src.to(dev), max_len=tgt.shape[1] + 8)
        out = [tv.decode(h) for h in hyps]
        refs = [b for _, b in val]
        return {"accuracy": sum(h == r for h, r in zip(out, refs)) / len(refs)}

    meta = {"data": data_meta, "src_vocab": sv.to_json(), "tgt_vocab": tv.to_json()}
    return Task(
        net,
        config,
        sample,
        seq2seq_loss,
        evaluate,
        TrainConfig(steps=steps, batch_size=64, lr=3e-3, eval_every=250, target=0.995, warmup=100),
        meta,
    )


def _sizes(model: str, emb_dim: int, hidden: int, extra: dict) -> dict:
    if model == "transformer":
        return {"d_model": hidden, **extra}
    return {"emb_dim": emb_dim, "hidden": hidden, **extra}


def make_numbers(
    model: str = "bahdanau",
    emb_dim: int = 32,
    hidden: int = 96,
    train_size: int = 40_000,
    max_train_len: int = 10,
    eval_size: int = 500,
    steps: int = 4000,
    **extra: int,
) -> Task:
    """``numbers-de``: English number words → German (crossed alignments)."""
    kw = {"train_size": train_size, "max_train_len": max_train_len}
    return _make(
        _numbers(**kw),
        {"name": "numbers", **kw},
        model,
        _sizes(model, emb_dim, hidden, extra),
        eval_size,
        steps,
    )


def make_dates(
    model: str = "bahdanau",
    emb_dim: int = 32,
    hidden: int = 96,
    train_size: int = 40_000,
    eval_size: int = 500,
    steps: int = 3000,
    **extra: int,
) -> Task:
    """``dates-iso``: dates written in en/fr/de/es → ISO 8601."""
    return _make(
        _dates(train_size=train_size),
        {"name": "dates", "train_size": train_size},
        model,
        _sizes(model, emb_dim, hidden, extra),
        eval_size,
        steps,
    )


def make_tsv(
    path: str = "",
    model: str = "bahdanau",
    src_level: str = "word",
    tgt_level: str = "word",
    emb_dim: int = 64,
    hidden: int = 128,
    eval_size: int = 500,
    steps: int = 5000,
    **extra: int,
) -> Task:
    """``tsv``: your own ``source<TAB>target`` corpus (``-o path=corpus.tsv``)."""
    if not path:
        raise ValueError("the tsv task needs a corpus: -o path=FILE.tsv")
    data = tr.load_tsv(path, src_level=src_level, tgt_level=tgt_level)
    meta = {"name": "tsv", "path": str(path), "src_level": src_level, "tgt_level": tgt_level}
    return _make(data, meta, model, _sizes(model, emb_dim, hidden, extra), eval_size, steps)


# ------------------------------------------------------------------ using a translator
def load_translator(name_or_path: str | Path) -> tuple[nn.Module, tr.Vocab, tr.Vocab, dict]:
    """Load a translation checkpoint (a folder, or a name under the package's checkpoints/)."""
    path = Path(name_or_path)
    if not path.exists():
        path = CHECKPOINTS / str(name_or_path)
    model, config = load_checkpoint(path)
    return (
        model,
        tr.Vocab.from_json(config["src_vocab"]),
        tr.Vocab.from_json(config["tgt_vocab"]),
        config,
    )


@torch.no_grad()
def translate(
    model: nn.Module,
    src_vocab: tr.Vocab,
    tgt_vocab: tr.Vocab,
    texts: list[str],
    *,
    beam: int = 1,
    max_len: int = 80,
) -> tuple[list[str], Tensor | None]:
    """Translate ``texts``; return the outputs and, for greedy decoding, the weights ``(B, T, S)``.

    For a Transformer the weights are the last decoder layer's cross-attention, averaged over heads.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got a single str")
    model.eval()
    dev = next(model.parameters()).device
    src, _ = tr.encode_pairs([(t, "") for t in texts], src_vocab, tgt_vocab)
    src = src.to(dev)
    if beam > 1:
        return [tgt_vocab.decode(h) for h in beam_search(model, src, beam, max_len)], None
    hyps, weights = greedy(model, src, max_len)
    return [tgt_vocab.decode(h) for h in hyps], weights


def evaluate_by_length(
    model: nn.Module,
    src_vocab: tr.Vocab,
    tgt_vocab: tr.Vocab,
    pairs: list[tuple[str, str]],
    *,
    batch: int = 250,
    beam: int = 1,
) -> dict[int, dict[str, float]]:
    """Exact match and BLEU of ``model`` on ``pairs``, grouped by source length in tokens."""
    groups: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for a, b in pairs:
        groups[len(src_vocab.pieces(a))].append((a, b))
    out = {}
    for length in sorted(groups):
        ps = groups[length]
        hyps: list[str] = []
        for i in range(0, len(ps), batch):
            hyps += translate(
                model, src_vocab, tgt_vocab, [a for a, _ in ps[i : i + batch]], beam=beam
            )[0]
        refs = [b for _, b in ps]
        out[length] = {
            "n": len(ps),
            "exact_match": sum(h == r for h, r in zip(hyps, refs)) / len(ps),
            "bleu": bleu(hyps, refs, char_level=tgt_vocab.level == "char"),
        }
    return out
