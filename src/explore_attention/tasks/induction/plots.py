"""Per-head induction and previous-token scores as annotated heatmaps."""

from __future__ import annotations

from torch import Tensor

__all__ = ["plot_induction"]


def plot_induction(induction: Tensor, previous: Tensor | None = None, *, title: str = ""):
    """Heatmaps of per-head induction (and previous-token) scores; returns the figure."""
    import matplotlib.pyplot as plt

    panels = [("induction score", induction)]
    if previous is not None:
        panels.append(("previous-token score", previous))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3), squeeze=False)
    for ax, (name, s) in zip(axes[0], panels):
        im = ax.imshow(s.numpy(), vmin=0, vmax=1, cmap="viridis")
        L, H = s.shape
        ax.set_xticks(range(H), [f"head {h}" for h in range(H)])
        ax.set_yticks(range(L), [f"layer {l}" for l in range(L)])
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(name)
        for l in range(L):
            for h in range(H):
                ax.text(
                    h,
                    l,
                    f"{s[l, h]:.2f}",
                    ha="center",
                    va="center",
                    color="white" if s[l, h] < 0.5 else "black",
                )
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title or "Per-head scores on repeated random tokens")
    fig.tight_layout()
    return fig
