r"""Reformer's locality-sensitive-hashing attention (Kitaev et al. 2020, arXiv:2001.04451).

Softmax attention is dominated by the few keys closest to each query, so only those need
scoring. Reformer finds them by hashing:

1. **Shared QK** (§2): queries and keys are one projection; keys are normalised,
   :math:`k_j = q_j / \lVert q_j \rVert`, so a query's nearest keys are angular neighbours.
   A token does not attend to itself unless nothing else is available (its score is set to
   :math:`-10^5`, App. A Eq. 16), since :math:`q_i \cdot k_i` would otherwise nearly always
   win.
2. **Angular LSH** (§2, Andoni et al. 2015): with a random rotation
   :math:`R \in \mathbb R^{D \times b/2}`, :math:`h(x) = \arg\max([xR; -xR])` — nearby
   directions land in the same of :math:`b` buckets with high probability.
3. **Sort and chunk** (Eqs. 2–5): sort tokens by (bucket, position), cut the sorted sequence into
   chunks of ``bucket_size``, and let each query attend to its own chunk and the previous one.
4. **Multi-round** (Eq. 6; App. A Eq. 14): with ``n_hashes`` independent rotations the
   per-round outputs :math:`o_i^{(r)}` are combined by their log-sum-exps :math:`z_i^{(r)}`,

   .. math:: o_i = \sum_r \exp\!\big(z_i^{(r)} - \operatorname{logsumexp}_{r'} z_i^{(r')}\big)\,
             o_i^{(r)},

   and a key seen in :math:`N_{ij}` rounds has its score lowered by :math:`\log N_{ij}` so it is
   not counted twice (App. A Eq. 16).

Cost per round: a sort, O(L log L), and O(L · bucket_size) scores. With ``bucket_size >= L``
everything is one chunk and the result is exact shared-QK attention.

Causal is a mask: ``mask_mod=masks.causal`` masks every key after the query, so no value from
the future reaches it; the *chunk boundaries*, however, depend on every token's hash, as in
Reformer. No other mask is supported (``NotImplementedError``). ``return_weights=True`` (the
default, as for every mechanism) also returns the implied ``(B, H, L, L)`` matrix; pass
``return_weights=False`` for the O(L · bucket_size) path.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_bool, check_int
from .approx import by_head_groups, causal_only
from .core import AttentionOutput, MaskMod

__all__ = ["SELF_SCORE", "hash_buckets", "lsh_attention", "shared_qk_attention"]

SELF_SCORE = -1e5  # a token's score for itself: used only when nothing else is visible


def _check(qk: Tensor, v: Tensor) -> None:
    for name, t in (("qk", qk), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape (B, H, L, D), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if qk.shape[:3] != v.shape[:3]:
        raise ValueError(
            f"qk and v must agree on (B, H, L): qk {tuple(qk.shape)}, v {tuple(v.shape)}"
        )
    if qk.dtype != v.dtype:
        raise TypeError(f"qk and v must share one dtype, got {qk.dtype} and {v.dtype}")


def hash_buckets(
    x: Tensor, n_buckets: int, n_hashes: int, *, generator: torch.Generator | None = None
) -> Tensor:
    r"""Angular LSH: :math:`h_r(x) = \arg\max([xR_r; -xR_r])` for ``n_hashes`` random
    rotations :math:`R_r \in \mathbb R^{D\times n_b/2}`.

    ``x (B, H, L, D)`` → buckets ``(n_hashes, B, H, L)``.
    """
    check_int("n_hashes", n_hashes)
    if check_int("n_buckets", n_buckets, 2) % 2:
        raise ValueError(f"n_buckets must be an even number >= 2, got {n_buckets}")
    D = x.shape[-1]
    rot = torch.randn(n_hashes, D, n_buckets // 2, generator=generator, dtype=torch.float64)
    return _hash(x, rot)


def _hash(x: Tensor, rot: Tensor) -> Tensor:
    """Buckets of ``x (B, H, L, D)`` under rotations ``rot (R, D, n_b/2)`` → ``(R, B, H, L)``."""
    rot = rot.to(device=x.device, dtype=x.dtype)
    xr = torch.einsum("bhld,rdk->rbhlk", x, rot)  # (R, B, H, L, n_b/2)
    return torch.cat([xr, -xr], dim=-1).argmax(-1)  # (R, B, H, L)


def shared_qk_attention(
    qk: Tensor, v: Tensor, *, mask_mod: MaskMod | None = None, return_weights: bool = True
) -> AttentionOutput:
    r"""Exact shared-QK attention, the target LSH attention approximates (O(L²) memory).

    .. math:: s_{ij} = \frac{q_i \cdot q_j / \lVert q_j\rVert}{\sqrt D}\ (j \ne i), \qquad
              s_{ii} = -10^5, \qquad o = \operatorname{softmax}(s)\,V

    ``mask_mod``: None or ``masks.causal`` (:math:`s_{ij} = -\infty` for :math:`j > i`).
    """
    _check(qk, v)
    causal = causal_only(mask_mod, "shared-QK attention")
    check_bool("return_weights", return_weights)
    L, D = qk.shape[2], qk.shape[-1]
    keys = F.normalize(qk, dim=-1)
    s = torch.einsum("bhid,bhjd->bhij", qk, keys) / math.sqrt(D)  # (B, H, L, L)
    eye = torch.eye(L, dtype=torch.bool, device=qk.device)
    s = s.masked_fill(eye, SELF_SCORE)
    if causal:
        s = s.masked_fill(torch.ones_like(eye).triu(1), float("-inf"))
    w = torch.softmax(s.float() if s.dtype in (torch.float16, torch.bfloat16) else s, -1)
    w = w.to(v.dtype)
    return AttentionOutput(w @ v, w if return_weights else None)


def lsh_attention(
    qk: Tensor,
    v: Tensor,
    *,
    n_hashes: int,
    bucket_size: int,
    mask_mod: MaskMod | None = None,
    generator: torch.Generator | None = None,
    return_weights: bool = True,
) -> AttentionOutput:
    r"""Reformer LSH attention over shared queries/keys (Kitaev et al. 2020, arXiv:2001.04451).

    Args:
        qk: shared queries/keys ``(B, H, L, D)`` (keys are their normalised copies).
        v: values ``(B, H, L, Dv)``.
        n_hashes: hash rounds; more rounds → each query finds more of its top keys.
        bucket_size: chunk length; the number of buckets is about ``L / bucket_size`` (even).
        mask_mod: None, or ``masks.causal`` to mask keys after the query; any other mask
            raises ``NotImplementedError``.
        generator: seeds the random rotations.
        return_weights: also return the implied ``(B, H, L, L)`` attention matrix (O(L²));
            False gives the O(L · bucket_size) path.

    Returns:
        :class:`AttentionOutput`: ``output (B, H, L, Dv)`` and ``weights`` (implied) or None.
    """
    _check(qk, v)
    check_int("n_hashes", n_hashes)
    check_int("bucket_size", bucket_size)
    causal = causal_only(mask_mod, "LSH attention")
    check_bool("return_weights", return_weights)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    dtype = qk.dtype
    L, D = qk.shape[2], qk.shape[3]
    C = min(bucket_size, L)
    n_buckets = max(2, 2 * math.ceil(math.ceil(L / C) / 2))
    rot = torch.randn(n_hashes, D, n_buckets // 2, generator=generator, dtype=torch.float64)
    if return_weights:
        return _lsh(qk, v, rot, C, causal, True)
    out = by_head_groups(lambda a, b: _lsh(a, b, rot, C, causal, False).output, dtype, qk, v)
    return AttentionOutput(out, None)


def _lsh(
    qk: Tensor, v: Tensor, rot: Tensor, C: int, causal: bool, return_weights: bool
) -> AttentionOutput:
    """LSH attention with given rotations ``rot (R, D, n_b/2)`` and chunk length ``C``."""
    dtype = qk.dtype
    if dtype in (torch.float16, torch.bfloat16):
        qk, v = qk.float(), v.float()
    B, H, L, D = qk.shape
    Dv = v.shape[-1]
    dev = qk.device
    n_hashes = rot.shape[0]
    keys = F.normalize(qk, dim=-1)  # k_j = q_j / ‖q_j‖
    scale = 1.0 / math.sqrt(D)
    n = math.ceil(L / C)
    buckets = _hash(keys, rot)  # (R, B, H, L)
    pos = torch.arange(L, device=dev)
    # sort by (bucket, position): perm[r] lists original positions in sorted order
    perm = (buckets * L + pos).argsort(-1)  # (R, B, H, L)
    pad = n * C - L
    perm_p = F.pad(perm, (0, pad), value=-1)  # (R, B, H, n·C); -1 marks padding
    chunk_of = torch.empty_like(perm)  # chunk index of each original position, per round
    chunk_of.scatter_(-1, perm, (pos // C).expand_as(perm).contiguous())
    q_chunks = perm_p.view(n_hashes, B, H, n, C)  # (R, B, H, n, C)
    prev = F.pad(q_chunks[..., :-1, :], (0, 0, 1, 0), value=-1)  # the previous chunk (none for 0)
    kv_chunks = torch.cat([prev, q_chunks], dim=-1)  # (R, B, H, n, 2C)

    def gather(x: Tensor, idx: Tensor) -> Tensor:
        """x (B, H, L, d) at positions idx (B, H, n, c) → (B, H, n, c, d); -1 → row 0."""
        flat = idx.clamp(min=0).reshape(B, H, -1, 1).expand(-1, -1, -1, x.shape[-1])
        return x.gather(2, flat).view(*idx.shape, x.shape[-1])

    outs, lses, probs = [], [], []
    for r in range(n_hashes):
        q_idx, kv_idx = q_chunks[r], kv_chunks[r]  # (B, H, n, C), (B, H, n, 2C)
        qs, ks, vs = gather(qk, q_idx), gather(keys, kv_idx), gather(v, kv_idx)
        s = torch.einsum("bhncd,bhnkd->bhnck", qs, ks) * scale  # (B, H, n, C, 2C)
        # N_ij: in how many rounds key j shares query i's window (own chunk or the previous)
        count = torch.zeros_like(s)
        for r2 in range(n_hashes):
            cq = chunk_of[r2].gather(-1, q_idx.clamp(min=0).flatten(2)).view_as(q_idx)
            ck = chunk_of[r2].gather(-1, kv_idx.clamp(min=0).flatten(2)).view_as(kv_idx)
            d = cq.unsqueeze(-1) - ck.unsqueeze(-2)  # (B, H, n, C, 2C)
            count += ((d == 0) | (d == 1)).to(s.dtype)
        s = s - torch.log(count.clamp(min=1))
        q_col, kv_row = q_idx.unsqueeze(-1), kv_idx.unsqueeze(-2)
        invalid = (q_col < 0) | (kv_row < 0)
        if causal:
            invalid = invalid | (kv_row > q_col)
        s = s.masked_fill(q_col == kv_row, SELF_SCORE).masked_fill(invalid, float("-inf"))
        lse = torch.logsumexp(s, -1, keepdim=True)  # z_i^(r)   (B, H, n, C, 1)
        p = torch.exp(s - torch.where(torch.isinf(lse), 0.0, lse))
        o = torch.einsum("bhnck,bhnkd->bhncd", p, vs)  # (B, H, n, C, Dv)
        # back to the original order: sorted slot t holds position perm[t]
        inv = perm[r].argsort(-1)  # (B, H, L)
        o = o.reshape(B, H, n * C, Dv)[:, :, :L].gather(2, inv.unsqueeze(-1).expand(-1, -1, -1, Dv))
        z = lse.reshape(B, H, n * C)[:, :, :L].gather(2, inv)  # (B, H, L)
        outs.append(o)
        lses.append(z)
        if return_weights:
            probs.append((p, q_idx, kv_idx))
    z = torch.stack(lses)  # (R, B, H, L)
    z_all = torch.logsumexp(z, 0)
    mix = torch.exp(z - z_all)  # weight of each round, (R, B, H, L)
    out = (mix.unsqueeze(-1) * torch.stack(outs)).sum(0)  # (B, H, L, Dv)
    weights = None
    if return_weights:
        w = qk.new_zeros(B, H, L * L)
        for r, (p, q_idx, kv_idx) in enumerate(probs):
            m_r = mix[r].gather(2, q_idx.clamp(min=0).flatten(2)).view_as(q_idx)  # (B, H, n, C)
            contrib = p * m_r.unsqueeze(-1)  # (B, H, n, C, 2C)
            valid = (q_idx.unsqueeze(-1) >= 0) & (kv_idx.unsqueeze(-2) >= 0)
            idx = q_idx.clamp(min=0).unsqueeze(-1) * L + kv_idx.clamp(min=0).unsqueeze(-2)
            w.scatter_add_(2, idx.flatten(2), contrib.masked_fill(~valid, 0.0).flatten(2))
        weights = w.view(B, H, L, L).to(dtype)
    return AttentionOutput(out.to(dtype), weights)
