r"""A Vision Transformer built on the project's :class:`MultiHeadAttention`.

Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words" (arXiv:2010.11929), Eqs. (1)–(4):

.. math::

    z_0 &= [x_\text{class};\, x_p^1 E;\, \dots;\, x_p^N E] + E_\text{pos}, \\
    z'_\ell &= \operatorname{MSA}(\operatorname{LN}(z_{\ell-1})) + z_{\ell-1}, \\
    z_\ell &= \operatorname{MLP}(\operatorname{LN}(z'_\ell)) + z'_\ell, \\
    y &= \operatorname{LN}(z_L^0)

An image ``(B, C, H, W)`` is cut into ``N = (H/P)(W/P)`` non-overlapping ``P×P`` patches; each
flattened patch ``x_p^i`` (length ``P²C``) is projected by ``E`` to ``d_model``. A learned class
token is prepended and learned positions are added, then a stack of pre-LN encoder blocks runs and
the class token's final state is classified. The blocks are
:class:`~explore_attention.models.blocks.PreLNBlock`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..checks import check_int, check_probability
from .blocks import PreLNBlock
from .config import resolve_config
from .output import ModelOutput

__all__ = [
    "ViTConfig",
    "VisionTransformer",
    "patch_token_names",
    "patchify",
]


@dataclass(frozen=True)
class ViTConfig:
    """Hyper-parameters of :class:`VisionTransformer`."""

    image_size: int = 8  # height = width of the input image, in pixels
    patch_size: int = 2  # side P of a square patch; image_size % P == 0
    in_channels: int = 1  # colour channels C (1 for digits, 3 for scenes)
    num_classes: int = 10  # size of the classifier output
    d_model: int = 64  # token width
    num_heads: int = 4  # attention heads per layer
    num_layers: int = 4  # encoder blocks
    mlp_ratio: int = 2  # hidden width of the MLP = mlp_ratio * d_model
    dropout: float = 0.1  # dropout on embeddings, MLP and residual branches (training only)

    def __post_init__(self) -> None:
        for name in (
            "image_size",
            "patch_size",
            "in_channels",
            "num_classes",
            "d_model",
            "num_heads",
            "num_layers",
            "mlp_ratio",
        ):
            check_int(name, getattr(self, name))
        check_probability("dropout", self.dropout)
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size ({self.image_size}) must be divisible by patch_size "
                f"({self.patch_size})"
            )
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )

    @property
    def grid(self) -> int:
        """Patches per side, ``image_size / patch_size``."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2


def patchify(x: Tensor, patch_size: int) -> Tensor:
    """Cut images ``(B, C, H, W)`` into flat patches ``(B, N, P·P·C)``, row-major over the grid."""
    B, C, H, W = x.shape
    P = patch_size
    x = x.reshape(B, C, H // P, P, W // P, P)  # (B, C, gh, P, gw, P)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, gh, gw, P, P, C)
    return x.reshape(B, (H // P) * (W // P), P * P * C)  # (B, N, P·P·C)


def patch_token_names(grid: int, cls: bool = True) -> list[str]:
    """Token labels ``["[CLS]", "p0,0", "p0,1", …]`` (row, column) for a ``grid × grid`` image."""
    names = [f"p{r},{c}" for r in range(grid) for c in range(grid)]
    return (["[CLS]"] if cls else []) + names


class VisionTransformer(nn.Module):
    """ViT classifier: ``forward(images, return_weights=False) -> ModelOutput``.

    Build it from a :class:`ViTConfig`, its ``asdict`` (how
    :func:`explore_attention.train.load_checkpoint` rebuilds it from ``config.json``) or its
    fields as keywords (``VisionTransformer(d_model=32)``).
    """

    def __init__(self, config: ViTConfig | dict | None = None, **fields: Any) -> None:
        super().__init__()
        self.config = c = resolve_config(ViTConfig, config, fields)
        patch_dim = c.patch_size**2 * c.in_channels
        self.patch_embed = nn.Linear(patch_dim, c.d_model)  # E in Eq. (1)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.d_model))  # x_class
        self.pos_embed = nn.Parameter(torch.randn(1, c.num_patches + 1, c.d_model) * 0.02)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            PreLNBlock(c.d_model, c.num_heads, c.mlp_ratio * c.d_model, c.dropout)
            for _ in range(c.num_layers)
        )
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.num_classes)

    @property
    def tokens(self) -> list[str]:
        """Labels of the ``1 + N`` tokens: the class token, then the patches row by row."""
        return patch_token_names(self.config.grid)

    def _check(self, images: Tensor) -> None:
        c = self.config
        if not isinstance(images, Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        want = (c.in_channels, c.image_size, c.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != want:
            raise ValueError(
                f"images must have shape (B, {want[0]}, {want[1]}, {want[2]}), got "
                f"{tuple(images.shape)}"
            )

    def embed(self, images: Tensor) -> Tensor:
        """Eq. (1): patch embeddings with the class token and positions, ``(B, 1 + N, d)``."""
        self._check(images)
        x = self.patch_embed(patchify(images, self.config.patch_size))  # (B, N, d)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, d)
        return self.drop(torch.cat([cls, x], dim=1) + self.pos_embed)  # (B, 1 + N, d)

    def forward(self, images: Tensor, *, return_weights: bool = False) -> ModelOutput:
        """Logits ``(B, classes)``; with ``return_weights`` also ``attentions["encoder"]``, each
        layer's weights ``(B, H, 1 + N, 1 + N)``.

        Without weights the fused attention kernel runs. The weights are part of the autograd
        graph, so gradient-based explanations can use their gradients (``w.retain_grad()``
        before ``backward``).
        """
        x = self.embed(images)
        weights = []
        for block in self.blocks:
            res = block(x, return_weights=return_weights)
            x = res.output
            weights.append(res.weights)
        logits = self.head(self.norm(x[:, 0]))  # Eq. (4) on the class token
        return ModelOutput(
            logits, attentions={"encoder": tuple(weights)} if return_weights else None
        )
