r"""Sparse attention patterns as ``mask_mod`` functions, and how much work each one saves.

Dense attention scores every (query, key) pair: :math:`L^2` entries. A sparse pattern keeps a
set :math:`S_i` of keys per query and the softmax runs over it alone:

.. math::

    o_i = \sum_{j \in S_i} \frac{e^{s_{ij}}}{\sum_{j' \in S_i} e^{s_{ij'}}} v_j

Each pattern here is a ``mask_mod(b, h, q_idx, kv_idx) -> bool`` (True = :math:`j \in S_i`), so it
runs on every backend of :func:`~explore_attention.attention.core.attend`, lowers to SDPA as a
dense boolean mask, and draws with :func:`~explore_attention.attention.masks.materialize` or
:mod:`explore_attention.viz.patterns`.

=====================  ==========================================  ========================
pattern                :math:`S_i`                                 paper
=====================  ==========================================  ========================
:func:`block`          keys in the query's block                   (building block)
:func:`global_tokens`  all keys for a global query; global keys    Beltagy et al. 2020
                       for every query
:func:`strided`        :math:`j \le i`, :math:`i-j < l` or         Child et al. 2019, §4.3
                       :math:`(i-j) \bmod l = 0`
:func:`fixed`          :math:`j \le i`, same block of :math:`l`,   Child et al. 2019, §4.3
                       or one of the last :math:`c` of a block
:func:`longformer`     :math:`|i-j| \le w` or a global token       Beltagy et al. 2020, §3.1
:func:`bigbird`        window + global + :math:`r` random keys     Zaheer et al. 2020, §2
=====================  ==========================================  ========================

Child et al. 2019, "Generating Long Sequences with Sparse Transformers" (arXiv:1904.10509);
Beltagy et al. 2020, "Longformer" (arXiv:2004.05150); Zaheer et al. 2020, "Big Bird"
(arXiv:2007.14062). The local / sliding window lives in
:func:`explore_attention.attention.masks.sliding_window`.

Counting work: :func:`density` is the fraction of the :math:`L_q L_k` score entries a pattern
keeps, :func:`work_saved` the fraction it skips, either entry by entry or, with ``block_size``,
in whole ``block_size × block_size`` tiles (what a tiled kernel can actually skip).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from . import masks
from .core import MaskMod

__all__ = [
    "bigbird",
    "block",
    "density",
    "fixed",
    "global_tokens",
    "longformer",
    "strided",
    "work_saved",
]


def _int_arg(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


# --------------------------------------------------------------------------- building blocks


def block(block_size: int) -> MaskMod:
    r"""Block-diagonal attention: :math:`\lfloor i/l \rfloor = \lfloor j/l \rfloor`."""
    _int_arg("block_size", block_size, 1)

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return torch.div(q_idx, block_size, rounding_mode="floor") == torch.div(
            kv_idx, block_size, rounding_mode="floor"
        )

    return masks.named(mod, f"block_{block_size}")


def global_tokens(tokens: int | Sequence[int]) -> MaskMod:
    r"""Global tokens attend to every key and every query attends to them (Beltagy et al. 2020,
    §3.1: "symmetric" global attention).

    ``tokens`` is a count ``n`` (the first ``n`` positions, e.g. ``[CLS]``) or a list of positions.
    """
    if isinstance(tokens, int) and not isinstance(tokens, bool):
        n = _int_arg("tokens", tokens, 0)
        name = f"global_{n}"

        def is_global(idx: Tensor) -> Tensor:
            return (idx >= 0) & (idx < n)

    else:
        if isinstance(tokens, Tensor):
            tokens = tokens.tolist()
        if not isinstance(tokens, Sequence) or not all(
            isinstance(t, int) and not isinstance(t, bool) for t in tokens
        ):
            raise TypeError(f"tokens must be an int or a sequence of ints, got {tokens!r}")
        if any(t < 0 for t in tokens):
            raise ValueError(f"global token positions must be >= 0, got {list(tokens)}")
        positions = torch.tensor(sorted(set(tokens)), dtype=torch.long)
        name = "global_" + ",".join(str(t) for t in positions.tolist())

        def is_global(idx: Tensor) -> Tensor:
            return torch.isin(idx, positions.to(idx.device))

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return is_global(q_idx) | is_global(kv_idx)

    return masks.named(mod, name)


# --------------------------------------------------------------------------- Sparse Transformer


def strided(stride: int) -> MaskMod:
    r"""Child et al. 2019's *strided* pattern (§4.3), both factorised heads merged into one mask.

    .. math::

        A^{(1)}_i = \{j : i - l < j \le i\}, \qquad
        A^{(2)}_i = \{j \le i : (i - j) \bmod l = 0\}, \qquad
        S_i = A^{(1)}_i \cup A^{(2)}_i

    With :math:`l \approx \sqrt{L}` each query sees :math:`O(\sqrt{L})` keys, and every key is
    reachable from every later query in two steps. Suits data with a period (images, audio).
    """
    _int_arg("stride", stride, 1)

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        d = q_idx - kv_idx
        return (d >= 0) & ((d < stride) | (torch.remainder(d, stride) == 0))

    return masks.named(mod, f"strided_{stride}")


def fixed(block_size: int, summary: int = 1) -> MaskMod:
    r"""Child et al. 2019's *fixed* pattern (§4.3), both factorised heads merged, causal.

    .. math::

        A^{(1)}_i = \{j : \lfloor j/l \rfloor = \lfloor i/l \rfloor\}, \qquad
        A^{(2)}_i = \{j : j \bmod l \in \{l - c, \dots, l - 1\}\}, \qquad
        S_i = \{j \le i\} \cap (A^{(1)}_i \cup A^{(2)}_i)

    The last :math:`c` = ``summary`` positions of each block "summarise" it for all later queries.
    Suits text, which has no period.
    """
    _int_arg("block_size", block_size, 1)
    _int_arg("summary", summary, 1)
    if summary > block_size:
        raise ValueError(f"summary must be <= block_size ({block_size}), got {summary}")

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        same_block = torch.div(q_idx, block_size, rounding_mode="floor") == torch.div(
            kv_idx, block_size, rounding_mode="floor"
        )
        is_summary = torch.remainder(kv_idx, block_size) >= block_size - summary
        return (kv_idx <= q_idx) & (same_block | is_summary)

    return masks.named(mod, f"fixed_{block_size}_c{summary}")


# --------------------------------------------------------------------------- Longformer, BigBird

_global = global_tokens  # `longformer`'s argument shadows the name


def _diagonal(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
    return q_idx == kv_idx


def _gname(tokens: int | Sequence[int]) -> str:
    return f"g{tokens}" if isinstance(tokens, int) else "g" + ",".join(map(str, tokens))


def longformer(window: int, global_tokens: int | Sequence[int]) -> MaskMod:
    r"""Longformer's pattern (Beltagy et al. 2020, §3.1): a bidirectional sliding window of
    ``window`` keys on each side, :math:`|i - j| \le w`, plus symmetric global attention.

    ``global_tokens``: a count (the first ``n`` positions) or a list of positions.
    """
    _int_arg("window", window, 0)
    local = masks.sliding_window(window, causal=False) if window > 0 else _diagonal
    return masks.named(
        masks.or_masks(local, _global(global_tokens)),
        f"longformer_w{window}_{_gname(global_tokens)}",
    )


def bigbird(window: int, num_global: int, num_random: int, seed: int = 0) -> MaskMod:
    r"""BigBird's pattern (Zaheer et al. 2020, §2): window + global + random keys.

    .. math::

        S_i = \{j : |i - j| \le w\} \cup G \cup R_i, \qquad |R_i| = r

    :math:`G` are the first ``num_global`` positions (attending and attended to everywhere).
    :math:`R_i` are ``num_random`` keys drawn uniformly, without replacement, from the keys query
    :math:`i` would not otherwise see (fewer if fewer remain). The draw depends only on ``seed``
    and the key length, so the same call gives the same mask every time. (The paper's
    implementation draws random *blocks*; token-level keeps the picture readable.)
    """
    _int_arg("window", window, 0)
    _int_arg("num_global", num_global, 0)
    _int_arg("num_random", num_random, 0)
    _int_arg("seed", seed, 0)
    local = masks.sliding_window(window, causal=False) if window > 0 else _diagonal
    base = masks.or_masks(local, global_tokens(num_global))

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        kept = base(b, h, q_idx, kv_idx)
        if num_random == 0:
            return kept
        Lk = kv_idx.shape[-1]
        # One uniform score per (query position, key), from a generator seeded only by `seed`:
        # row p is the same for every Lq, so a KV-cached query sees the same random keys.
        g = torch.Generator().manual_seed(seed)
        u = torch.rand(Lk, Lk, generator=g).to(kv_idx.device)  # (Lk positions, Lk keys)
        pos = q_idx.reshape(-1)  # (Lq,) positions on the key axis
        rows = u[pos.clamp(0, Lk - 1)]  # (Lq, Lk)
        # Among the keys not yet kept, take the num_random with the largest score.
        cand = torch.where(kept, -1.0, rows)  # (..., Lq, Lk)
        top = cand.topk(min(num_random, Lk), dim=-1)
        chosen = torch.zeros_like(kept).scatter(-1, top.indices, top.values >= 0)
        # Queries before the first key (Lq > Lk) get no random keys.
        return kept | (chosen & (pos >= 0).view(-1, 1))

    return masks.named(mod, f"bigbird_w{window}_g{num_global}_r{num_random}_s{seed}")


# --------------------------------------------------------------------------- counting work


def density(mask_mod: MaskMod, Lq: int, Lk: int | None = None) -> float:
    """Fraction of the ``Lq × Lk`` score entries the pattern keeps (batch 1, head 0)."""
    m = masks.materialize(mask_mod, Lq, Lk)[0, 0]  # (Lq, Lk)
    return int(m.sum()) / m.numel()  # exact count, no float32 rounding


def work_saved(
    mask_mod: MaskMod, Lq: int, Lk: int | None = None, *, block_size: int | None = None
) -> float:
    """Fraction of the dense ``Lq × Lk`` score computation a pattern lets us skip.

    * ``block_size=None``: entry by entry, ``1 - density``.
    * ``block_size=n``: in ``n × n`` tiles that are entirely masked — what a tiled kernel (or
      FlexAttention's block mask) skips. Edge tiles count by their real size.
    """
    m = masks.materialize(mask_mod, Lq, Lk)[0, 0]  # (Lq, Lk)
    if block_size is None:
        return 1.0 - int(m.sum()) / m.numel()
    _int_arg("block_size", block_size, 1)
    Lq_, Lk_ = m.shape
    nq, nk = -(-Lq_ // block_size), -(-Lk_ // block_size)
    padded = torch.zeros(nq * block_size, nk * block_size, dtype=torch.bool)
    padded[:Lq_, :Lk_] = m
    live = padded.view(nq, block_size, nk, block_size).any(dim=3).any(dim=1)  # (nq, nk)
    rows = torch.full((nq,), block_size)
    rows[-1] = Lq_ - (nq - 1) * block_size
    cols = torch.full((nk,), block_size)
    cols[-1] = Lk_ - (nk - 1) * block_size
    area = rows[:, None] * cols[None, :]  # (nq, nk) entries per tile
    return 1.0 - (area * live).sum().item() / (Lq_ * Lk_)
