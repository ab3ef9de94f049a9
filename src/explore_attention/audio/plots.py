"""Pictures of attention over audio: cross-attention on the spectrogram, attention over time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

from .alignment import FRAME_SECONDS, Alignment

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..inspect.trace import AttentionTrace
    from .synth import TimedWord

__all__ = ["plot_alignment", "plot_head_cross_attention", "plot_time_attention"]

MEL_SECONDS = 0.01  # one log-mel frame (hop 160 at 16 kHz)


def _spectrogram(ax, mel: Tensor, title: str) -> None:
    m = mel.detach().cpu().numpy()
    ax.imshow(m, origin="lower", aspect="auto", cmap="magma",
              extent=(0, m.shape[1] * MEL_SECONDS, 0, m.shape[0]))  # fmt: skip
    ax.set_ylabel("mel bin")
    ax.set_title(title)


def plot_alignment(alignment: Alignment, truth: list[TimedWord] | None = None) -> Figure:
    """Spectrogram with the DTW word spans, above the alignment heads' matrix and DTW path.

    ``truth``: the known word timing (from :func:`~explore_attention.audio.synth.speak_words`),
    drawn as white brackets under the predicted spans.
    """
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": [1, 1.3]})  # fmt: skip
    _spectrogram(top, alignment.features, f"Whisper heard: {alignment.text!r}")
    for k, w in enumerate(alignment.words):
        top.axvspan(w.start, w.end, ymin=0.82, ymax=0.97, color=f"C{k % 10}", alpha=0.8)
        top.text((w.start + w.end) / 2, 0.9 * alignment.features.shape[0], w.word,
                 ha="center", va="center", fontsize=9, color="white", weight="bold")  # fmt: skip
    for t in truth or []:
        top.plot([t.start, t.end], [3, 3], color="white", lw=3, solid_capstyle="butt")
    if truth:
        top.text(0.01, 0.05, "white bars: true word timing", transform=top.transAxes,
                 color="white", fontsize=8)  # fmt: skip
    m = alignment.matrix.numpy()
    N = m.shape[1]
    bottom.imshow(m, aspect="auto", cmap="viridis", origin="upper",
                  extent=(0, N * FRAME_SECONDS, m.shape[0] - 0.5, -0.5))  # fmt: skip
    rows, frames = alignment.path
    bottom.plot((frames + 0.5) * FRAME_SECONDS, rows, color="red", lw=1.2, label="DTW path")
    labels = alignment.token_strings[alignment.prefix : alignment.prefix + m.shape[0]]
    bottom.set_yticks(range(m.shape[0]), [s.strip() or repr(s) for s in labels], fontsize=8)
    bottom.set_ylabel("token being predicted")
    bottom.set_xlabel("time (s)")
    bottom.set_title("alignment heads: cross-attention, standardised, median-filtered, averaged")
    bottom.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_head_cross_attention(alignment: Alignment, layer: int, head: int) -> Figure:
    """One decoder head's cross-attention: every token (rows) over the audio frames."""
    import matplotlib.pyplot as plt

    L, H, T, N = alignment.cross.shape
    if not (0 <= layer < L and 0 <= head < H):
        raise ValueError(f"layer, head must be within {(L, H)}, got {(layer, head)}")
    w = alignment.cross[layer, head].numpy()  # (T, N)
    fig, ax = plt.subplots(figsize=(11, 3.5))
    ax.imshow(w, aspect="auto", cmap="Blues", extent=(0, N * FRAME_SECONDS, T - 0.5, -0.5))
    ax.set_yticks(range(T), [s.strip() or repr(s) for s in alignment.token_strings], fontsize=7)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("decoder token (query)")
    ax.set_title(f"Whisper tiny.en cross-attention, decoder layer {layer}, head {head}")
    fig.tight_layout()
    return fig


def plot_time_attention(mel: Tensor, trace: AttentionTrace, layer: int = -1) -> Figure:
    """Spectrogram, the class token's attention over time per head, and one head's matrix."""
    import matplotlib.pyplot as plt

    att = trace.attentions[layer]  # (H, 1+T, 1+T)
    H, T = att.shape[0], att.shape[-1] - 1
    fig = plt.figure(figsize=(11, 7))
    grid = fig.add_gridspec(3, 2, height_ratios=[1, 1, 2.2], width_ratios=[1, 1])
    ax0 = fig.add_subplot(grid[0, :])
    pred = trace.meta.get("prediction")
    _spectrogram(ax0, mel, f"input spectrogram (model says: {pred})")
    ax1 = fig.add_subplot(grid[1, :], sharex=ax0)
    t = (np.arange(T) + 0.5) * 2 * MEL_SECONDS
    for h in range(H):
        ax1.plot(t, att[h, 0, 1:].numpy(), label=f"head {h}")
    ax1.set_ylabel("weight")
    ax1.set_xlabel("time (s)")
    ax1.set_title(f"layer {layer % trace.num_layers}: what the [CLS] token attends to over time")
    ax1.legend(fontsize=7, ncol=H)
    for k, h in enumerate((0, H - 1)):
        ax = fig.add_subplot(grid[2, k])
        ax.imshow(att[h].numpy(), cmap="Blues")
        ticks = list(range(0, T + 1, 10))
        ax.set_xticks(ticks, [trace.key_tokens[i] for i in ticks], rotation=90, fontsize=7)
        ax.set_yticks(ticks, [trace.tokens[i] for i in ticks], fontsize=7)
        ax.set_xlabel("key token (time)")
        ax.set_ylabel("query token (time)")
        ax.set_title(f"self-attention over time, head {h}", fontsize=9)
    fig.tight_layout()
    return fig
