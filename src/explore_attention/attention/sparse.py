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
:func:`longformer`     :math:`|i-j| \le \lfloor w/2 \rfloor`,      Beltagy et al. 2020, §3.1
                       or a global token
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

from ..checks import check_int
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


# --------------------------------------------------------------------------- building blocks


def block(block_size: int) -> MaskMod:
    r"""Block-diagonal attention: :math:`\lfloor i/l \rfloor = \lfloor j/l \rfloor`."""
    check_int("block_size", block_size, 1)

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
        n = check_int("tokens", tokens, 0)
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
        positions = sorted(set(tokens))
        name = "global_" + ",".join(str(t) for t in positions)

        def is_global(idx: Tensor) -> Tensor:
            # one comparison per global position: elementwise for any index shape
            out = torch.zeros_like(idx, dtype=torch.bool)
            for p in positions:
                out = out | (idx == p)
            return out

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
    check_int("stride", stride, 1)

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
    check_int("block_size", block_size, 1)
    check_int("summary", summary, 1)
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


def _gname(tokens: int | Sequence[int]) -> str:
    return f"g{tokens}" if isinstance(tokens, int) else "g" + ",".join(map(str, tokens))


def longformer(window: int, global_tokens: int | Sequence[int]) -> MaskMod:
    r"""Longformer's pattern (Beltagy et al. 2020, §3.1): a sliding window of ``window``
    positions, :math:`|i - j| \le \lfloor w/2 \rfloor` ("½w tokens on each side"), plus
    symmetric global attention. ``window=1`` keeps only the diagonal.

    ``global_tokens``: a count (the first ``n`` positions) or a list of positions.
    """
    check_int("window", window, 1)
    return masks.named(
        masks.or_masks(masks.sliding_window(window, causal=False), _global(global_tokens)),
        f"longformer_w{window}_{_gname(global_tokens)}",
    )


def _draw_random_keys(
    base: MaskMod, length: int, num_random: int, seed: int, chunk: int = 256
) -> Tensor:
    """For every query position ``p < length``, ``num_random`` keys drawn uniformly without
    replacement from the keys in ``[0, length)`` that ``base`` does not keep; ``-1`` where fewer
    remain. A ``(length, num_random)`` table from a generator seeded only by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    table = torch.full((length, num_random), -1, dtype=torch.long)
    kv = torch.arange(length).view(1, -1)  # (1, length)
    zero = torch.zeros((), dtype=torch.long)
    for p0 in range(0, length, chunk):
        q = torch.arange(p0, min(length, p0 + chunk)).view(-1, 1)  # (rows, 1)
        kept = base(zero, zero, q, kv).expand(q.shape[0], length)  # (rows, length)
        u = torch.rand(q.shape[0], length, generator=g, dtype=torch.float64)
        # Among the keys not yet kept, the num_random with the largest uniform score.
        top = torch.where(kept, -1.0, u).topk(min(num_random, length), dim=-1)
        table[p0 : p0 + q.shape[0], : top.indices.shape[1]] = torch.where(
            top.values >= 0, top.indices, -1
        )
    return table


def bigbird(
    window: int, num_global: int, num_random: int, seed: int = 0, *, length: int | None = None
) -> MaskMod:
    r"""BigBird's pattern (Zaheer et al. 2020, §2): window + global + random keys.

    .. math::

        S_i = \{j : |i - j| \le \lfloor w/2 \rfloor\} \cup G \cup R_i, \qquad |R_i| = r

    :math:`G` are the first ``num_global`` positions (attending and attended to everywhere).
    :math:`R_i` are ``num_random`` keys drawn uniformly, without replacement, from the keys
    ``0 .. length-1`` that query :math:`i` would not otherwise see (fewer if fewer remain). As in
    the paper, the random graph is drawn once for a sequence length: here when the mask is built,
    from ``seed`` alone, so the mask of a (query, key) pair never depends on the tile a backend
    evaluates it in (the index contract), and a KV-cached query sees its row of the full mask.
    Queries and keys at positions ``>= length`` get no random keys. ``length`` is required when
    ``num_random > 0``. (The paper's implementation draws random *blocks*; token-level keeps the
    picture readable.)
    """
    check_int("window", window, 1)
    check_int("num_global", num_global, 0)
    check_int("num_random", num_random, 0)
    check_int("seed", seed, 0)
    base = masks.or_masks(masks.sliding_window(window, causal=False), global_tokens(num_global))
    name = f"bigbird_w{window}_g{num_global}_r{num_random}_s{seed}"
    if num_random == 0:
        return masks.named(base, name)
    if length is None:
        raise ValueError(
            "bigbird draws its random keys once, among positions 0 .. length-1: pass length= "
            f"(the sequence length), got num_random={num_random} and length=None"
        )
    check_int("length", length, 1)
    table = _draw_random_keys(base, length, num_random, seed)  # (length, r), -1 = none

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        rows = table.to(kv_idx.device)[q_idx.clamp(0, length - 1)]  # (..., r) for any shape
        chosen = torch.zeros_like(q_idx == kv_idx)
        for t in range(num_random):
            chosen = chosen | (rows[..., t] == kv_idx)
        # Queries before the first key (Lq > Lk) or past `length` get no random keys.
        return base(b, h, q_idx, kv_idx) | (chosen & (q_idx >= 0) & (q_idx < length))

    return masks.named(mod, f"{name}_n{length}")


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
    check_int("block_size", block_size, 1)
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
