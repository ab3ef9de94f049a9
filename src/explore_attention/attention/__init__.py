"""Attention mechanisms, all on one interface: ``attend(q, k, v, ...) -> AttentionOutput``.

Shapes are batch-first: q ``(B, H, Lq, D)``, k ``(B, Hkv, Lk, D)``, v ``(B, Hkv, Lk, Dv)``.
"""

# tiled and flex register their backends with attend() when imported
from . import (  # noqa: F401
    differential,
    flex,
    linear,
    lsh,
    masks,
    performer,
    positional,
    rnn,
    scores,
    sinks,
    sparse,
    tiled,
)
from .core import AttentionOutput, attend, masked_softmax, register_backend, repeat_kv
from .multihead import KVCache, MultiHeadAttention

__all__ = [
    "AttentionOutput",
    "KVCache",
    "MultiHeadAttention",
    "attend",
    "masked_softmax",
    "masks",
    "register_backend",
    "repeat_kv",
    "scores",
]
