"""Attention mechanisms, all on one interface: ``attend(q, k, v, ...) -> AttentionOutput``.

Shapes are batch-first: q ``(B, H, Lq, D)``, k ``(B, Hkv, Lk, D)``, v ``(B, Hkv, Lk, Dv)``.
"""

from . import differential, masks, positional, rnn, scores, sinks, sparse  # noqa: F401
from . import flex, linear, lsh, tiled  # noqa: F401  (tiled/flex register backends)
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
