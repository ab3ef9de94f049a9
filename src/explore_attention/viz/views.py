"""Interactive attention views: head view, model view, token view and a heatmap with selectors.

Each function takes an :class:`~explore_attention.inspect.trace.AttentionTrace` and returns an
:class:`AttentionView`, which

* renders inline in Jupyter / VS Code (``_repr_html_``; every view gets its own DOM id, so
  several views in one notebook work independently);
* saves a **self-contained** HTML file (``save_html``): Plotly's JavaScript, which ships in the
  ``plotly`` Python package, is inlined, so the file works from ``file://`` with no network;
* exports a static figure of the same view as PNG or SVG (``save_image``), drawn with
  matplotlib so export needs no browser (see ``docs/design.md``).

Long inputs: a view shows at most ``max_tokens`` positions per axis. A longer (or windowed) input
is aggregated into bins of consecutive tokens — keys summed, queries averaged, so every row
still sums to 1 — and the view says so in a note. ``window=(start, stop)`` shows a slice exactly.

Token strings are escaped as described in :mod:`explore_attention.viz.html`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import html as _html

__all__ = ["AttentionView", "attention_heatmap", "head_view", "model_view", "prepare", "token_view"]

VIEWS = ("heatmap", "head", "model", "token")


def _check_trace(trace: Any) -> None:
    from ..inspect.trace import AttentionTrace

    if not isinstance(trace, AttentionTrace):
        raise TypeError(f"trace must be an AttentionTrace, got {type(trace).__name__}")


def _bins(n: int, max_tokens: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into at most ``max_tokens`` runs of consecutive positions."""
    size = math.ceil(n / max_tokens)
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def _pool_matrix(bins: list[tuple[int, int]], n: int, *, mean: bool) -> Tensor:
    """``(len(bins), n)``: row ``b`` sums (or averages) the positions of bin ``b``."""
    M = torch.zeros(len(bins), n)
    for r, (a, b) in enumerate(bins):
        M[r, a:b] = 1.0 / (b - a) if mean else 1.0
    return M


def _bin_label(tokens: list[str], a: int, b: int) -> str:
    if b - a == 1:
        return tokens[a]
    return f"{tokens[a]}…{tokens[b - 1]} [{a}–{b - 1}]"


def prepare(
    trace: Any,
    *,
    max_tokens: int = 128,
    window: tuple[int, int] | None = None,
) -> tuple[Tensor, list[str], list[str], str]:
    """Window and aggregate a trace for display.

    Returns ``(attentions (layers, heads, Lq', Lk'), query labels, key labels, note)``, where
    ``note`` is ``""`` when the trace is shown exactly. Aggregating keys into bin :math:`b`
    sums :math:`\\sum_{j \\in b} A_{ij}` and queries average, so rows still sum to 1.
    """
    _check_trace(trace)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be an int >= 1, got {max_tokens!r}")
    A = trace.attentions  # (layers, heads, Lq, Lk)
    q_tok, k_tok = list(trace.tokens), list(trace.key_tokens)
    notes = []
    if window is not None:
        if (
            not isinstance(window, (tuple, list))
            or len(window) != 2
            or not all(isinstance(w, int) and not isinstance(w, bool) for w in window)
        ):
            raise TypeError(f"window must be a (start, stop) pair of ints, got {window!r}")
        start, stop = window
        if not 0 <= start < stop <= len(q_tok):
            raise ValueError(
                f"window must satisfy 0 <= start < stop <= Lq={len(q_tok)}, got {window!r}"
            )
        A = A[:, :, start:stop]  # (layers, heads, stop-start, Lk)
        q_tok = q_tok[start:stop]
        if trace.kind != "cross":
            A = A[..., start:stop]  # (layers, heads, w, w)
            k_tok = k_tok[start:stop]
            notes.append(
                f"Window: tokens {start}–{stop - 1} of {len(trace.tokens)}; attention to tokens "
                "outside the window is not shown, so rows may sum to less than 1."
            )
        else:
            notes.append(f"Window: query tokens {start}–{stop - 1} of {len(trace.tokens)}.")
    Lq, Lk = A.shape[-2:]
    if Lq > max_tokens:
        bins = _bins(Lq, max_tokens)
        A = _pool_matrix(bins, Lq, mean=True) @ A  # (nb, Lq) @ (l, h, Lq, Lk) -> (l, h, nb, Lk)
        notes.append(
            f"{Lq} query tokens shown as {len(bins)} bins of up to {bins[0][1]} consecutive "
            "tokens (weights averaged over each bin)."
        )
        q_tok = [_bin_label(q_tok, a, b) for a, b in bins]
    if Lk > max_tokens:
        bins = _bins(Lk, max_tokens)
        A = A @ _pool_matrix(bins, Lk, mean=False).T  # (l, h, Lq', Lk) @ (Lk, nb) -> (.., nb)
        notes.append(
            f"{Lk} key tokens shown as {len(bins)} bins of up to {bins[0][1]} consecutive "
            "tokens (weights summed over each bin, so rows still sum to 1)."
        )
        k_tok = [_bin_label(k_tok, a, b) for a, b in bins]
    return A, q_tok, k_tok, " ".join(notes)


