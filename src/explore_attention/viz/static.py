"""Static attention pictures with matplotlib: one heatmap, or a grid of a layer's heads.

Rows are queries, columns are keys: cell ``(i, j)`` is how much token ``i`` attends to token
``j`` (each row sums to 1 over the keys it may see). Every figure carries a title, axis labels,
token labels (or positions) and a colour bar. :func:`heatmap` is the one function that draws a
weights matrix: signed matrices (differential attention, implied matrices of linear attention)
get a diverging scale around 0; :func:`~explore_attention.viz.patterns.draw_weights_grid` puts
several side by side.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..checks import check_tokens

__all__ = ["clean_token", "head_grid", "heatmap", "label_axes", "token_labels"]


def clean_token(token: str) -> str:
    """A readable label: GPT-2's ``Ġ`` (space) and SentencePiece's ``▁`` become a visible ␣,
    ``Ċ`` becomes ⏎, and an empty token becomes ∅."""
    t = str(token).replace("Ġ", "␣").replace("▁", "␣").replace("Ċ", "⏎")
    t = t.replace("\n", "⏎")
    return t if t.strip() else (t.replace(" ", "␣") or "∅")


def _as_matrix(weights: Any) -> np.ndarray:
    if isinstance(weights, Tensor):
        w = weights.detach().to("cpu", torch.float32)
    else:
        w = torch.as_tensor(np.asarray(weights), dtype=torch.float32)
    while w.dim() > 2 and w.shape[0] == 1:
        w = w[0]  # drop leading singleton (batch / head) dims
    if w.dim() != 2:
        raise ValueError(
            f"weights must be a (Lq, Lk) matrix (leading size-1 dims allowed), got shape "
            f"{tuple(w.shape)}"
        )
    return w.numpy()


def token_labels(name: str, tokens: Sequence[str] | None, n: int) -> list[str] | None:
    """``n`` readable labels (:func:`clean_token`), or None when no tokens are given."""
    if tokens is None:
        return None
    return [clean_token(t) for t in check_tokens(name, tokens, n)]


def label_axes(
    ax: Any, q_labels: list[str] | None, k_labels: list[str] | None, small: bool = False
) -> None:
    """Token labels on the rows (queries) and columns (keys); positions when labels are None."""
    fs = 7 if small else 9
    if k_labels is not None:
        ax.set_xticks(range(len(k_labels)))
        ax.set_xticklabels(k_labels, rotation=90, fontsize=fs)
    if q_labels is not None:
        ax.set_yticks(range(len(q_labels)))
        ax.set_yticklabels(q_labels, fontsize=fs)


def heatmap(
    weights: Any,
    query_tokens: Sequence[str] | None = None,
    key_tokens: Sequence[str] | None = None,
    ax: Any = None,
    title: str | None = None,
    *,
    vmax: float | None = None,
    colorbar: bool = True,
) -> Any:
    """Draw one attention matrix ``(Lq, Lk)``, labelled by tokens (or positions); return the
    figure.

    Weights with negative entries are drawn on a diverging scale symmetric around 0.

    Args:
        weights: a tensor or array ``(Lq, Lk)`` (leading size-1 dims are dropped).
        query_tokens: ``Lq`` labels for the rows (queries); None labels positions.
        key_tokens: ``Lk`` labels for the columns (keys); default ``query_tokens``.
        ax: draw into this matplotlib axes (default: a new figure).
        title: the figure's title (default ``"Attention weights"``).
        vmax: the top of the colour scale (default: the matrix's largest magnitude).
        colorbar: add a colour bar.
    """
    import matplotlib.pyplot as plt

    w = _as_matrix(weights)
    key_tokens = query_tokens if key_tokens is None else key_tokens
    q_labels = token_labels("query_tokens", query_tokens, w.shape[0])
    k_labels = token_labels("key_tokens", key_tokens, w.shape[1])
    if ax is None:
        side = max(3.0, 0.35 * max(w.shape) + 2.0)
        fig, ax = plt.subplots(figsize=(side + 1.0, side), constrained_layout=True)
    else:
        fig = ax.figure
    if w.size and w.min() < 0:
        # Signed weights (differential attention, implied matrices): diverging around 0.
        top = vmax or float(np.abs(w).max()) or 1.0
        im = ax.imshow(w, cmap="RdBu_r", vmin=-top, vmax=top, aspect="auto")
    else:
        top = float(w.max()) if vmax is None and w.size else vmax
        im = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=top or 1.0, aspect="auto")
    label_axes(ax, q_labels, k_labels)
    ax.set_xlabel("key j" if k_labels is None else "key (attended to)")
    ax.set_ylabel("query i" if q_labels is None else "query (attending)")
    # wrap long titles to the axes' width (about 11 characters per inch at the default size)
    width = max(24, int(ax.get_position().width * fig.get_figwidth() * 11))
    ax.set_title(textwrap.fill(title or "Attention weights", width=width))
    if colorbar:
        fig.colorbar(im, ax=ax, label="attention weight")
    return fig


def head_grid(trace: Any, layer: int, *, cols: int | None = None, title: str | None = None) -> Any:
    """Draw every head of one layer of an :class:`~explore_attention.inspect.AttentionTrace`.

    One small heatmap per head on a shared colour scale ``[0, 1]``, token labels on the outer
    axes, a title naming the model and layer, and one colour bar. Returns the figure.
    """
    import matplotlib.pyplot as plt

    att = getattr(trace, "attentions", None)
    if not isinstance(att, Tensor) or att.dim() != 4:
        raise TypeError(f"trace must be an AttentionTrace, got {type(trace).__name__}")
    L = att.shape[0]
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise TypeError(f"layer must be an int, got {type(layer).__name__}")
    if not -L <= layer < L:
        raise ValueError(f"layer must be in [0, {L}) for a trace with {L} layers, got {layer}")
    layer = layer % L
    H, Lq, Lk = att.shape[1:]
    cols = cols or min(H, 4 if H <= 8 else 6)
    rows = math.ceil(H / cols)
    cell = max(1.6, 0.22 * max(Lq, Lk) + 0.8)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(cols * cell + 1.2, rows * cell + 0.8),
        squeeze=False,
        constrained_layout=True,
    )
    q_labels = [clean_token(t) for t in trace.tokens]
    k_labels = [clean_token(t) for t in trace.key_tokens]
    im = None
    for h in range(rows * cols):
        ax = axes[h // cols][h % cols]
        if h >= H:
            ax.axis("off")
            continue
        im = ax.imshow(att[layer, h].numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_title(f"head {h}", fontsize=9)
        label_axes(ax, q_labels, k_labels, small=True)
        if h % cols != 0:
            ax.set_yticklabels([])
        else:
            ax.set_ylabel("query")
        if h // cols != rows - 1 and h + cols < H:
            ax.set_xticklabels([])
        else:
            ax.set_xlabel("key")
    kind = getattr(trace, "kind", "self")
    fig.suptitle(title or f"{trace.model_name} — layer {layer} ({kind}-attention), {H} heads")
    fig.colorbar(im, ax=axes, label="attention weight", shrink=0.8)
    return fig
