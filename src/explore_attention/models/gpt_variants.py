r"""The GPT with its softmax attention swapped for a sparse or a linear mechanism, *trained so*.

* ``attention="sliding"``: every query sees only the ``window`` most recent tokens,
  :math:`0 \le i - j < w` (the causal mask AND a band; Beltagy et al. 2020, Longformer,
  arXiv:2004.05150; Jiang et al. 2023, Mistral 7B, arXiv:2310.06825).
* ``attention="linear"``: :math:`\phi(x) = \operatorname{elu}(x) + 1` kernel attention in its causal
  prefix-sum form (Katharopoulos et al. 2020, arXiv:2006.16236, Eq. 10–12): no softmax and no
  ``L × L`` matrix; ``return_weights=True`` returns the implied matrix
  :math:`A_{ij} = \phi(q_i)^\top\phi(k_j) / \sum_{j' \le i} \phi(q_i)^\top\phi(k_{j'})` to draw.

Everything else is :class:`~explore_attention.models.gpt.GPT` (same blocks, same parameter
names), and the swapped layers start from the dense model's initial weights, so a dense and a
swapped model trained with the same seed and batches differ only in the mechanism.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..attention import KVCache, masks
from ..attention.core import AttentionOutput, MaskMod
from ..attention.linear import linear_attention
from ..checks import check_int
from .config import resolve_config
from .gpt import GPT, CausalSelfAttention, GPTConfig

__all__ = [
    "ATTENTIONS",
    "LinearCausalAttention",
    "SlidingWindowAttention",
    "VariantGPT",
    "VariantGPTConfig",
]

ATTENTIONS = ("dense", "sliding", "linear")


@dataclass(frozen=True)
class VariantGPTConfig(GPTConfig):
    """:class:`GPTConfig` plus the attention mechanism of every layer."""

    attention: str = "dense"  # one of ATTENTIONS
    window: int = 16  # keys each query sees with attention="sliding" (itself included)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        check_int("window", self.window)


class SlidingWindowAttention(CausalSelfAttention):
    """Causal self-attention restricted to the last ``window`` keys (the query included)."""

    def __init__(self, config: GPTConfig, window: int) -> None:
        super().__init__(config)
        self.window = window
        self.band = masks.sliding_window(window)  # 0 <= i - j < window

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        *,
        mask_mod: MaskMod = masks.causal,
        cache: KVCache | None = None,
        return_weights: bool = False,
    ) -> AttentionOutput:
        return super().forward(
            x,
            mask_mod=masks.and_masks(mask_mod, self.band),
            cache=cache,
            return_weights=return_weights,
        )


class LinearCausalAttention(CausalSelfAttention):
    """Causal linear attention (elu + 1 features) with the GPT's projections."""

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        *,
        mask_mod: MaskMod = masks.causal,
        cache: KVCache | None = None,
        return_weights: bool = False,
    ) -> AttentionOutput:
        if mask_mod is not masks.causal:
            raise NotImplementedError("linear attention in VariantGPT supports only masks.causal")
        B, L, _ = x.shape
        q = self._split(self.q_proj(x), self.num_heads)  # (B, H, L, Dh)
        k = self._split(self.k_proj(x), self.num_kv_heads)  # (B, H, L, Dh)
        v = self._split(self.v_proj(x), self.num_kv_heads)  # (B, H, L, Dh)
        q, k = self.position_qk(q, k, 0 if cache is None else cache.length)
        causal: MaskMod | None = masks.causal
        if cache is not None:
            if cache.length and L > 1:
                raise NotImplementedError(
                    "linear attention with a KV cache takes one new token at a time"
                )
            if cache.length:
                causal = None  # one new token sees every cached key: no mask
            k, v = cache.append(k, v)  # (B, H, cached + L, Dh)
        res = linear_attention(q, k, v, mask_mod=causal, return_weights=return_weights)
        out = res.output.transpose(1, 2).reshape(B, L, self.d_model)  # (B, L, d_model)
        return AttentionOutput(self.out_proj(out), res.weights)


class VariantGPT(GPT):
    """:class:`GPT` whose attention layers are ``config.attention`` ∈ :data:`ATTENTIONS`.

    Built from a :class:`VariantGPTConfig`, its dict (as
    :func:`explore_attention.train.load_checkpoint` passes it) or its fields as keywords.
    """

    def __init__(self, config: VariantGPTConfig | dict | None = None, **fields: Any) -> None:
        c = resolve_config(VariantGPTConfig, config, fields)
        super().__init__(c)
        if c.attention == "dense":
            return
        for block in self.blocks:
            new = (
                SlidingWindowAttention(c, c.window)
                if c.attention == "sliding"
                else LinearCausalAttention(c)
            )
            with torch.no_grad():
                new.load_state_dict(block.attn.state_dict())  # the dense model's init
            block.attn = new
