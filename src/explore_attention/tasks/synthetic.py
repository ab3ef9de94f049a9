"""Copy / reverse / associative-recall tasks for :mod:`explore_attention.train` (``copy`` …)."""

from __future__ import annotations

import torch

from ..data import synthetic
from ..train import Task, TrainConfig
from .common import build_model, exact_match_batches, seq2seq_loss

__all__ = ["make_recall", "make_reverse", "make_task"]


def make_task(
    task: str = "copy",
    model: str = "bahdanau",
    min_len: int = 1,
    max_len: int = 10,
    num_symbols: int = 10,
    emb_dim: int = 32,
    hidden: int = 64,
    eval_size: int = 256,
    **sizes: int,
) -> Task:
    """A synthetic seq2seq task; evaluation = exact match of greedy decoding on a fixed set.

    ``model``: a name of :data:`explore_attention.tasks.common.MODELS`; ``sizes``: extra
    model arguments (e.g. ``num_layers`` for the Transformer).
    """
    vocab = synthetic.vocab_size(task, num_symbols)
    kw = dict(min_len=min_len, max_len=max_len, num_symbols=num_symbols)
    if model == "transformer":
        sizes = {"d_model": hidden, **sizes}
    else:
        sizes = {"emb_dim": emb_dim, "hidden": hidden, **sizes}
    net, config = build_model(model, vocab, vocab, **sizes)
    ev_src, ev_tgt = synthetic.sample(
        task, eval_size, generator=torch.Generator().manual_seed(12345), **kw
    )

    def sample(g: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return synthetic.sample(task, n, generator=g, **kw)

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        hits = exact_match_batches(m, ev_src, ev_tgt)
        return {"accuracy": sum(hits) / len(hits)}

    return Task(
        model=net,
        model_config=config,
        sample=sample,
        loss=seq2seq_loss,
        evaluate=evaluate,
        defaults=TrainConfig(steps=2000, batch_size=64, lr=3e-3, eval_every=100, target=0.99),
        meta={"data": {"task": task, **kw}},
    )


def make_reverse(**options) -> Task:
    """``reverse``: output the input backwards."""
    return make_task(task="reverse", **options)


def make_recall(**options) -> Task:
    """``recall``: associative recall (``k1 v1 … kn vn ? kj -> vj``)."""
    return make_task(task="recall", **{"num_symbols": 20, **options})
