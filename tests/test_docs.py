"""The book builds and renders: a representative subset of the site is built with the real
config (MathML hook, markdown-exec, mkdocs-jupyter executing a notebook, mkdocstrings) and opened
in headless Chromium with the network blocked. `make docs` builds the whole site."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need_tool

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "01_foundations/03_attention_from_scratch.ipynb"

INDEX = """# Subset
* [Scaled dot-product](types/scaled_dot_product.md)
* [From scratch](notebooks/{nb})
* [API](api/attention.md)
"""

CONFIG = """INHERIT: {root}/mkdocs.yml
docs_dir: docs
site_dir: site
strict: true
validation:
  links:
    not_found: info
  unrecognized_links: info
  omitted_files: info
hooks:
  - {root}/docs/hooks/mathml.py
  - {root}/docs/hooks/clean_outputs.py
  - {root}/docs/hooks/plotly_asset.py
nav:
  - Home: index.md
  - types/scaled_dot_product.md
  - notebooks/{nb}
  - api/attention.md
plugins:
  - search
  - markdown-exec
  - mkdocs-jupyter:
      execute: true
      allow_errors: false
      cache: false
      include: ["notebooks/**/*.ipynb"]
  - mkdocstrings:
      handlers:
        python:
          paths: [{root}/src]
          options:
            docstring_style: google
            show_root_heading: true
            show_source: true
            docstring_options: {{warn_missing_types: false}}
"""


def build_subset(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "types").mkdir(parents=True)
    (docs / "api").mkdir()
    (docs / "notebooks" / Path(NOTEBOOK).parent).mkdir(parents=True)
    shutil.copy(ROOT / "docs/types/scaled_dot_product.md", docs / "types")
    shutil.copy(ROOT / "docs/api/attention.md", docs / "api")
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, docs / "notebooks" / NOTEBOOK)
    (docs / "index.md").write_text(INDEX.format(nb=NOTEBOOK))
    (tmp_path / "mkdocs.yml").write_text(CONFIG.format(root=ROOT, nb=NOTEBOOK))
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "EXPLORE_ATTENTION_QUICK": "1"}
    # conftest sets MPLBACKEND=Agg for the tests; a notebook kernel inheriting it draws no figures
    env.pop("MPLBACKEND", None)
    mkdocs = Path(sys.executable).with_name("mkdocs")
    proc = subprocess.run(
        [str(mkdocs), "build"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return tmp_path / "site"


@pytest.mark.slow
@pytest.mark.browser
def test_docs_subset_builds_and_renders_offline(tmp_path: Path):
    site = build_subset(tmp_path)
    page = (site / "types/scaled_dot_product.html").read_text()
    assert page.count("<math") >= 3, "equations must be rendered to MathML at build time"
    # the view's Plotly comes from one shared file, not inlined into the page
    assert "window.Plotly === 'undefined'" not in page
    assert '<script src="../assets/js/plotly.min.js">' in page
    assert (site / "assets/js/plotly.min.js").stat().st_size > 1_000_000
    nb_page = (site / "notebooks" / NOTEBOOK.replace(".ipynb", ".html")).read_text()
    assert "assert_close" in nb_page and "<img" in nb_page, "notebook rendered with outputs"

    from playwright.sync_api import sync_playwright

    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=need_tool("chromium"),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        pg = browser.new_page()
        blocked: list[str] = []
        pg.route(
            "**/*",
            lambda r: (
                r.continue_()
                if r.request.url.startswith(("file:", "data:"))
                else (blocked.append(r.request.url), r.abort())
            ),
        )
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto((site / "index.html").as_uri())
        pg.get_by_role("link", name="Scaled dot-product").first.click()
        pg.wait_for_url("**/types/scaled_dot_product.html")
        # rendered math: MathML elements with a real size on screen
        sizes = pg.eval_on_selector_all(
            "article math", "els => els.map(e => e.getBoundingClientRect().width)"
        )
        assert len(sizes) >= 3 and min(sizes) > 0
        # a figure produced during the build
        widths = pg.eval_on_selector_all(
            "article img[src^='data:image/png']", "els => els.map(e => e.naturalWidth)"
        )
        assert widths and min(widths) > 100
        # the interactive view drew itself (Plotly from the site's own file, no network)
        pg.wait_for_selector("article .js-plotly-plot .main-svg", timeout=20000)
        pg.screenshot(path=str(artifacts / "docs_mechanism_page.png"), full_page=False)
        browser.close()
    assert not errors, errors
    assert not [u for u in blocked if not u.startswith("file:")], blocked
