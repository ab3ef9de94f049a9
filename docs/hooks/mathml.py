"""MkDocs hook: render every equation to MathML at build time, so the site needs no JavaScript
or network for math (browsers render MathML Core natively).

Handles the three places math appears:

* Markdown pages: ``pymdownx.arithmatex`` (generic mode) wraps ``$...$`` / ``$$...$$`` in
  ``<span|div class="arithmatex">\\(...\\)</span|div>``;
* notebooks rendered by mkdocs-jupyter: ``$...$`` / ``$$...$$`` left as text in markdown cells;
* API pages from docstrings: reST ``:math:`...``` roles and ``.. math::`` blocks.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

_ARITHMATEX = re.compile(
    r'<(span|div) class="arithmatex">\s*(?:\\\(|\\\[)(.*?)(?:\\\)|\\\])\s*</\1>', re.S
)
# mkdocstrings renders ``:math:`x``` as ":math:<code>x</code>", and ``.. math::`` + an indented
# block as "<p>.. math::</p>" + a highlighted code block, or "<p>.. math:: x</p>" on one line.
_ROLE = re.compile(r":math:<code>(.*?)</code>|:math:`(.*?)`", re.S)
_DIRECTIVE_BLOCK = re.compile(
    r"<p>\.\. math::</p>\s*<div class=\"highlight\"><pre>(?:<span></span>)?"
    r"<code>(.*?)</code></pre></div>",
    re.S,
)
_DIRECTIVE_LINE = re.compile(r"<p>\.\. math::\s+(.*?)</p>", re.S)
_DISPLAY_DOLLARS = re.compile(r"\$\$(.+?)\$\$", re.S)
# inline: may wrap onto the next source line (not across a blank line); "$Q = K = V = $" (a
# trailing space before the closing dollar) is still math
_INLINE_DOLLARS = re.compile(r"(?<![\\$\w])\$(?!\s)((?:[^$\n]|\n(?![ \t]*\n))+?)\$(?![\w$])")
# the table of contents of a notebook page repeats its headings, TeX included
_TOC_LABEL = re.compile(r'(<span class="md-ellipsis">)(.*?)(</span>)', re.S)
_MATHJAX_SCRIPT = re.compile(r"<script[^>]*mathjax[^>]*>\s*</script>", re.I)
_NB_MARKDOWN = re.compile(
    r'(<div class="jp-RenderedHTMLCommon jp-RenderedMarkdown[^"]*"[^>]*>)(.*?)(</div>)', re.S
)


def _mathml(tex: str, display: bool) -> str:
    tex = html.unescape(tex).strip()
    try:
        return convert(tex, display="block" if display else "inline")
    except Exception:  # an equation the converter cannot parse stays readable as TeX
        return f'<code class="tex">{html.escape(tex)}</code>'


def _strip_tags(s: str) -> str:
    return re.sub(r"<[^>]+>", "", s)


def render_math(page_html: str) -> str:
    """Replace every TeX fragment in ``page_html`` by MathML."""
    out = _ARITHMATEX.sub(lambda m: _mathml(m.group(2), m.group(1) == "div"), page_html)
    out = _DIRECTIVE_BLOCK.sub(lambda m: _mathml(_strip_tags(m.group(1)), True), out)
    out = _DIRECTIVE_LINE.sub(lambda m: _mathml(_strip_tags(m.group(1)), True), out)
    out = _ROLE.sub(lambda m: _mathml(m.group(1) or m.group(2), False), out)

    def notebook_cell(m: re.Match) -> str:
        body = _DISPLAY_DOLLARS.sub(lambda d: _mathml(d.group(1), True), m.group(2))
        body = _INLINE_DOLLARS.sub(lambda d: _mathml(d.group(1), False), body)
        return m.group(1) + body + m.group(3)

    out = _NB_MARKDOWN.sub(notebook_cell, out)
    out = _TOC_LABEL.sub(
        lambda m: (
            m.group(1)
            + _INLINE_DOLLARS.sub(lambda d: _mathml(d.group(1), False), m.group(2))
            + m.group(3)
        ),
        out,
    )
    return _MATHJAX_SCRIPT.sub("", out)


def on_page_content(html_: str, page, config, files) -> str:
    return render_math(html_)


def on_post_page(output: str, page, config) -> str:
    # Notebook pages are assembled after on_page_content; render their math here too.
    if page.file.src_uri.endswith(".ipynb"):
        return render_math(output)
    return output
