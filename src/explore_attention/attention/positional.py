r"""Where is each token? Absolute and relative position information for attention.

Attention by itself is permutation-equivariant: shuffle the tokens and the outputs shuffle the
same way. Position enters in one of three places:

* **added to the input** — sinusoidal (Vaswani et al. 2017, §3.5, arXiv:1706.03762) or learned
  absolute embeddings: :func:`sinusoidal_positions`, :class:`LearnedPositions`;
* **a transform of q and k** — rotary embeddings, RoPE (Su et al. 2021, "RoFormer",
  arXiv:2104.09864): :func:`apply_rope`, so that :math:`q_i \cdot k_j` depends on :math:`i - j`;
* **a score_mod adding a bias that depends on** :math:`i - j` — ALiBi (Press et al. 2021,
  arXiv:2108.12409): :func:`alibi`; T5's bucketed learned bias (Raffel et al. 2019,
  arXiv:1910.10683, §2.1): :class:`T5RelativeBias`; Shaw et al. 2018's clipped relative
  embeddings (arXiv:1803.02155), which also add a term to the values: :class:`ShawRelativePosition`.

score_mods follow :mod:`~explore_attention.attention.core`'s position convention (``q_idx`` is
the query's position on the key axis), so they stay correct under a KV cache.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..checks import check_int
from .core import AttentionOutput, MaskMod, ScoreMod, attend, check_qkv, with_shape_check

__all__ = [
    "LearnedPositions",
    "ShawRelativePosition",
    "T5RelativeBias",
    "alibi",
    "alibi_slopes",
    "apply_rope",
    "rope_cos_sin",
    "sinusoidal_positions",
    "t5_relative_position_bucket",
]


# --------------------------------------------------------------------------- absolute


def sinusoidal_positions(
    length: int, dim: int, *, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> Tensor:
    r"""Sinusoidal position encodings (Vaswani et al. 2017, §3.5), shape ``(length, dim)``.

    .. math::

        PE_{(pos, 2i)} = \sin\!\left(pos / 10000^{2i/d}\right), \qquad
        PE_{(pos, 2i+1)} = \cos\!\left(pos / 10000^{2i/d}\right)

    Computed in float64 and cast to ``dtype``; ``dim`` must be even.
    """
    check_int("length", length, 0)
    check_int("dim", dim)
    if dim % 2:
        raise ValueError(f"dim must be even (sin/cos pairs), got {dim}")
    pos = torch.arange(length, dtype=torch.float64)[:, None]  # (L, 1)
    # 10000^{-2i/d} for i = 0 .. d/2 - 1                                  (d/2,)
    inv = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angles = pos * inv  # (L, d/2)
    pe = torch.stack([angles.sin(), angles.cos()], dim=-1)  # (L, d/2, 2)
    return pe.reshape(length, dim).to(dtype)  # (L, d): sin, cos interleaved


class LearnedPositions(nn.Module):
    """Learned absolute position embeddings added to the input (BERT / GPT-2 style).

    ``forward(x (B, L, dim), offset=0)`` returns ``x + E[offset : offset + L]``; ``offset`` is the
    number of tokens already decoded when a KV cache is used.
    """

    def __init__(self, max_length: int, dim: int) -> None:
        super().__init__()
        self.max_length = check_int("max_length", max_length)
        self.dim = check_int("dim", dim)
        self.embedding = nn.Embedding(max_length, dim)  # E: (max_length, dim)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != self.dim:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, L, {self.dim}), got {got}")
        check_int("offset", offset, 0)
        L = x.shape[1]
        if offset + L > self.max_length:
            raise ValueError(
                f"positions {offset}..{offset + L - 1} exceed max_length={self.max_length}"
            )
        return x + self.embedding.weight[offset : offset + L].to(x.dtype)  # (B, L, dim)


# --------------------------------------------------------------------------- RoPE


def rope_cos_sin(
    positions: Tensor, dim: int, *, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    r"""``cos`` and ``sin`` of RoPE's angles :math:`\theta_{p,i} = p \cdot base^{-2i/d}`.

    The angles are computed in float64 (a position of 16k times a frequency loses ~1e-3 rad in
    float32) and only the result is cast to ``dtype``. Shapes: ``positions (..., L)`` →
    ``(..., L, dim)``, each frequency repeated for the two halves (Hugging Face's layout).
    """
    inv = base ** (-torch.arange(0, dim, 2, dtype=torch.float64, device=positions.device) / dim)
    angles = positions.to(torch.float64)[..., None] * inv  # (..., L, d/2)
    angles = torch.cat([angles, angles], dim=-1)  # (..., L, d)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: Tensor, positions: Tensor | None = None, *, base: float = 10000.0) -> Tensor:
    r"""Rotary position embedding (Su et al. 2021, arXiv:2104.09864, Eq. 34) of ``x (B, H, L, D)``.

    Each pair :math:`(x_i, x_{i + D/2})` is rotated by :math:`\theta_{p,i} = p\, base^{-2i/D}`:

    .. math::

        \operatorname{RoPE}(x, p) = x \odot \cos\theta_p + \operatorname{rotate\_half}(x) \odot
        \sin\theta_p, \qquad \operatorname{rotate\_half}(x) = [-x_{D/2:}, x_{:D/2}]

    Pairing the first half with the second (rather than neighbours) is Hugging Face Llama's
    layout; it is the paper's rotation with the coordinates permuted. Because rotations compose,
    :math:`\operatorname{RoPE}(q, i) \cdot \operatorname{RoPE}(k, j)` depends only on :math:`i - j`.

    Args:
        x: ``(B, H, L, D)`` queries or keys, ``D`` even.
        positions: integer positions ``(L,)`` or ``(B, L)``; default ``0 .. L-1``. With a KV
            cache pass the true positions of the new tokens.
        base: the frequency base (10000 in the paper; Llama 3 uses 500000).

    Angles are float64; the rotation runs in float64 for float64 input and in float32 otherwise
    (bfloat16 / float16 inputs are rotated in float32 and cast back).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, H, L, D), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    B, _, L, D = x.shape
    if D % 2:
        raise ValueError(f"RoPE rotates pairs, so the head dim D must be even; got D={D}")
    if positions is None:
        positions = torch.arange(L, device=x.device)
    if not isinstance(positions, Tensor):
        raise TypeError(f"positions must be a torch.Tensor or None, got {type(positions).__name__}")
    if positions.shape not in ((L,), (B, L)):
        raise ValueError(
            f"positions must have shape (L,) = ({L},) or (B, L) = ({B}, {L}), got "
            f"{tuple(positions.shape)}"
        )
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    cos, sin = rope_cos_sin(positions, D, base=base, dtype=work)  # (L, D) or (B, L, D)
    if cos.dim() == 3:
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, L, D)
    xw = x.to(work)
    x1, x2 = xw[..., : D // 2], xw[..., D // 2 :]
    rotated = torch.cat([-x2, x1], dim=-1)  # rotate_half(x): (B, H, L, D)
    return (xw * cos + rotated * sin).to(x.dtype)


# --------------------------------------------------------------------------- ALiBi


def alibi_slopes(num_heads: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""ALiBi's per-head slopes :math:`m_h` (Press et al. 2021, §3, arXiv:2108.12409).

    For :math:`n` a power of two the slopes are the geometric sequence
    :math:`m_h = 2^{-8h/n}`, :math:`h = 1..n` (8 heads: :math:`1/2, 1/4, \dots, 1/256`). Otherwise,
    with :math:`p = 2^{\lfloor \log_2 n \rfloor}`, take the :math:`p` slopes for :math:`p` heads
    and then the first :math:`n - p` of the odd-indexed slopes for :math:`2p` heads
    (:math:`2^{-4/p \cdot (2h - 1)}`), the rule of the paper's released code.
    """
    check_int("num_heads", num_heads)

    def geometric(n: int) -> list[float]:
        return [2.0 ** (-8.0 * h / n) for h in range(1, n + 1)]

    p = 1 << (num_heads.bit_length() - 1)  # the largest power of two <= num_heads
    slopes = geometric(p) + geometric(2 * p)[0::2][: num_heads - p]
    return torch.tensor(slopes, dtype=torch.float64).to(dtype)


def alibi(num_heads: int) -> ScoreMod:
    r"""ALiBi as a score_mod: :math:`s_{ij} \mathrel{-}= m_h \, |i - j|` (Press et al. 2021, Eq. 1
    with the causal mask; the symmetric :math:`|i-j|` makes it usable without one).

    No position embeddings are added anywhere else; the linear penalty lets models trained on
    short sequences extrapolate to longer ones.
    """
    slopes = alibi_slopes(num_heads, dtype=torch.float64)  # (H,)

    def mod(score: Tensor, b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        m = slopes.to(device=score.device, dtype=score.dtype)[h]  # m_h, indexed by h
        return score - m * (q_idx - kv_idx).abs().to(score.dtype)

    mod.__name__ = f"alibi_{num_heads}"
    return with_shape_check(mod, _check_heads(f"alibi({num_heads})", num_heads))


def _check_heads(what: str, num_heads: int):
    def check(B: int, H: int, Lq: int, Lk: int) -> None:
        if num_heads != H:
            raise ValueError(f"{what} was built for {num_heads} heads, attention has H={H}")

    return check


# --------------------------------------------------------------------------- T5


def t5_relative_position_bucket(
    relative_position: Tensor,
    *,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> Tensor:
    r"""T5's bucket of a relative position :math:`j - i` (Raffel et al. 2019, §2.1).

    Half the buckets (with ``bidirectional``) are for keys after the query, half for before.
    Within a direction, distances below ``n/2`` get a bucket each; larger distances share
    logarithmically wider buckets up to ``max_distance``, beyond which all fall in the last:

    .. math::

        \operatorname{bucket}(d) = \begin{cases} d & d < e \\
        \min\!\left(n - 1,\ e + \left\lfloor \frac{\log(d/e)}{\log(D/e)} (n - e)
        \right\rfloor\right) & d \ge e \end{cases}, \qquad e = n / 2

    with :math:`n` the buckets per direction and :math:`D` = ``max_distance``. Unidirectional
    (decoder) buckets use :math:`d = \max(i - j, 0)`, so keys after the query share bucket 0.
    """
    if not isinstance(relative_position, Tensor) or relative_position.is_floating_point():
        raise TypeError("relative_position must be an integer torch.Tensor (key - query)")
    check_int("num_buckets", num_buckets, 2)
    check_int("max_distance", max_distance, 1)
    n = num_buckets
    bucket = torch.zeros_like(relative_position)
    if bidirectional:
        n = n // 2
        bucket = bucket + (relative_position > 0).to(bucket.dtype) * n  # keys after the query
        d = relative_position.abs()
    else:
        d = (-relative_position).clamp(min=0)  # only the past counts
    exact = n // 2
    if exact < 1 or max_distance <= exact:
        raise ValueError(
            f"need at least 2 buckets per direction and max_distance > {exact} (the exact "
            f"buckets); got num_buckets={num_buckets}, bidirectional={bidirectional}, "
            f"max_distance={max_distance}"
        )
    # log-spaced buckets for d >= exact; clamp d to 1 inside the log to keep it finite
    log_ratio = torch.log(d.clamp(min=1).to(torch.float32) / exact) / math.log(max_distance / exact)
    large = exact + (log_ratio * (n - exact)).to(bucket.dtype)
    large = large.clamp(max=n - 1)
    return bucket + torch.where(d < exact, d, large)


class T5RelativeBias(nn.Module):
    r"""T5's learned, bucketed relative-position bias, usable directly as a ``score_mod``:
    :math:`s_{ij} \mathrel{+}= b_h[\operatorname{bucket}(j - i)]` (Raffel et al. 2019, §2.1).

    T5 does not scale scores by :math:`1/\sqrt{d}`: call ``attend(..., score_mod=bias, scale=1.0)``
    to match it.
    """

    def __init__(
        self,
        num_heads: int,
        *,
        bidirectional: bool = True,
        num_buckets: int = 32,
        max_distance: int = 128,
    ) -> None:
        super().__init__()
        self.num_heads = check_int("num_heads", num_heads)
        self.bidirectional = bidirectional  # encoder (both directions) or decoder (past only)
        self.num_buckets = check_int("num_buckets", num_buckets, 2)
        self.max_distance = check_int("max_distance", max_distance)
        self.embedding = nn.Embedding(num_buckets, num_heads)  # one scalar per (bucket, head)

    def _buckets(self, rel: Tensor) -> Tensor:
        return t5_relative_position_bucket(
            rel,
            bidirectional=self.bidirectional,
            num_buckets=self.num_buckets,
            max_distance=self.max_distance,
        )

    def bias(self, Lq: int, Lk: int | None = None) -> Tensor:
        """The bias for every (head, query, key): ``(1, H, Lq, Lk)``; query ``i`` sits at
        position ``i + Lk - Lq``."""
        Lk = Lq if Lk is None else Lk
        q_pos = torch.arange(Lq, device=self.embedding.weight.device) + (Lk - Lq)
        rel = torch.arange(Lk, device=q_pos.device)[None, :] - q_pos[:, None]  # (Lq, Lk)
        return self.embedding(self._buckets(rel)).permute(2, 0, 1)[None]  # (1, H, Lq, Lk)

    def check_shapes(self, B: int, H: int, Lq: int, Lk: int) -> None:
        """Called by ``attend`` before the score_mod runs (the index contract of ``core``)."""
        _check_heads("T5RelativeBias", self.num_heads)(B, H, Lq, Lk)

    def forward(self, score: Tensor, b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        bucket = self._buckets(kv_idx - q_idx)  # broadcast of q_idx and kv_idx
        return score + self.embedding.weight[bucket, h].to(score.dtype)  # b_h[bucket(j - i)]


# --------------------------------------------------------------------------- Shaw et al.


class ShawRelativePosition(nn.Module):
    r"""Clipped relative position representations (Shaw et al. 2018, arXiv:1803.02155, Eqs. 3–5).

    .. math::

        e_{ij} = \frac{q_i \cdot (k_j + a^K_{ij})}{\sqrt{d}}, \qquad
        z_i = \sum_j \alpha_{ij} (v_j + a^V_{ij}), \qquad
        a_{ij} = w_{\operatorname{clip}(j - i,\, -K,\, K)}

    with learned :math:`w^K, w^V \in \mathbb{R}^{(2K+1) \times d}` shared across heads. The key
    term is a score_mod (:meth:`score_mod`); the value term needs the weights, so
    :meth:`forward` runs on the reference backend and adds :math:`\sum_j \alpha_{ij} a^V_{ij}`.
    """

    def __init__(self, head_dim: int, max_distance: int, *, value_dim: int | None = None) -> None:
        super().__init__()
        self.head_dim = check_int("head_dim", head_dim)
        self.max_distance = check_int("max_distance", max_distance, 0)  # the paper's k
        n = 2 * max_distance + 1
        self.rel_k = nn.Embedding(n, head_dim)  # w^K_{-K..K}
        self.rel_v = nn.Embedding(n, value_dim or head_dim)  # w^V_{-K..K}

    def _index(self, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        K = self.max_distance
        return (kv_idx - q_idx).clamp(-K, K) + K  # (1, 1, Lq, Lk) in 0..2K

    def score_mod(self, q: Tensor, scale: float | None = None, Lk: int | None = None) -> ScoreMod:
        r"""The key term as a score_mod for these queries: :math:`s_{ij} \mathrel{+}= \alpha\,
        q_i \cdot a^K_{ij}`. ``Lk`` is the number of keys (default ``Lq``): query row ``r`` sits
        at position ``r + Lk - Lq`` on the key axis (``core``'s position convention)."""
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        Lq = q.shape[2]
        offset = (Lq if Lk is None else check_int("Lk", Lk, 0)) - Lq
        # q_i · w^K_r for every relative bucket r                           (B, H, Lq, 2K+1)
        qr = q @ self.rel_k.weight.to(q.dtype).T

        def mod(score: Tensor, b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            # (q_i · w^K)[clip(j - i)], read with the indices given: any index shape
            return score + scale * qr[b, h, q_idx - offset, self._index(q_idx, kv_idx)]

        def check(B: int, H: int, Lq_: int, Lk_: int) -> None:
            if (B, H, Lq_, Lk_ - Lq_) != (qr.shape[0], qr.shape[1], Lq, offset):
                raise ValueError(
                    f"this Shaw score_mod was built for q of shape {tuple(q.shape)} and "
                    f"Lk={Lq + offset}; attention has (B, H, Lq, Lk) = {(B, H, Lq_, Lk_)}"
                )

        mod.__name__ = f"shaw_relative_{self.max_distance}"
        return with_shape_check(mod, check)

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        *,
        mask_mod: MaskMod | None = None,
        scale: float | None = None,
    ) -> AttentionOutput:
        """Attention with both relative terms; q ``(B, H, Lq, D)``, k/v ``(B, Hkv, Lk, ·)``."""
        check_qkv(q, k, v)
        if q.shape[-1] != self.head_dim:
            raise ValueError(f"q's head dim must be {self.head_dim}, got shape {tuple(q.shape)}")
        if v.shape[-1] != self.rel_v.embedding_dim:
            raise ValueError(
                f"v's head dim must be value_dim={self.rel_v.embedding_dim}, got shape "
                f"{tuple(v.shape)}"
            )
        res = attend(
            q,
            k,
            v,
            mask_mod=mask_mod,
            score_mod=self.score_mod(q, scale, k.shape[2]),
            scale=scale,
            backend="reference",
        )
        w = res.weights  # (B, H, Lq, Lk)
        Lq, Lk = w.shape[-2:]
        q_idx = (torch.arange(Lq, device=q.device) + (Lk - Lq))[:, None]
        idx = self._index(q_idx, torch.arange(Lk, device=q.device)[None, :]).expand_as(w)
        # Σ_j α_ij a^V_ij = Σ_r (Σ_{j: bucket r} α_ij) w^V_r                 (B, H, Lq, 2K+1)
        per_bucket = torch.zeros(
            *w.shape[:3], self.rel_v.num_embeddings, dtype=w.dtype, device=w.device
        ).scatter_add(-1, idx, w)
        out = res.output + per_bucket @ self.rel_v.weight.to(w.dtype)  # (B, H, Lq, Dv)
        return AttentionOutput(out, w)
