"""docs/hooks/clean_outputs.py: executed notebook pages lose build noise, keep what teaches."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("clean_outputs", ROOT / "docs/hooks/clean_outputs.py")
clean_outputs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(clean_outputs)

STDERR = (
    '<div class="jp-RenderedText jp-OutputArea-output" '
    'data-mime-type="application/vnd.jupyter.stderr">\n<pre>{}</pre>\n</div>'
)
STDOUT = (
    '<div class="jp-RenderedText jp-OutputArea-output" data-mime-type="text/plain">\n'
    "<pre>{}</pre>\n</div>"
)


def _page(uri: str):
    return SimpleNamespace(file=SimpleNamespace(src_uri=uri))


def test_stderr_streams_and_widgets_are_removed_stdout_kept():
    noise = STDERR.format(
        "/work/main/.venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress "
        "not found\nLoading weights: 100%|##########| 103/103 [00:00&lt;00:00, 5758.95it/s]"
    )
    widget = '<script type="application/vnd.jupyter.widget-view+json">{"model_id": "x"}</script>'
    html = "<p>before</p>" + noise + STDOUT.format("scores: [0.1, 0.9]") + widget + "<p>after</p>"
    out = clean_outputs.on_post_page(html, _page("notebooks/01_foundations/x.ipynb"), {})
    assert "IProgress" not in out and "it/s]" not in out and "site-packages" not in out
    assert "widget-view" not in out
    assert "scores: [0.1, 0.9]" in out and "<p>before</p>" in out and "<p>after</p>" in out


def test_errors_shown_on_purpose_stay_with_short_paths():
    err = STDERR.format(
        "File <span>/work/main/.venv/lib/python3.11/site-packages/torch/nn/functional.py:12"
        "</span>\n"
        f"File {ROOT}/src/explore_attention/attention/core.py:99\n"
        "ValueError: window must be &gt;= 1, got 0"
    )
    out = clean_outputs.clean_notebook_html(err)
    assert "ValueError: window must be &gt;= 1, got 0" in out
    assert "torch/nn/functional.py:12" in out and "explore_attention/attention/core.py:99" in out
    assert "site-packages" not in out and "/work/" not in out and "/src/" not in out


def test_markdown_pages_are_untouched():
    html = STDERR.format("a warning a page prints on purpose")
    assert clean_outputs.on_post_page(html, _page("types/lsh.md"), {}) == html


def test_on_config_quiets_the_kernels(monkeypatch):
    for key in clean_outputs.QUIET_ENV:
        monkeypatch.delenv(key, raising=False)
    config = {"site_name": "x"}
    assert clean_outputs.on_config(config) is config
    assert os.environ["TQDM_DISABLE"] == "1"
    assert os.environ["EXPLORE_ATTENTION_STATIC"] == "1"


def test_notebook_links_point_to_the_site_pages():
    html = (
        '<a href="../02_types/03_multihead_and_gqa.ipynb">nb</a> '
        '<a href="../../docs/notation.md#heads">notation</a> '
        '<a href="../solutions/01_foundations_01_why_attention.py">solutions</a> '
        '<a href="https://arxiv.org/abs/1409.0473">paper</a> <a href="#summary">up</a>'
    )
    out = clean_outputs.clean_notebook_html(html)
    assert 'href="../02_types/03_multihead_and_gqa.html"' in out
    assert 'href="../../notation.html#heads"' in out
    assert 'href="../solutions/01_foundations_01_why_attention.py"' in out
    assert 'href="https://arxiv.org/abs/1409.0473"' in out and 'href="#summary"' in out


def test_widget_renderer_loader_is_removed_with_the_views():
    loader = (
        "<script>\n(function() {\n  function addWidgetsRenderer() {\n"
        "    var widgetRendererSrc = 'https://unpkg.com/@jupyter-widgets/html-manager@*/dist/"
        "embed-amd.js';\n  }\n  document.addEventListener('DOMContentLoaded', "
        "addWidgetsRenderer);\n}());\n</script>"
    )
    out = clean_outputs.clean_notebook_html("<p>a</p>" + loader + "<script>keep()</script>")
    assert out == "<p>a</p><script>keep()</script>"


def test_plotly_hook_keeps_one_shared_script_where_the_first_copy_stood():
    """A page with several views: every inlined Plotly goes, one relative <script src> stands
    where the first was, everything else is untouched; a page without views is unchanged."""
    from explore_attention.viz.html import plotly_script

    spec = importlib.util.spec_from_file_location(
        "plotly_asset", ROOT / "docs/hooks/plotly_asset.py"
    )
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    block = plotly_script()
    html = f"<p>a</p>{block}<div id=v1></div>{block}<div id=v2></div>"
    got = hook.shared_plotly(html, "notebooks/03_demos/x.html")
    assert got == (
        '<p>a</p><script src="../../assets/js/plotly.min.js"></script>'
        "<div id=v1></div><div id=v2></div>"
    )
    assert hook.shared_plotly("<p>no view</p>", "index.html") == "<p>no view</p>"
