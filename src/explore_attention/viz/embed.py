"""Embed a matplotlib figure in HTML (docs pages, reports) as a self-contained PNG."""

from __future__ import annotations

import base64
import html
import io

from matplotlib.figure import Figure

__all__ = ["figure_html"]


def figure_html(fig: Figure, alt: str, *, dpi: int = 110) -> str:
    """``<img>`` with the figure as a base64 PNG (no file, no network) and escaped alt text."""
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{data}">'
