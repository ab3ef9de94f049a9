"""MkDocs hook: executed notebook pages show what a reader needs, not the build machine.

mkdocs-jupyter runs every notebook in a kernel that inherits this process's environment, then
renders each output with nbconvert's lab template. Two steps keep build noise off the pages:

1. **At the source** (``on_config``, before any notebook runs): progress bars off
   (``TQDM_DISABLE`` for every ``tqdm`` that does not force itself on, Hugging Face Hub's and
   transformers' own bars and advisory logs), Python warnings ignored, and
   ``EXPLORE_ATTENTION_STATIC=1`` so :mod:`explore_attention.viz.knobs` draws its static figure
   without an ipywidgets slider (a widget needs a live kernel and would fetch JavaScript).
2. **On the rendered page** (``on_post_page``, notebook pages only): stderr stream outputs
   (warnings, progress bars that still got through) are removed; error outputs (cells tagged
   ``raises-exception``) are kept, with the machine's paths shortened to module paths; widget
   views, which render nothing offline, are removed, with the script that would fetch their
   renderer from unpkg.com.
3. **Links** in notebook markdown are written to work in Jupyter (``../02_types/x.ipynb``,
   ``../../docs/notation.md``); mkdocs-jupyter leaves them as they are, so they are rewritten to
   the site's pages (``.html``, ``docs/`` dropped — the site uses ``use_directory_urls: false``).
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

QUIET_ENV = {
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "PYTHONWARNINGS": "ignore",
    "EXPLORE_ATTENTION_STATIC": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

_STDERR = re.compile(
    r'<div class="jp-RenderedText jp-OutputArea-output[^"]*" '
    r'data-mime-type="application/vnd.jupyter.stderr"[^>]*>\s*<pre>(.*?)</pre>\s*</div>',
    re.S,
)
_WIDGET = re.compile(
    r'<script type="application/vnd\.jupyter\.widget-view\+json">.*?</script>', re.S
)
# the lab template's loader of a widget renderer from unpkg.com, useless once views are gone
_WIDGET_LOADER = re.compile(
    r"<script>\s*\(function\(\) \{\s*function addWidgetsRenderer\(\).*?</script>", re.S
)
# an absolute path up to a package root: .../site-packages/torch/x.py -> torch/x.py;
# <root>/src/explore_attention/x.py -> explore_attention/x.py
_SITE_PACKAGES = re.compile(r"(?:/[^\s\"'<>:]+)?/(?:site|dist)-packages/")
_OUR_SRC = re.compile(r"(?:/[^\s\"'<>:]+)?/src/(?=explore_attention/)")
_ERROR_LINE = re.compile(r"\b\w*(Error|Exception)\b")
_HREF = re.compile(r'href="(?![a-z][a-z0-9+.-]*:|#|/)([^"#]*?)\.(md|ipynb)(#[^"]*)?"')


def on_config(config, **kwargs):
    """Quiet the kernels mkdocs-jupyter is about to start (they inherit this environment)."""
    os.environ.update(QUIET_ENV)
    return config


def shorten_paths(text: str) -> str:
    """Replace the build machine's absolute paths by package-relative ones."""
    text = _SITE_PACKAGES.sub("", text)
    text = _OUR_SRC.sub("", text)
    return text.replace(str(ROOT) + "/", "")


def site_link(m: re.Match) -> str:
    """A notebook's relative link to a page or notebook, as the built site names it."""
    path = re.sub(r"(^|/)docs/", r"\1", m.group(1))
    return f'href="{path}.html{m.group(3) or ""}"'


def clean_notebook_html(page: str) -> str:
    """Drop stderr streams and widget views from a rendered notebook; keep errors, shortened."""

    def stderr_block(m: re.Match) -> str:
        text = html.unescape(re.sub(r"<[^>]+>", "", m.group(1)))
        if _ERROR_LINE.search(text):  # an exception a raises-exception cell shows on purpose
            return shorten_paths(m.group(0))
        return ""

    page = _STDERR.sub(stderr_block, page)
    page = _HREF.sub(site_link, page)
    return _WIDGET_LOADER.sub("", _WIDGET.sub("", page))


def on_post_page(output, page, config, **kwargs):
    if page.file.src_uri.endswith(".ipynb"):
        return clean_notebook_html(output)
    return output
