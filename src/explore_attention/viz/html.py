"""Safe, self-contained HTML for the interactive views.

Two rules keep token strings from ever becoming markup or code (DESIGN §6):

* data reaches the page as JSON inside ``<script type="application/json">``; after
  ``json.dumps`` the characters ``<``, ``>``, ``&``, U+2028 and U+2029 are written as ``\\uXXXX``
  escapes, so no token can close the script element (``</script>``), open a comment (``<!--``) or
  break a JavaScript string;
* the page's script puts visible text in the DOM with ``textContent`` and escapes Plotly labels
  (Plotly parses a small HTML subset in labels).

Plotly's JavaScript ships inside the ``plotly`` Python package; it is inlined so a saved view
works from ``file://`` with no network.
"""

from __future__ import annotations

import html
import json
import uuid
from functools import lru_cache
from importlib import resources
from pathlib import Path

__all__ = ["STYLE", "new_dom_id", "page", "plotly_js", "plotly_script", "script_json", "views_js"]

STYLE = """
.ea-view{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:8px 0;}
.ea-title{font-weight:600;margin:4px 0;}
.ea-note{color:#555;font-size:0.9em;margin:2px 0;}
.ea-controls{margin:6px 0;display:flex;gap:8px 12px;flex-wrap:wrap;align-items:center;}
.ea-tokens{margin:6px 0;display:flex;flex-wrap:wrap;gap:2px;max-width:100%;}
.ea-token{padding:2px 4px;border-radius:3px;cursor:pointer;white-space:pre;font:inherit;
  unicode-bidi:isolate;border:1px solid #ccc;background:#fff;color:#111;}
.ea-token:focus-visible,.ea-cell:focus-visible,.ea-head-toggle:focus-visible{
  outline:3px solid #e6550d;outline-offset:1px;}
.ea-token.ea-chosen{outline:2px solid #e6550d;outline-offset:1px;}
.ea-token.ea-hover{box-shadow:0 0 0 2px #08519c;}
.ea-token.ea-generated{font-style:italic;border-color:#31a354;}
.ea-token.ea-masked{background:repeating-linear-gradient(45deg,#e4e4e4,#e4e4e4 3px,#d0d0d0 3px,
  #d0d0d0 6px);color:#777;}
.ea-head-toggle{font:inherit;font-size:0.85em;padding:2px 6px;border:2px solid #999;
  border-radius:4px;background:#fff;cursor:pointer;}
.ea-head-toggle.ea-off{opacity:0.45;text-decoration:line-through;}
.ea-swatch{display:inline-block;width:0.8em;height:0.8em;margin-right:4px;border-radius:2px;}
.ea-headview{display:block;height:auto;}
.ea-hv-token{cursor:pointer;fill:#222;}
.ea-hv-token:focus{outline:none;fill:#e6550d;}
.ea-hv-focus{fill:#e6550d;font-weight:700;text-decoration:underline;}
.ea-hv-hover{fill:#08519c;font-weight:700;}
.ea-hv-masked{fill:#aaa;}
.ea-grid{display:grid;gap:3px;max-width:100%;align-items:center;}
.ea-grid-head,.ea-grid-layer{font-size:0.75em;color:#444;text-align:center;}
.ea-cell{position:relative;padding:0;border:2px solid transparent;background:none;cursor:pointer;
  line-height:0;min-width:0;}
.ea-cell canvas{width:100%;aspect-ratio:1;image-rendering:pixelated;border:1px solid #ddd;}
.ea-cell.ea-selected{border-color:#e6550d;}
.ea-cell.ea-cell-off canvas{opacity:0.25;}
.ea-cell-tag{position:absolute;left:1px;bottom:1px;font-size:9px;line-height:1;background:#fffc;
  color:#333;padding:1px 2px;border-radius:2px;}
.ea-neuron-summary{font-family:ui-monospace,monospace;font-size:0.9em;margin:4px 0;}
.ea-error{color:#b00020;font-weight:600;}
"""
_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def script_json(obj: object) -> str:
    """``json.dumps(obj)`` made safe to place inside a ``<script>`` element."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    for ch, esc in _ESCAPES.items():
        text = text.replace(ch, esc)
    return text


def new_dom_id() -> str:
    """A fresh DOM id, so several views in one notebook never collide."""
    return "ea-" + uuid.uuid4().hex[:12]


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """Plotly's bundled JavaScript (from the installed ``plotly`` package)."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    if "</script" in js.lower():  # pragma: no cover - guards a future Plotly build
        raise RuntimeError("plotly.js contains '</script' and cannot be inlined safely")
    return js


def plotly_script() -> str:
    """The ``<script>`` that inlines Plotly, guarded so a page holding several views defines it
    once (the book's build swaps each for one shared file: ``docs/hooks/plotly_asset.py``)."""
    return "<script>if (typeof window.Plotly === 'undefined') {\n" + plotly_js() + "\n}</script>"


@lru_cache(maxsize=1)
def views_js() -> str:
    """Our view renderers (``viz/assets/views.js``)."""
    return resources.files("explore_attention.viz").joinpath("assets/views.js").read_text("utf-8")


def fragment(payload: dict, *, dom_id: str | None = None, include_js: bool = True) -> str:
    """An HTML fragment drawing one view: container, JSON data, and the renderer call."""
    dom_id = dom_id or new_dom_id()
    payload = {**payload, "dom_id": dom_id}
    parts = [f'<div class="ea-view" id="{dom_id}"></div>']
    parts.append(
        f'<script type="application/json" class="ea-data" data-for="{dom_id}">'
        f"{script_json(payload)}</script>"
    )
    if include_js:
        # Guarded: a notebook that already holds Plotly / our renderers does not redefine them.
        parts.append(plotly_script())
        parts.append(f"<style>{STYLE}</style><script>{views_js()}</script>")
    parts.append("<script>window.EAViews && window.EAViews.renderPending();</script>")
    return "\n".join(parts)


def page(title: str, body: str) -> str:
    """A full, self-contained HTML document around ``body``."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n{body}\n</body></html>\n"
    )


def write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
