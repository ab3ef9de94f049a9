"""Pieces the tasks share: the quick-run switch, classification accuracy, and for seq2seq tasks
model construction by name, the loss and exact-match scoring."""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..decoding import greedy

__all__ = [
    "MODELS",
    "accuracy",
    "build_model",
    "exact_match_batches",
    "model_config",
    "quick",
    "seq2seq_loss",
]

PAD = 0
# model name -> (module:class, fixed keyword arguments)
MODELS = {
    "gru": ("explore_attention.models.seq2seq:Seq2Seq", {"attention": "none", "cell": "gru"}),
    "lstm": ("explore_attention.models.seq2seq:Seq2Seq", {"attention": "none", "cell": "lstm"}),
    "bahdanau": ("explore_attention.models.seq2seq:Seq2Seq", {"attention": "bahdanau"}),
    "luong-dot": ("explore_attention.models.seq2seq:Seq2Seq", {"attention": "luong-dot"}),
    "luong-general": ("explore_attention.models.seq2seq:Seq2Seq", {"attention": "luong-general"}),
    "luong-concat": ("explore_attention.models.seq2seq:Seq2Seq", {"attention": "luong-concat"}),
    "transformer": ("explore_attention.models.transformer:Transformer", {}),
}


def quick() -> bool:
    """True when ``EXPLORE_ATTENTION_QUICK=1`` asks for short runs (tests, notebooks in CI)."""
    return os.environ.get("EXPLORE_ATTENTION_QUICK", "") not in ("", "0")


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256) -> float:
    """Fraction of inputs ``x`` that ``model`` classifies as ``y`` (eval mode, batched)."""
    was = model.training
    model.eval()
    hits = sum(
        (model(x[i : i + batch_size]).logits.argmax(-1) == y[i : i + batch_size]).sum().item()
        for i in range(0, len(y), batch_size)
    )
    model.train(was)
    return hits / len(y)


def build_model(name: str, src_vocab: int, tgt_vocab: int, **sizes: int) -> tuple[nn.Module, dict]:
    """Build a model by name; return it and the JSON config that rebuilds it."""
    import importlib

    if name not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {name!r}")
    spec, fixed = MODELS[name]
    module, cls = spec.split(":")
    fields = {"src_vocab": src_vocab, "tgt_vocab": tgt_vocab, **fixed, **sizes}
    model = getattr(importlib.import_module(module), cls)(**fields)
    return model, model_config(model)


def model_config(model: nn.Module) -> dict:
    """What ``config.json`` stores to rebuild ``model``: ``{"config": asdict(model.config)}``."""
    return {"config": dataclasses.asdict(model.config)}


def seq2seq_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    r"""Teacher-forced cross-entropy :math:`-\frac1N\sum_t \log p(y_t \mid y_{<t}, x)` (no PAD)."""
    src, tgt = batch
    logits = model(src, tgt[:, :-1]).logits  # (B, T-1, V)
    return F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD)


def strip(row: list[int]) -> list[int]:
    """A BOS … EOS PAD* target row without its framing."""
    out = []
    for t in row[1:]:
        if t == 2:
            break
        out.append(t)
    return out


@torch.no_grad()
def exact_match_batches(
    model: nn.Module, src: Tensor, tgt: Tensor, batch: int = 256, max_len: int | None = None
) -> list[bool]:
    """Greedy-decode ``src`` in batches; return, per row, whether the output equals ``tgt``."""
    device = next(model.parameters()).device
    max_len = max_len or tgt.shape[1] + 2
    hits = []
    for i in range(0, src.shape[0], batch):
        hyp, _ = greedy(model, src[i : i + batch].to(device), max_len=max_len)
        refs = [strip(r) for r in tgt[i : i + batch].tolist()]
        hits += [h == r for h, r in zip(hyp, refs)]
    return hits
