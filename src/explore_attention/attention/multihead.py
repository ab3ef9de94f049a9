r"""Multi-head attention (self / cross; MHA, GQA, MQA) with an incremental KV cache.

Vaswani et al. 2017, "Attention Is All You Need" (arXiv:1706.03762), §3.2.2:

.. math::

    \operatorname{MultiHead}(Q, K, V) = \operatorname{Concat}(\mathrm{head}_1, \dots,
    \mathrm{head}_H) W^O, \qquad
    \mathrm{head}_i = \operatorname{Attention}(Q W_i^Q, K W_i^K, V W_i^V)

Grouped-query attention (Ainslie et al. 2023, arXiv:2305.13245) lets ``num_kv_heads`` key/value
heads be shared by groups of query heads; ``num_kv_heads=1`` is multi-query attention (Shazeer
2019, arXiv:1911.02150).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..checks import check_int
from . import masks
from .core import AttentionOutput, MaskMod, attend

__all__ = ["KVCache", "MultiHeadAttention"]


@dataclass
class KVCache:
    """Keys and values of the tokens decoded so far, pre-allocated to ``capacity`` positions.

    ``append`` writes new keys/values in place and returns views of everything cached, so
    decoding one token costs O(L) instead of recomputing the O(L²) prefix.
    """

    keys: Tensor  # (B, Hkv, capacity, D)
    values: Tensor  # (B, Hkv, capacity, Dv)
    length: int = 0  # number of positions filled

    @classmethod
    def empty(
        cls,
        batch_size: int,
        num_kv_heads: int,
        capacity: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> KVCache:
        for name, val in (
            ("batch_size", batch_size),
            ("num_kv_heads", num_kv_heads),
            ("capacity", capacity),
            ("head_dim", head_dim),
        ):
            check_int(name, val)
        shape = (batch_size, num_kv_heads, capacity, head_dim)
        z = torch.zeros(shape, dtype=dtype, device=device)
        return cls(z, z.clone())

    @property
    def capacity(self) -> int:
        return self.keys.shape[2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store ``k (B, Hkv, n, D)``, ``v (B, Hkv, n, Dv)``; return all cached keys/values.

        Without autograd the new entries are written in place (decoding allocates nothing).
        When ``k``, ``v`` or the cache need gradients, the cache is rebuilt out of place
        instead, so gradients flow to every appended token and the views returned by earlier
        appends (saved by their attention for backward) are never overwritten.
        """
        for name, t, held in (("k", k, self.keys), ("v", v, self.values)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.dim() != 4 or t.shape[:2] != held.shape[:2] or t.shape[3] != held.shape[3]:
                raise ValueError(
                    f"{name} has shape {tuple(t.shape)}, the cache holds {tuple(held.shape)} "
                    f"(B, Hkv, capacity, {'D' if name == 'k' else 'Dv'}); expected "
                    f"({held.shape[0]}, {held.shape[1]}, n, {held.shape[3]})"
                )
        n = k.shape[2]
        if v.shape[2] != n:
            raise ValueError(
                f"k and v must hold the same number of new tokens: k {tuple(k.shape)}, "
                f"v {tuple(v.shape)}"
            )
        if self.length + n > self.capacity:
            raise ValueError(
                f"KV cache capacity exceeded: {self.length} cached + {n} new > capacity "
                f"{self.capacity}; create the cache with a larger capacity"
            )
        start, end = self.length, self.length + n
        tracked = (k, v, self.keys, self.values)
        if torch.is_grad_enabled() and any(t.requires_grad for t in tracked):
            # (B, Hkv, capacity, ·): a new tensor, earlier views keep their values
            self.keys = torch.cat([self.keys[:, :, :start], k, self.keys[:, :, end:]], dim=2)
            self.values = torch.cat([self.values[:, :, :start], v, self.values[:, :, end:]], 2)
        else:
            self.keys[:, :, start:end] = k
            self.values[:, :, start:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def reset(self) -> None:
        self.length = 0


class MultiHeadAttention(nn.Module):
    """Batch-first multi-head attention on :func:`~explore_attention.attention.core.attend`.

    Args:
        d_model: model width; ``d_model % num_heads == 0``.
        num_heads: query heads ``H``.
        num_kv_heads: key/value heads ``Hkv`` (default ``H``; ``H % Hkv == 0``; 1 = MQA).
        bias: add biases to the four projections.
        dropout: attention-weight dropout in training.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        for name, val in (
            ("d_model", d_model),
            ("num_heads", num_heads),
            ("num_kv_heads", num_kv_heads),
        ):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{name} must be an int >= 1, got {val!r}")
        if d_model % num_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        if num_heads % num_kv_heads != 0:
            raise ValueError(
                f"num_heads ({num_heads}) must be divisible by num_kv_heads ({num_kv_heads})"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.d_model = d_model
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = d_model // num_heads
        self.dropout = dropout
        kv_dim = num_kv_heads * self.head_dim
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)  # W^Q for all heads
        self.k_proj = nn.Linear(d_model, kv_dim, bias=bias)  # W^K
        self.v_proj = nn.Linear(d_model, kv_dim, bias=bias)  # W^V
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)  # W^O

    def _split(self, x: Tensor, heads: int) -> Tensor:
        B, L, _ = x.shape
        return x.view(B, L, heads, self.head_dim).transpose(1, 2)  # (B, heads, L, Dh)

    def new_cache(
        self, batch_size: int, capacity: int, *, dtype: torch.dtype | None = None
    ) -> KVCache:
        """An empty KV cache sized for this module."""
        w = self.k_proj.weight
        return KVCache.empty(
            batch_size,
            self.num_kv_heads,
            capacity,
            self.head_dim,
            dtype=dtype or w.dtype,
            device=w.device,
        )

    def position_qk(self, q: Tensor, k: Tensor, start: int) -> tuple[Tensor, Tensor]:
        """Hook for positions applied to queries and keys (RoPE); the identity here.

        ``q (B, H, Lq, Dh)``, ``k (B, Hkv, Lk, Dh)`` are the new tokens' projections and
        ``start`` is the position of the first of them (the cache's length), so a subclass
        can rotate them before they enter the cache.
        """
        return q, k

    def _check_input(self, name: str, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"{name} must have shape (B, L, d_model={self.d_model}), got {tuple(x.shape)}"
            )

    def _padding_mod(
        self, key_padding_mask: Tensor, B: int, Lk: int
    ) -> tuple[MaskMod | None, Tensor | None]:
        """A bool key_padding_mask becomes a mask_mod; a float one an additive score bias."""
        if not isinstance(key_padding_mask, Tensor):
            raise TypeError(
                f"key_padding_mask must be a tensor, got {type(key_padding_mask).__name__}"
            )
        if key_padding_mask.shape != (B, Lk):
            raise ValueError(
                f"key_padding_mask must have shape (B, Lk) = {(B, Lk)}, got "
                f"{tuple(key_padding_mask.shape)}"
            )
        if key_padding_mask.dtype == torch.bool:
            return masks.key_padding(key_padding_mask), None
        if key_padding_mask.is_floating_point():
            return None, key_padding_mask
        raise TypeError(
            f"key_padding_mask must be bool (True = padding) or float (additive), got dtype "
            f"{key_padding_mask.dtype}"
        )

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        key_padding_mask: Tensor | None = None,
        mask_mod: MaskMod | None = None,
        cache: KVCache | None = None,
        return_weights: bool = True,
    ) -> AttentionOutput:
        """Attend from ``x (B, Lq, d_model)`` to ``context (B, Lk, d_model)`` (``x`` if None).

        ``key_padding_mask (B, Lk)``: bool, True = padding (as in PyTorch), or float, added to
        the scores. ``mask_mod``: any mask from :mod:`~explore_attention.attention.masks`.
        ``cache``: the new keys/values are appended and the queries attend to the whole cache;
        positions follow the cache (``masks.causal`` then aligns the new tokens correctly).

        Returns ``AttentionOutput(output (B, Lq, d_model), weights (B, H, Lq, Lk) or None)``.
        """
        self._check_input("x", x)
        src = x if context is None else context
        if context is not None:
            self._check_input("context", context)
            if context.shape[0] != x.shape[0]:
                raise ValueError(
                    f"context batch size {context.shape[0]} != x batch size {x.shape[0]}"
                )
        B, Lq, _ = x.shape
        q = self._split(self.q_proj(x), self.num_heads)  # (B, H, Lq, Dh)
        k = self._split(self.k_proj(src), self.num_kv_heads)  # (B, Hkv, Lk, Dh)
        v = self._split(self.v_proj(src), self.num_kv_heads)  # (B, Hkv, Lk, Dh)
        q, k = self.position_qk(q, k, 0 if cache is None else cache.length)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, Hkv, cached + Lk, Dh)
        Lk = k.shape[2]
        score_mod = None
        if key_padding_mask is not None:
            pad_mod, bias = self._padding_mod(key_padding_mask, B, Lk)
            if pad_mod is not None:
                mask_mod = pad_mod if mask_mod is None else masks.and_masks(mask_mod, pad_mod)
            else:
                score_mod = masks.key_bias(bias)  # s_ij += bias[b, j]

        res = attend(
            q,
            k,
            v,
            mask_mod=mask_mod,
            score_mod=score_mod,
            dropout_p=self.dropout if self.training else 0.0,
            return_weights=return_weights,
        )
        out = res.output.transpose(1, 2).reshape(B, Lq, self.d_model)  # (B, Lq, d_model)
        return AttentionOutput(self.out_proj(out), res.weights)

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of a ``torch.nn.MultiheadAttention`` so both compute the same thing."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"mha must be nn.MultiheadAttention, got {type(mha).__name__}")
        if not mha._qkv_same_embed_dim:
            raise ValueError("from_torch supports kdim == vdim == embed_dim only")
        if mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("from_torch does not support add_bias_kv or add_zero_attn")
        E = mha.embed_dim
        bias = mha.in_proj_bias is not None
        ours = cls(E, mha.num_heads, bias=bias, dropout=mha.dropout)
        ours = ours.to(dtype=mha.in_proj_weight.dtype, device=mha.in_proj_weight.device)
        with torch.no_grad():
            wq, wk, wv = mha.in_proj_weight.split(E, dim=0)  # 3 × (E, E)
            ours.q_proj.weight.copy_(wq)
            ours.k_proj.weight.copy_(wk)
            ours.v_proj.weight.copy_(wv)
            ours.out_proj.weight.copy_(mha.out_proj.weight)
            if bias:
                bq, bk, bv = mha.in_proj_bias.split(E)
                ours.q_proj.bias.copy_(bq)
                ours.k_proj.bias.copy_(bk)
                ours.v_proj.bias.copy_(bv)
                ours.out_proj.bias.copy_(mha.out_proj.bias)
        return ours
