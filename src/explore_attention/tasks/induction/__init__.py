r"""Induction heads in a 2-layer attention-only Transformer (task ``induction``).

Olsson et al. 2022, "In-context Learning and Induction Heads" (arXiv:2209.11895): an
*induction head* completes a repeated pattern ``[A][B] … [A] → [B]``. At a token ``A`` it attends
to the token that *followed* the previous occurrence of ``A`` and copies it. It needs two layers:
a *previous-token head* in layer 0 writes "the token before me was A" into each position, and
the induction head in layer 1 matches the current token against that (K-composition).

Data: a random sequence of ``T`` tokens repeated twice, ``x = [s_1 … s_T, s_1 … s_T]``. The first
half is unpredictable (loss :math:`\approx \ln V`); the second half is predictable *only* by
looking back. Training sequences tile a random block with a *random period* per sequence
(:func:`periodic_tokens`): with one fixed period a single head could solve the task by
attending a fixed distance back (a positional shortcut); with varying periods the earlier
occurrence must be found by content — the induction mechanism.

Layout: ``tasks/induction/data.py`` makes the sequences, ``metrics.py`` measures induction and
previous-token scores and the in-context loss drop, ``plots.py`` draws them, and ``__main__.py``
(``python -m explore_attention.tasks.induction``) trains and writes the checkpoint's README with
the shared :mod:`explore_attention.tasks.cli`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...models.gpt import GPT, GPTConfig
from ...train import Task, TrainConfig
from .data import periodic_tokens, repeated_tokens
from .metrics import in_context_loss, induction_scores, previous_token_scores
from .plots import plot_induction

__all__ = [
    "in_context_loss",
    "induction_scores",
    "make_task",
    "periodic_tokens",
    "plot_induction",
    "previous_token_scores",
    "repeated_tokens",
]


def make_task(
    vocab_size: int = 64,
    half_len: int = 24,
    num_layers: int = 2,
    num_heads: int = 4,
    d_model: int = 64,
    positions: str = "rope",
    lr: float = 3e-3,
    eval_size: int = 256,
) -> Task:
    """``induction``: a 2-layer attention-only GPT on repeated random token sequences.

    Early stopping on ``induction_score`` (the best layer-1 head's score) reaching 0.9.
    """
    cfg = GPTConfig(
        vocab_size=vocab_size,
        max_len=2 * half_len,
        num_layers=num_layers,
        num_heads=num_heads,
        d_model=d_model,
        mlp_ratio=0,
        positions=positions,
        tie_weights=False,
    )
    ev = repeated_tokens(eval_size, half_len, vocab_size, torch.Generator().manual_seed(4321))

    def sample(g: torch.Generator, n: int) -> Tensor:
        return periodic_tokens(n, 2 * half_len, half_len // 2, half_len, vocab_size, g)

    def loss(m: nn.Module, x: Tensor) -> Tensor:
        return m(x[:, :-1], x[:, 1:]).loss

    def evaluate(m: nn.Module) -> dict[str, float]:
        scores = induction_scores(m, ev[:64])
        return {"induction_score": scores[-1].max().item(), **in_context_loss(m, ev)}

    return Task(
        model=GPT(cfg),
        model_config={"config": cfg.to_dict()},
        sample=sample,
        loss=loss,
        evaluate=evaluate,
        defaults=TrainConfig(
            steps=2000,
            batch_size=32,
            lr=lr,
            warmup=50,
            eval_every=100,
            metric="induction_score",
            target=0.9,
            mode="max",
        ),
        meta={"data": {"vocab_size": vocab_size, "half_len": half_len}},
    )
