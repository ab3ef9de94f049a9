"""Draw attention *patterns*: any ``mask_mod`` (or several side by side), and weights matrices
side by side (each drawn by :func:`~explore_attention.viz.static.heatmap`).

A ``mask_mod`` is evaluated with :func:`~explore_attention.attention.masks.materialize`; each
panel is titled with the pattern's name and a legend of how much of the dense score matrix it
keeps (density) and skips (work saved, entry by entry and, with ``block_size``, in whole tiles a
tiled kernel can skip). Rows are queries, columns keys; positions are labelled, or tokens when
given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from .static import heatmap, label_axes, token_labels

__all__ = ["draw_mask", "draw_masks", "draw_weights_grid"]


def _panels(n: int, cols: int | None, cell: tuple[float, float]) -> tuple[Any, list[Any]]:
    """A figure with ``n`` panels in rows of ``cols`` (default up to 4), each ``cell`` inches;
    the unused cells of the last row are hidden."""
    import matplotlib.pyplot as plt

    cols = cols or min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(cell[0] * cols, cell[1] * rows + 0.4),
        squeeze=False,
        constrained_layout=True,
    )
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n]


def _name(mask_mod: Callable) -> str:
    return getattr(mask_mod, "__name__", type(mask_mod).__name__)


def _stats(m: Tensor, block_size: int | None) -> str:
    """Legend text from a bool (Lq, Lk) matrix; the same counts as ``sparse.work_saved``."""
    kept = int(m.sum()) / m.numel()
    text = f"density {kept:.1%} · work saved {1 - kept:.1%}"
    if block_size is not None:
        from ..attention import masks, sparse

        text += f"\n{block_size}×{block_size} tiles skipped " + (
            f"{sparse.work_saved(masks.from_bool(m), *m.shape, block_size=block_size):.1%}"
        )
    return text


def _draw_one_mask(
    ax: Any,
    mask_mod: Callable,
    Lq: int,
    Lk: int,
    title: str | None,
    block_size: int | None,
    q_labels: list[str] | None,
    k_labels: list[str] | None,
) -> Tensor:
    from matplotlib.patches import Patch

    from ..attention import masks

    m = masks.materialize(mask_mod, Lq, Lk)[0, 0]  # (Lq, Lk) bool
    ax.imshow(m.numpy(), cmap="Blues", vmin=0, vmax=1.25, interpolation="nearest", aspect="auto")
    ax.set_title(title or _name(mask_mod), fontsize=10)
    ax.set_xlabel("key position j")
    ax.set_ylabel("query position i")
    label_axes(ax, q_labels, k_labels, small=True)
    ax.legend(
        handles=[Patch(color="#3a7cb8", label=_stats(m, block_size))],
        loc="upper right",
        fontsize=7,
        framealpha=0.9,
    )
    return m


def draw_mask(
    mask_mod: Callable,
    Lq: int,
    Lk: int | None = None,
    *,
    title: str | None = None,
    block_size: int | None = None,
    tokens: Sequence[str] | None = None,
    key_tokens: Sequence[str] | None = None,
    ax: Any = None,
) -> Any:
    """Draw one ``mask_mod`` on an ``Lq × Lk`` grid (blue = attended); return the figure."""
    import matplotlib.pyplot as plt

    Lk = Lq if Lk is None else Lk
    q_labels = token_labels("tokens", tokens, Lq)
    k_labels = token_labels("key_tokens", key_tokens if key_tokens is not None else tokens, Lk)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.6, 4.2), constrained_layout=True)
    else:
        fig = ax.figure
    _draw_one_mask(ax, mask_mod, Lq, Lk, title, block_size, q_labels, k_labels)
    return fig


def draw_masks(
    mask_mods: Sequence[Callable],
    L: int,
    *,
    titles: Sequence[str] | None = None,
    block_size: int | None = None,
    cols: int | None = None,
    suptitle: str | None = None,
) -> Any:
    """Draw several ``mask_mod`` patterns side by side on ``L × L`` grids; return the figure."""
    mods = list(mask_mods)
    if not mods:
        raise ValueError("mask_mods must hold at least one mask_mod")
    if titles is not None and len(titles) != len(mods):
        raise ValueError(f"titles has {len(titles)} entries for {len(mods)} mask_mods")
    fig, axes = _panels(len(mods), cols, (3.6, 3.6))
    for n, ax in enumerate(axes):
        title = titles[n] if titles is not None else None
        _draw_one_mask(ax, mods[n], L, L, title, block_size, None, None)
    fig.suptitle(suptitle or f"Attention patterns at L = {L} (rows: queries, columns: keys)")
    return fig


def draw_weights_grid(
    matrices: Sequence[Any],
    titles: Sequence[str],
    *,
    suptitle: str = "Attention weights",
    tokens: Sequence[str] | None = None,
    cols: int | None = None,
) -> Any:
    """Several weights matrices side by side (e.g. exact vs approximate, or one per head), each
    drawn by :func:`~explore_attention.viz.static.heatmap`; returns the figure."""
    mats = list(matrices)
    if not mats:
        raise ValueError("matrices must hold at least one matrix")
    if len(titles) != len(mats):
        raise ValueError(f"titles has {len(titles)} entries for {len(mats)} matrices")
    fig, axes = _panels(len(mats), cols, (3.8, 3.5))
    for m, ax, title in zip(mats, axes, titles):
        heatmap(m, tokens, ax=ax, title=title)
    fig.suptitle(suptitle)
    return fig
