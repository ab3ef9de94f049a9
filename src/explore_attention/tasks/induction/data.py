"""Data for the induction task: a random block repeated, or tiled with a random period.

See :mod:`explore_attention.tasks.induction` for why the period varies.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...checks import check_int

__all__ = ["periodic_tokens", "repeated_tokens"]


def repeated_tokens(
    n: int, half_len: int, vocab_size: int, generator: torch.Generator | None = None
) -> Tensor:
    """``n`` sequences ``[s, s]``, ``s`` = ``half_len`` uniform random tokens: ``(n, 2T)``."""
    for name, val in (("n", n), ("half_len", half_len), ("vocab_size", vocab_size)):
        check_int(name, val)
    s = torch.randint(0, vocab_size, (n, half_len), generator=generator)  # (n, T)
    return torch.cat([s, s], dim=1)  # (n, 2T)


def periodic_tokens(
    n: int,
    length: int,
    min_period: int,
    max_period: int,
    vocab_size: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``n`` sequences of ``length`` tokens, each a random block tiled with its own period.

    The period varies per sequence (uniform in ``[min_period, max_period]``), so "copy the token
    at a fixed distance back" does not work: the model has to find the earlier occurrence by
    *content*, which is what an induction head does. Returns ``(n, length)``.
    """
    if not 1 <= min_period <= max_period <= length:
        raise ValueError(
            f"need 1 <= min_period <= max_period <= length, got {min_period}, {max_period}, "
            f"{length}"
        )
    periods = torch.randint(min_period, max_period + 1, (n, 1), generator=generator)  # (n, 1)
    block = torch.randint(0, vocab_size, (n, max_period), generator=generator)  # (n, P)
    idx = torch.arange(length).unsqueeze(0) % periods  # (n, length)
    return block.gather(1, idx)  # (n, length)
