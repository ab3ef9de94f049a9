"""Attention over images (matplotlib): per-head maps, rollout overlays, the class token by layer,
and per-word cross-attention.

A vision transformer's keys are patches laid out row by row over a ``G × G`` grid, optionally
after a class token. A row of attention over the keys is reshaped to ``(G, G)`` and stretched
over the image (nearest neighbour, so each patch stays a visible square). Every figure has a
title, axis labels (pixel column / row) and a colour bar.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["cls_by_layer", "head_maps", "overlay", "patch_layout", "to_grid", "word_maps"]


def patch_layout(num_keys: int) -> tuple[int, int]:
    """``(first patch index, grid side)`` for ``num_keys`` keys: ``G²`` patches or ``1 + G²``.

    ``1 + G²`` is never itself a square (for ``G ≥ 1``), so the two layouts cannot be confused.
    """
    g = math.isqrt(num_keys)
    if g * g == num_keys:
        return 0, g
    g = math.isqrt(num_keys - 1)
    if num_keys > 1 and g * g == num_keys - 1:
        return 1, g
    raise ValueError(
        f"the keys must be G*G patches, optionally after one class token; got {num_keys} keys"
    )


def to_grid(row: Tensor) -> Tensor:
    """One attention row over the keys ``(Lk,)`` → patch grid ``(G, G)`` (class token dropped)."""
    row = torch.as_tensor(row).detach().float().cpu()
    if row.dim() == 2:
        if row.shape[0] != row.shape[1]:
            raise ValueError(f"a 2-D relevance must be a square grid, got {tuple(row.shape)}")
        return row
    if row.dim() != 1:
        raise ValueError(f"row must have shape (Lk,) or (G, G), got {tuple(row.shape)}")
    start, g = patch_layout(row.shape[0])
    return row[start:].reshape(g, g)  # (G, G)


def _image_hwc(image: Any) -> np.ndarray:
    """``(C, H, W)``, ``(H, W, C)`` or ``(H, W)`` → float ``(H, W, 3)`` or ``(H, W)`` in [0, 1]."""
    x = torch.as_tensor(np.asarray(image) if not isinstance(image, Tensor) else image)
    x = x.detach().float().cpu()
    if x.dim() == 3 and x.shape[0] in (1, 3) and x.shape[2] not in (1, 3):
        x = x.permute(1, 2, 0)  # (H, W, C)
    if x.dim() == 3 and x.shape[2] == 1:
        x = x[..., 0]
    if x.dim() not in (2, 3):
        raise ValueError(
            f"image must have shape (C, H, W), (H, W, C) or (H, W), got {tuple(x.shape)}"
        )
    lo, hi = x.min(), x.max()
    return ((x - lo) / (hi - lo).clamp_min(1e-12)).numpy()


def _draw(ax: Any, image: np.ndarray, grid: Tensor, title: str, alpha: float, cmap: str) -> Any:
    H, W = image.shape[:2]
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, extent=(0, W, H, 0))
    im = ax.imshow(
        grid.numpy(), cmap=cmap, alpha=alpha, extent=(0, W, H, 0), interpolation="nearest"
    )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("pixel column", fontsize=7)
    ax.set_ylabel("pixel row", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
    return im


def overlay(
    image: Any,
    relevance: Tensor,
    *,
    title: str = "relevance",
    alpha: float = 0.6,
    cmap: str = "inferno",
    ax: Any = None,
) -> Any:
    """Draw a patch relevance (``(Lk,)`` row or ``(G, G)`` grid) over image; return the figure."""
    import matplotlib.pyplot as plt

    img = _image_hwc(image)
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.2), constrained_layout=True)
    _draw(ax, img, to_grid(relevance), title, alpha, cmap)
    return ax.figure


def _check_trace(trace: Any) -> None:
    from ..inspect.trace import AttentionTrace

    if not isinstance(trace, AttentionTrace):
        raise TypeError(f"trace must be an AttentionTrace, got {type(trace).__name__}")


def _layer(trace: Any, layer: int) -> int:
    n = trace.num_layers
    if not -n <= layer < n:
        raise ValueError(f"layer must be in [-{n}, {n}), got {layer}")
    return layer % n


def head_maps(
    trace: Any,
    image: Any,
    *,
    layer: int = -1,
    query: int = 0,
    cols: int | None = None,
    alpha: float = 0.6,
) -> Any:
    """One panel per head: where token ``query`` (default the class token) looks in ``layer``."""
    import matplotlib.pyplot as plt

    _check_trace(trace)
    li = _layer(trace, layer)
    if not 0 <= query < len(trace.tokens):
        raise ValueError(f"query must be in [0, {len(trace.tokens)}), got {query}")
    H = trace.num_heads
    cols = cols or min(H, 4)
    rows = math.ceil(H / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 2.9 * rows), squeeze=False, constrained_layout=True
    )
    img = _image_hwc(image)
    for h in range(rows * cols):
        ax = axes[h // cols][h % cols]
        if h >= H:
            ax.axis("off")
            continue
        _draw(ax, img, to_grid(trace.attentions[li, h, query]), f"head {h}", alpha, "inferno")
    fig.suptitle(f"{trace.model_name}: layer {li}, query {trace.tokens[query]!r} → patches")
    return fig


def cls_by_layer(trace: Any, image: Any, *, query: int = 0, alpha: float = 0.6) -> Any:
    """What token ``query`` (the class token) looks at in every layer, heads averaged."""
    import matplotlib.pyplot as plt

    _check_trace(trace)
    L = trace.num_layers
    fig, axes = plt.subplots(1, L, figsize=(3.2 * L, 3.0), squeeze=False, constrained_layout=True)
    img = _image_hwc(image)
    for li in range(L):
        row = trace.attentions[li, :, query].mean(0)  # (Lk,) heads averaged
        _draw(axes[0][li], img, to_grid(row), f"layer {li}", alpha, "inferno")
    fig.suptitle(f"{trace.model_name}: {trace.tokens[query]!r} attention by layer (mean of heads)")
    return fig


def word_maps(
    trace: Any,
    image: Any,
    *,
    words: Sequence[int] | None = None,
    layer: int | None = None,
    alpha: float = 0.6,
) -> Any:
    """Per-word cross-attention over the image: one panel per query word, heads averaged.

    ``trace`` is a ``kind="cross"`` trace (words → patches); ``layer=None`` averages the layers.
    """
    import matplotlib.pyplot as plt

    _check_trace(trace)
    if trace.kind != "cross":
        raise ValueError(f"word_maps needs a cross-attention trace, got kind={trace.kind!r}")
    words = list(range(len(trace.tokens))) if words is None else list(words)
    for w in words:
        if not 0 <= w < len(trace.tokens):
            raise ValueError(f"words must index the {len(trace.tokens)} query tokens, got {w}")
    a = trace.attentions if layer is None else trace.attentions[_layer(trace, layer)][None]
    mean = a.mean(dim=(0, 1))  # (Lq, Lk) layers and heads averaged
    n = len(words)
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n, 3.0), squeeze=False, constrained_layout=True)
    img = _image_hwc(image)
    for i, w in enumerate(words):
        _draw(axes[0][i], img, to_grid(mean[w]), repr(trace.tokens[w]), alpha, "viridis")
    where = "mean of layers" if layer is None else f"layer {_layer(trace, layer)}"
    fig.suptitle(f"{trace.model_name}: each word's cross-attention over the image ({where})")
    return fig
