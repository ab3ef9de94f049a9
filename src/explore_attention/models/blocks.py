r"""The pre-LN Transformer block every encoder-style model of the project is built from.

Pre-LayerNorm (Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture",
arXiv:2002.04745) puts the LayerNorm *inside* each residual branch, which trains without
warm-up tricks at these sizes; ViT (Dosovitskiy et al. 2020, arXiv:2010.11929, Eqs. 2–3) and
Whisper's encoder use it:

.. math::

    x &\leftarrow x + \operatorname{Drop}(\operatorname{MHA}(\operatorname{LN}_1(x))) \\
    x &\leftarrow x + \operatorname{Drop}(\operatorname{CrossMHA}(\operatorname{LN}_c(x),\,
        m)) \qquad \text{(decoder blocks only: } m \text{ is the encoder's output)} \\
    x &\leftarrow x + \operatorname{Drop}(\operatorname{MLP}(\operatorname{LN}_2(x))), \qquad
    \operatorname{MLP}(h) = W_2\,\operatorname{Drop}(\operatorname{GELU}(W_1 h + b_1)) + b_2

With ``cross_attention=True`` it is the Transformer decoder layer of Vaswani et al. 2017
(arXiv:1706.03762, §3.1), pre-LN. Used by :mod:`~explore_attention.models.vit`,
:mod:`~explore_attention.models.audio`, :mod:`~explore_attention.models.multimodal` (image
encoder), :mod:`~explore_attention.models.transformer` and
:mod:`~explore_attention.explain.synthetic`. GPT keeps GPT-2's own block (its parameter names and
optional attention-only layers are GPT-2's, for the Hugging Face export).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..attention.core import MaskMod
from ..attention.multihead import KVCache, MultiHeadAttention

__all__ = ["BlockOutput", "PreLNBlock"]


@dataclass(frozen=True)
class BlockOutput:
    """What :class:`PreLNBlock` returns."""

    output: Tensor  # (B, L, d_model)
    weights: Tensor | None  # self-attention (B, H, L, Lk), None unless return_weights
    cross_weights: Tensor | None = None  # cross-attention (B, H, L, S) of a decoder block


class PreLNBlock(nn.Module):
    """One pre-LN block: self-attention (+ cross-attention) and an MLP, each a residual branch.

    Args:
        d_model: token width.
        num_heads: attention heads.
        d_ff: hidden width of the MLP.
        dropout: dropout on the residual branches and the MLP's hidden layer (training only).
        attn_dropout: dropout on the attention weights (training only).
        cross_attention: add a cross-attention branch (a decoder block).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        *,
        attn_dropout: float = 0.0,
        cross_attention: bool = False,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, num_heads, dropout=attn_dropout)
        if cross_attention:
            self.norm_cross = nn.LayerNorm(d_model)
            self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout=attn_dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        *,
        key_padding_mask: Tensor | None = None,
        mask_mod: MaskMod | None = None,
        cache: KVCache | None = None,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
        return_weights: bool = False,
    ) -> BlockOutput:
        """``x (B, L, d)`` → ``BlockOutput(x (B, L, d), weights, cross_weights)``.

        ``key_padding_mask (B, L)`` / ``memory_padding_mask (B, S)``: True = padding.
        ``mask_mod`` and ``cache`` go to the self-attention; ``memory (B, S, d)`` is what a
        decoder block's cross-attention reads. ``return_weights=False`` lets the fused kernel run.
        """
        a = self.attn(
            self.norm1(x),
            key_padding_mask=key_padding_mask,
            mask_mod=mask_mod,
            cache=cache,
            return_weights=return_weights,
        )
        x = x + self.drop(a.output)
        cross = None
        if memory is not None:
            c = self.cross_attn(
                self.norm_cross(x),
                memory,
                key_padding_mask=memory_padding_mask,
                return_weights=return_weights,
            )
            x = x + self.drop(c.output)
            cross = c.weights
        x = x + self.drop(self.mlp(self.norm2(x)))
        return BlockOutput(x, a.weights, cross)
