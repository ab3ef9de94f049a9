"""MkDocs hook: one copy of Plotly's JavaScript for the whole site.

Every interactive view (:mod:`explore_attention.viz.views`) inlines plotly.js (about 3.6 MB) so
that a notebook or a saved view works offline on its own; a notebook page with seven views
carried seven copies (41 MB). On the built site each inlined copy is replaced by one
``<script src>`` of a shared file, ``assets/js/plotly.min.js``, written once, by a relative URL,
so the site still works opened from ``file://`` and with no network.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.utils import get_relative_url

from explore_attention.viz.html import plotly_js, plotly_script

ASSET = "assets/js/plotly.min.js"


def shared_plotly(html: str, page_url: str) -> str:
    """``html`` with every inlined Plotly script removed and, where the first one stood, a
    ``<script src>`` of :data:`ASSET` relative to ``page_url`` (the page's path in the site)."""
    block = plotly_script()
    first = html.find(block)
    if first < 0:
        return html
    tag = f'<script src="{get_relative_url(ASSET, page_url)}"></script>'
    return html[:first] + tag + html[first:].replace(block, "")


def on_post_page(output: str, page, config) -> str:
    return shared_plotly(output, page.file.url)


def on_post_build(config) -> None:
    path = Path(config["site_dir"]) / ASSET
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(plotly_js(), encoding="utf-8")
