"""Static (PNG/SVG) export of the interactive views, drawn with matplotlib.

Why matplotlib and not Plotly's ``kaleido``: kaleido 1.x drives a Chrome/Chromium process, which
is slow to start and absent on many laptops and CI runners; matplotlib needs nothing beyond the
package. The static figure draws the same data as the interactive view (same windowing and
aggregation), in the view's initial state.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["static_figure"]


def _shown(tok: str) -> str:
    if tok == "":
        return "∅"
    if tok.isspace():
        return "␣" * len(tok)
    # matplotlib treats $...$ as mathtext; escape dollars so tokens show literally.
    return tok.replace("$", r"\$")


def _matrix(A: np.ndarray, layer: int | str, head: int | str) -> np.ndarray:
    """(layers, heads, Lq, Lk) -> (Lq, Lk) for a selection or its mean."""
    A = A.mean(axis=0, keepdims=True) if layer == "mean" else A[[int(layer)]]
    A = A.mean(axis=1, keepdims=True) if head == "mean" else A[:, [int(head)]]
    return A[0, 0]


def _heatmap(ax, M: np.ndarray, q: list[str], k: list[str], title: str, *, small=False):
    im = ax.imshow(M, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_title(title, fontsize=7 if small else 10)
    if small:
        ax.set_xticks([])
        ax.set_yticks([])
        return im
    fs = max(4, min(9, int(400 / max(len(q), len(k), 1))))
    ax.set_xticks(range(len(k)), [_shown(t) for t in k], rotation=90, fontsize=fs)
    ax.set_yticks(range(len(q)), [_shown(t) for t in q], fontsize=fs)
    ax.set_xlabel("key token")
    ax.set_ylabel("query token")
    return im


def static_figure(view: Any):
    """A matplotlib figure of ``view`` (an :class:`~explore_attention.viz.views.AttentionView`)."""
    import matplotlib.pyplot as plt

    p = view.payload
    A = np.asarray(p["attentions"], dtype=np.float32)  # (layers, heads, Lq, Lk)
    q, k = p["tokens"], p["key_tokens"]
    n = max(len(q), len(k))
    title = view.title + (f"\n{p['note']}" if p["note"] else "")
    if p["view"] == "heatmap":
        side = min(16.0, 3 + 0.22 * n)
        fig, ax = plt.subplots(figsize=(side + 1.5, side))
        sel = f"layer {p['layer']}, head {p['head']}"
        im = _heatmap(ax, _matrix(A, p["layer"], p["head"]), q, k, sel)
        fig.colorbar(im, ax=ax, label="attention weight")
    elif p["view"] == "model":
        L, H = A.shape[:2]
        fig, axes = plt.subplots(L, H, figsize=(1.1 * H + 1, 1.1 * L + 1), squeeze=False)
        for layer in range(L):
            for head in range(H):
                _heatmap(axes[layer, head], A[layer, head], q, k, f"L{layer} H{head}", small=True)
    elif p["view"] == "head":
        fig, ax = plt.subplots(figsize=(6, min(40.0, 1 + 0.25 * n)))
        heads = range(A.shape[1]) if p["head"] == "all" else [int(p["head"])]
        colors = plt.get_cmap("tab20")
        for h in heads:
            M = A[int(p["layer"]), h]
            for i, j in zip(*np.nonzero(M > 0.02)):
                ax.plot([0, 1], [i, j], color=colors(h % 20), alpha=float(M[i, j]), lw=1.5)
        for i, t in enumerate(q):
            ax.text(-0.03, i, _shown(t), ha="right", va="center", fontsize=8)
        for j, t in enumerate(k):
            ax.text(1.03, j, _shown(t), ha="left", va="center", fontsize=8)
        ax.set_xlim(-0.8, 1.8)
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xticks([0, 1], ["query tokens", "key tokens"])
        ax.set_yticks([])
        ax.set_ylabel("position")
        ax.set_xlabel(
            f"layer {p['layer']}, " + ("all heads" if p["head"] == "all" else f"head {p['head']}")
        )
    else:  # token
        i = int(p.get("token", 0))
        M = _matrix(A, p["layer"], p["head"])
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(max(6.0, 0.3 * n), 6), squeeze=True)
        sel = f"layer {p['layer']}, head {p['head']}"
        a1.bar(range(len(k)), M[i])
        a1.set_title(f"{_shown(q[i])!s} attends to ({sel})")
        a1.set_xticks(range(len(k)), [_shown(t) for t in k], rotation=90, fontsize=7)
        a1.set_xlabel("key token")
        a1.set_ylabel("attention weight")
        if p["kind"] != "cross":
            a2.bar(range(len(q)), M[:, i])
            a2.set_title(f"{_shown(q[i])} is attended by ({sel})")
            a2.set_xticks(range(len(q)), [_shown(t) for t in q], rotation=90, fontsize=7)
            a2.set_xlabel("query token")
            a2.set_ylabel("attention weight")
        else:
            a2.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