@dataclass
class AttentionView:
    """One interactive view: HTML for notebooks and files, and a static PNG/SVG figure."""

    view: str  # "heatmap" | "head" | "model" | "token"
    trace: Any  # the AttentionTrace it draws
    payload: dict = field(repr=False)  # the JSON the page's renderer reads
    title: str = ""  # shown above the view and in the static figure

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {self.view!r}")

    def _repr_html_(self) -> str:
        return _html.fragment(self.payload)

    def to_html(self) -> str:
        """A complete, self-contained HTML document."""
        return _html.page(self.title, _html.fragment(self.payload))

    def save_html(self, path: str | Path) -> Path:
        """Write :meth:`to_html` to ``path`` (atomically); opens from ``file://`` offline."""
        return _html.write_atomic(path, self.to_html())

    def to_figure(self):
        """The same view as a static matplotlib figure."""
        from .export import static_figure

        return static_figure(self)

    def save_image(self, path: str | Path, *, dpi: int = 150) -> Path:
        """Save the static figure; the format comes from the suffix (``.png`` or ``.svg``)."""
        import matplotlib.pyplot as plt

        path = Path(path)
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in ("png", "svg"):
            raise ValueError(f"path must end in .png or .svg, got {str(path)!r}")
        fig = self.to_figure()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
        finally:
            plt.close(fig)
        tmp.replace(path)
        return path


def _selection(trace: Any, layer: int | str, head: int | str) -> None:
    for name, val, n in (("layer", layer, trace.num_layers), ("head", head, trace.num_heads)):
        if val == "mean":
            continue
        if isinstance(val, bool) or not isinstance(val, int) or not 0 <= val < n:
            raise ValueError(f"{name} must be an int in [0, {n}) or 'mean', got {val!r}")


def _make(
    view: str,
    trace: Any,
    *,
    layer: int | str,
    head: int | str,
    max_tokens: int,
    window: tuple[int, int] | None,
    **extra: Any,
) -> AttentionView:
    _check_trace(trace)
    _selection(trace, layer, head)
    A, q_tok, k_tok, note = prepare(trace, max_tokens=max_tokens, window=window)
    names = {
        "heatmap": "Attention heatmap",
        "head": "Head view",
        "model": "Model view",
        "token": "Token view",
    }
    title = f"{names[view]} — {trace.model_name} ({trace.kind} attention)"
    payload = {
        "view": view,
        "model_name": trace.model_name,
        "kind": trace.kind,
        "tokens": q_tok,
        "key_tokens": k_tok,
        # 4 decimals keep a 128-token, 72-head payload to a few MB.
        "attentions": A.double().round(decimals=4).tolist(),
        "layer": layer,
        "head": head,
        "note": note,
        **extra,
    }
    return AttentionView(view=view, trace=trace, payload=payload, title=title)


def attention_heatmap(
    trace: Any,
    *,
    layer: int | str = 0,
    head: int | str = 0,
    max_tokens: int = 128,
    window: tuple[int, int] | None = None,
) -> AttentionView:
    """An interactive query × key heatmap with layer and head selectors (or their means)."""
    return _make("heatmap", trace, layer=layer, head=head, max_tokens=max_tokens, window=window)


def head_view(
    trace: Any,
    *,
    layer: int = 0,
    head: int | str = "all",
    max_tokens: int = 128,
    window: tuple[int, int] | None = None,
) -> AttentionView:
    """Lines from each query token (left) to the key tokens (right) it attends to (BertViz's).

    Line width and opacity follow the weight; every head has its own colour and a toggle
    (``head="all"`` starts with all on, an int with only that head). Hover or focus a token on
    either side to see only its lines; click or Enter pins a query token.
    """
    if head != "all":
        _selection(trace, layer, head)
    view = _make("head", trace, layer=layer, head=0, max_tokens=max_tokens, window=window)
    view.payload["head"] = head
    return view


def model_view(
    trace: Any,
    *,
    max_tokens: int = 48,
    window: tuple[int, int] | None = None,
) -> AttentionView:
    """Every layer × head as a grid of thumbnails on one colour scale (a contrast switch rescales
    each to its own maximum); click one to enlarge it."""
    return _make("model", trace, layer=0, head=0, max_tokens=max_tokens, window=window)


def token_view(
    trace: Any,
    *,
    layer: int | str = "mean",
    head: int | str = "mean",
    token: int = 0,
    max_tokens: int = 128,
    window: tuple[int, int] | None = None,
) -> AttentionView:
    """Hover or click a token: what it attends to and what attends to it (per head or mean)."""
    if isinstance(token, bool) or not isinstance(token, int) or token < 0:
        raise ValueError(f"token must be a non-negative int, got {token!r}")
    view = _make("token", trace, layer=layer, head=head, max_tokens=max_tokens, window=window)
    if token >= len(view.payload["tokens"]):
        raise ValueError(
            f"token must be < number of shown query tokens {len(view.payload['tokens'])}, "
            f"got {token}"
        )
    view.payload["token"] = token
    return view
