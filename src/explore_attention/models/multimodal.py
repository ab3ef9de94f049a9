r"""An image+text model: words of a question cross-attend to the patches of an image.

The image is encoded by a small ViT encoder (patch embedding, learned positions, pre-LN
self-attention blocks; Dosovitskiy et al. 2020, arXiv:2010.11929). The question's words then
pass through blocks that each do three things, as in the Transformer decoder of Vaswani et al.
2017 (arXiv:1706.03762, §3.1) without the causal mask:

.. math::

    t' &= t + \operatorname{MSA}(\operatorname{LN}(t)) &&\text{(words read each other)}\\
    t'' &= t' + \operatorname{softmax}\!\Big(\frac{(\operatorname{LN}(t') W^Q)(z W^K)^\top}
           {\sqrt{d_h}}\Big)\, z W^V &&\text{(words read the image)}\\
    t''' &= t'' + \operatorname{MLP}(\operatorname{LN}(t''))

with ``z`` the encoded patches; ``text_layers`` such blocks are successive cross-attention
*hops* (a later hop reads the image again with words that already hold what the earlier hop
found), optionally after ``word_layers`` word-only blocks. The cross-attention weights
``(H, L_text, N_patches)`` say, for every word, which patches it looked at — the view that
lets us check whether "circle" finds the circle (grounding; cf. the co-attention of Lu et al.
2019, ViLBERT, arXiv:1908.02265). The answer is read from the mean of the final word states.

With ``locate=True`` a linear head also reads, from each shape word's final state, the centre
of the object it names; its squared error is an auxiliary loss (multi-task supervision with
object positions, as in the box losses of MDETR, Kamath et al. 2021, arXiv:2104.12763).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention.multihead import MultiHeadAttention
from ..checks import check_int
from .blocks import PreLNBlock
from .config import resolve_config
from .output import ModelOutput
from .vit import patch_token_names, patchify

__all__ = ["CrossAttentionBlock", "MultimodalConfig", "SceneQA", "sincos_2d"]


def sincos_2d(grid: int, d_model: int) -> Tensor:
    r"""2-D sinusoidal positions ``(grid², d_model)``: half the channels encode the row, half
    the column, each with Vaswani et al.'s (2017) :math:`\sin(p\,\omega_i), \cos(p\,\omega_i)`,
    :math:`\omega_i = 10000^{-4i/d}`. Used to initialise the learned patch positions, so that
    where a patch is can be read off its value from the first step.
    """
    if d_model % 4:
        raise ValueError(f"d_model must be divisible by 4 for 2-D sin-cos positions, got {d_model}")
    q = d_model // 4
    omega = 10000.0 ** (-torch.arange(q, dtype=torch.float64) / q)  # (q,)
    pos = torch.arange(grid, dtype=torch.float64)[:, None] * omega  # (grid, q)
    axis = torch.cat([pos.sin(), pos.cos()], dim=1)  # (grid, d/2)
    rows = axis[:, None, :].expand(grid, grid, d_model // 2)  # (grid, grid, d/2) by row
    cols = axis[None, :, :].expand(grid, grid, d_model // 2)  # (grid, grid, d/2) by column
    return torch.cat([rows, cols], dim=-1).reshape(grid * grid, d_model).float()  # (N, d)


@dataclass(frozen=True)
class MultimodalConfig:
    """Hyper-parameters of :class:`SceneQA`."""

    image_size: int = 24  # canvas side in pixels
    patch_size: int = 4  # patch side; image_size % patch_size == 0
    in_channels: int = 3  # RGB
    vocab_size: int = 32  # word ids 0..vocab_size-1; id 0 is padding
    max_text_len: int = 12  # longest question in words
    num_answers: int = 2  # classifier outputs (no / yes)
    d_model: int = 64  # width of image and word tokens
    num_heads: int = 4  # heads in every attention layer
    image_layers: int = 2  # self-attention blocks over the patches
    text_layers: int = (
        2  # word blocks (self-attention + cross-attention + MLP): cross-attention hops
    )
    word_layers: int = 0  # word-only blocks before the first hop (the nouns read each other)
    locate: bool = False  # a head that reads each word's object centre (x, y) from its state
    mlp_ratio: int = 2  # MLP hidden width = mlp_ratio * d_model
    dropout: float = 0.0  # dropout in training

    def __post_init__(self) -> None:
        for name in (
            "image_size",
            "patch_size",
            "in_channels",
            "vocab_size",
            "max_text_len",
            "num_answers",
            "d_model",
            "num_heads",
            "image_layers",
            "text_layers",
            "mlp_ratio",
        ):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{name} must be an int >= 1, got {val!r}")
        check_int("word_layers", self.word_layers, minimum=0)
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size ({self.image_size}) must be divisible by patch_size "
                f"({self.patch_size})"
            )
        if self.d_model % self.num_heads or self.d_model % 4:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads}) "
                "and by 4 (2-D sin-cos positions)"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


class CrossAttentionBlock(nn.Module):
    """Word block: self-attention over words, cross-attention to patches, MLP (all pre-LN).

    ``cross=False`` drops the cross-attention: a word-only block (the nouns read each other).
    """

    def __init__(
        self, d_model: int, num_heads: int, mlp_ratio: int, dropout: float, cross: bool = True
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        if cross:
            self.norm2 = nn.LayerNorm(d_model)
            self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.norm3 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, mlp_ratio * d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_ratio * d_model, d_model),
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self, t: Tensor, image: Tensor, key_padding_mask: Tensor, return_weights: bool = False
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """``t (B, L, d)``, ``image (B, N, d)``, ``key_padding_mask (B, L)`` True = pad.

        Returns ``(t, self weights (B, H, L, L), cross weights (B, H, L, N))`` (weights None
        when ``return_weights=False``; cross weights None in a word-only block).
        """
        a = self.self_attn(
            self.norm1(t), key_padding_mask=key_padding_mask, return_weights=return_weights
        )
        t = t + self.drop(a.output)
        w_cross = None
        if hasattr(self, "cross_attn"):
            c = self.cross_attn(self.norm2(t), image, return_weights=return_weights)
            t = t + self.drop(c.output)
            w_cross = c.weights
        t = t + self.drop(self.mlp(self.norm3(t)))
        return t, a.weights, w_cross


class SceneQA(nn.Module):
    """Answer a question about an image: ``forward(images, ids) -> ModelOutput``, logits
    ``(B, num_answers)``.

    Build from a :class:`MultimodalConfig`, its ``asdict`` (as
    :func:`explore_attention.train.load_checkpoint` does) or its fields as keywords.
    """

    def __init__(self, config: MultimodalConfig | dict | None = None, **fields: Any) -> None:
        super().__init__()
        self.config = c = resolve_config(MultimodalConfig, config, fields)
        self.patch_embed = nn.Linear(c.patch_size**2 * c.in_channels, c.d_model)
        self.patch_pos = nn.Parameter(sincos_2d(c.grid, c.d_model)[None])  # (1, N, d)
        self.image_blocks = nn.ModuleList(
            PreLNBlock(c.d_model, c.num_heads, c.mlp_ratio * c.d_model, c.dropout)
            for _ in range(c.image_layers)
        )
        self.image_norm = nn.LayerNorm(c.d_model)
        self.word_embed = nn.Embedding(c.vocab_size, c.d_model, padding_idx=0)
        self.word_pos = nn.Parameter(torch.randn(1, c.max_text_len, c.d_model) * 0.02)
        self.word_blocks = nn.ModuleList(
            CrossAttentionBlock(c.d_model, c.num_heads, c.mlp_ratio, c.dropout, cross=False)
            for _ in range(c.word_layers)
        )
        self.text_blocks = nn.ModuleList(
            CrossAttentionBlock(c.d_model, c.num_heads, c.mlp_ratio, c.dropout)
            for _ in range(c.text_layers)
        )
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.num_answers)
        # where each word's object is, (x, y) in [0, 1]: trained only when targets are given
        self.locator = nn.Linear(c.d_model, 2) if c.locate else None

    @property
    def patch_tokens(self) -> list[str]:
        """Labels of the image tokens (the keys of cross-attention): ``p<row>,<col>``."""
        return patch_token_names(self.config.grid, cls=False)

    def _check(self, images: Tensor, ids: Tensor) -> None:
        c = self.config
        for name, t in (("images", images), ("ids", ids)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        want = (c.in_channels, c.image_size, c.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != want:
            raise ValueError(
                f"images must have shape (B, {want[0]}, {want[1]}, {want[2]}), got "
                f"{tuple(images.shape)}"
            )
        if ids.dim() != 2 or ids.shape[0] != images.shape[0] or ids.is_floating_point():
            raise ValueError(
                f"ids must be integer word ids of shape (B={images.shape[0]}, L), got "
                f"{tuple(ids.shape)} {ids.dtype}"
            )
        if not 1 <= ids.shape[1] <= c.max_text_len:
            raise ValueError(f"ids length must be in [1, {c.max_text_len}], got {ids.shape[1]}")
        if ids.min() < 0 or ids.max() >= c.vocab_size:
            raise ValueError(f"ids must be in [0, {c.vocab_size}), got {ids.min()}..{ids.max()}")

    def forward(
        self,
        images: Tensor,
        ids: Tensor,
        labels: Tensor | None = None,
        *,
        centres: Tensor | None = None,
        return_weights: bool = False,
    ) -> ModelOutput:
        """Logits ``(B, num_answers)``, and the cross-entropy ``loss`` against ``labels (B,)``
        (answer indices) when given; with ``return_weights`` also every layer's weights in
        ``attentions``: ``"encoder"`` patches ↔ patches ``(B, H, N, N)``, ``"text"`` words ↔
        words ``(B, H, L, L)`` (word-only blocks first), ``"cross"`` words → patches
        ``(B, H, L, N)`` (one per hop).

        ``centres (B, L, 2)`` (needs ``config.locate``): the centre ``(x, y)`` in ``[0, 1]`` of
        the object each word names, NaN for other words; their squared error from the locator
        head is added to the loss — every named object is also asked "where is it?".

        Without weights the fused attention kernel runs.
        """
        self._check(images, ids)
        z = self.patch_embed(patchify(images, self.config.patch_size))  # (B, N, d)
        z = z + self.patch_pos
        image_w = []
        for block in self.image_blocks:
            res = block(z, return_weights=return_weights)
            z = res.output
            image_w.append(res.weights)
        z = self.image_norm(z)  # (B, N, d)
        padding = ids == 0  # (B, L) True = pad
        t = self.word_embed(ids) + self.word_pos[:, : ids.shape[1]]  # (B, L, d)
        text_w, cross_w = [], []
        for block in [*self.word_blocks, *self.text_blocks]:
            t, ws, wc = block(t, z, padding, return_weights=return_weights)
            text_w.append(ws)
            if hasattr(block, "cross_attn"):
                cross_w.append(wc)
        keep = (~padding).unsqueeze(-1).to(t.dtype)  # (B, L, 1)
        pooled = (self.norm(t) * keep).sum(1) / keep.sum(1).clamp_min(1)  # (B, d)
        logits = self.head(pooled)  # (B, num_answers)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        if centres is not None:
            if self.locator is None:
                raise ValueError("centres need a model built with locate=True")
            named = ~centres.isnan().any(-1)  # (B, L) words that name an object
            err = (self.locator(t[named]) - centres[named]).pow(2).sum(-1).mean()
            loss = err if loss is None else loss + err
        attentions = None
        if return_weights:
            attentions = {
                "encoder": tuple(image_w),
                "text": tuple(text_w),
                "cross": tuple(cross_w),
            }
        return ModelOutput(logits, loss=loss, attentions=attentions)
