"""Real headless Chromium (found by explore_attention.tools, driven by Playwright): the app and
saved views show the model's tokens and values, render hostile tokens as text, and need no
network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import free_port, need_tool

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP evil.example 127.0.0.1",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
HOSTILE = [
    "[CLS]",
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<!--",
    "&amp;",
    "😀",
    "שלום עולם",
    "",
    "  ",
    "Ġthe",
    "▁x",
    "<b>bold</b>",
    "[SEP]",
]


@pytest.fixture(scope="module")
def browser():
    chromium = need_tool("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    pg = ctx.new_page()
    pg.dialogs, pg.errors = [], []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    ctx.close()


@pytest.fixture(scope="module")
def app_url():
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "explore_attention.cli", "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "running at" in line:
            break
    else:
        proc.wait(timeout=10)
        pytest.fail("the app did not start:\n" + "".join(lines))
    assert f"http://127.0.0.1:{port}/" in lines[-1]
    yield f"http://127.0.0.1:{port}/"
    proc.terminate()
    proc.wait(timeout=20)


def tick_texts(page, selector, axis):
    return page.eval_on_selector(
        selector,
        f"el => Array.from(el.querySelectorAll('.{axis}tick text')).map(t => t.textContent)",
    )


def post(url, body):
    import json
    import urllib.request

    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, json.loads(r.read())


def heatmap_z(page, selector):
    """The z of the first Plotly plot at (or inside) ``selector``; nulls (masked) kept."""
    return torch.tensor(
        page.eval_on_selector(
            selector or ".js-plotly-plot",
            "el => (el.classList.contains('js-plotly-plot') ? el : "
            "el.querySelector('.js-plotly-plot')).data[0].z",
        )
    )


def wait_drawn(page, before, timeout=60_000):
    page.wait_for_function(
        "b => document.body.getAttribute('data-drawn') !== b && "
        "!document.body.classList.contains('busy')",
        arg=before,
        timeout=timeout,
    )


def open_app(page, url):
    page.goto(url)
    page.wait_for_function("document.body.getAttribute('data-drawn')", timeout=60_000)


def test_app_shows_the_models_tokens_and_weights(page, app_url):
    from explore_attention.inspect import capture, load_model

    open_app(page, app_url)
    scripts = page.evaluate("document.scripts.length")
    page.evaluate(
        "window.sawBusy = false; new MutationObserver(() => { if "
        "(document.body.classList.contains('busy')) window.sawBusy = true; })"
        ".observe(document.body, {attributes: true})"
    )
    text = "The keys <img src=x onerror=alert(1)> & </script><script>alert(1)</script> opened."
    before = page.get_attribute("body", "data-drawn")
    page.fill("#text", text)
    page.press("#text", "Enter")  # Enter runs
    wait_drawn(page, before)
    assert page.evaluate("window.sawBusy")  # the old plots were dimmed while it ran
    before = page.get_attribute("body", "data-drawn")
    page.select_option("#layer", "2")  # the server sends the new layer
    wait_drawn(page, before)
    page.select_option("#head", "5")
    page.wait_for_function(
        "document.querySelector('#view-heatmap .gtitle').textContent === 'layer 2, head 5'"
    )
    model, tok = load_model()
    trace = capture(model, text, tok)
    z = heatmap_z(page, "#view-heatmap")
    torch.testing.assert_close(z, trace.attentions[2, 5], atol=2e-5, rtol=0)
    assert tick_texts(page, "#view-heatmap", "x") == trace.tokens
    assert tick_texts(page, "#view-heatmap", "y") == trace.tokens
    spans = page.eval_on_selector_all("#tokens .ea-token", "s => s.map(e => e.textContent)")
    assert spans == trace.tokens
    # hovering a token shows its row, and the same token lights up in the other views
    page.hover("#tokens .ea-token[data-index='3']")
    bars = page.eval_on_selector("#view-row", "el => el.data[0].y")
    torch.testing.assert_close(torch.tensor(bars), trace.attentions[2, 5, 3], atol=2e-5, rtol=0)
    assert "ea-hover" in page.get_attribute("#tokens .ea-token[data-index='3']", "class")
    shape = page.eval_on_selector("#view-heatmap", "el => el.layout.shapes[0]")
    assert (shape["y0"], shape["y1"]) == (2.5, 3.5)
    assert page.get_attribute(".ea-hv-query[data-index='3']", "class").count("ea-hv-hover") == 1
    # the URL holds the state, so the view can be shared
    assert "layer=2" in page.url and "head=5" in page.url and "text=The+keys" in page.url
    assert page.evaluate("document.scripts.length") == scripts
    assert page.query_selector("img") is None
    assert page.query_selector(".modebar") is None  # no Plotly toolbar in the tab order
    labelled = page.eval_on_selector_all(
        ".js-plotly-plot",
        "els => els.every(e => e.getAttribute('role') === 'img' && e.getAttribute('aria-label'))",
    )
    assert labelled
    assert page.dialogs == [] and page.errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)
    page.screenshot(path=str(ARTIFACTS / "app-top.png"))


def test_app_keyboard_and_shared_url(page, app_url):
    text = "the cat saw the dog"
    from urllib.parse import urlencode

    q = urlencode({"model": "default", "text": text, "layer": 3, "head": 4, "focus": 2})
    open_app(page, app_url + "?" + q)
    assert page.input_value("#layer") == "3" and page.input_value("#head") == "4"
    assert page.text_content("#view-heatmap .gtitle") == "layer 3, head 4"
    assert page.get_attribute("#tokens .ea-token[data-index='2']", "aria-pressed") == "true"
    # Tab reaches the tokens; arrows move; Enter pins
    page.focus("#tokens .ea-token[data-index='0']")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.getAttribute('data-index')") == "3"
    page.keyboard.press("Enter")
    page.wait_for_function("location.search.includes('focus=3')")
    assert page.get_attribute("#tokens .ea-token[data-index='3']", "aria-pressed") == "true"
    # a head-view token is keyboard-reachable too
    page.focus(".ea-hv-query[data-index='1']")
    page.keyboard.press("Enter")
    page.wait_for_function("location.search.includes('focus=1')")
    assert "ea-hv-focus" in page.get_attribute(".ea-hv-query[data-index='1']", "class")
    assert page.errors == []


def test_app_head_view_and_neuron_view(page, app_url):
    from explore_attention.inspect import capture, load_model

    open_app(page, app_url)
    text = "The cat sat on the mat because it was tired."
    model, tok = load_model()
    trace = capture(model, text, tok)
    toggles = page.query_selector_all("#view-head .ea-head-toggle[data-head]")
    assert len(toggles) == 12  # all heads of the layer, each in its own colour
    colours = {t.evaluate("e => e.style.borderColor") for t in toggles}
    assert len(colours) == 12
    all_lines = int(page.get_attribute("#view-head svg", "data-lines"))
    page.click("#view-head .ea-head-toggle[data-head='0']")  # switch head 0 off
    assert page.query_selector("#view-head line[data-head='0']") is None
    assert int(page.get_attribute("#view-head svg", "data-lines")) < all_lines
    # hovering a key token shows only the lines into it
    page.hover(".ea-hv-key[data-index='4']")
    y = page.eval_on_selector_all("#view-head line", "ls => ls.map(l => l.getAttribute('y2'))")
    assert y and len(set(y)) == 1
    n_into = len(y)
    expected = int((trace.attentions[0, 1:][:, :, 4] > 0.01).sum())
    assert n_into == expected
    # neuron view: pin a query token, pick a key
    page.click("#tokens .ea-token[data-index='2']")
    page.wait_for_function("location.search.includes('focus=2')")
    before = page.get_attribute("body", "data-neuron")
    page.select_option("#neuron-key", "6")
    page.wait_for_function(
        "b => document.body.getAttribute('data-neuron') !== b && "
        "document.querySelector('#view-neuron').getAttribute('data-key') === '6'",
        arg=before,
    )
    summary = page.text_content("#view-neuron .ea-neuron-summary")
    assert summary.startswith("query 2 \u201ccat\u201d \u2192 key 6 \u201cmat\u201d: score =")
    w = page.eval_on_selector("#view-neuron .ea-neuron-softmax", "el => el.data[0].y")
    torch.testing.assert_close(torch.tensor(w), trace.attentions[0, 0, 2], atol=1e-4, rtol=0)
    rows = page.eval_on_selector("#view-neuron .ea-neuron-vectors", "el => el.data[0].y")
    assert rows == ["q", "k", "q \u2299 k"]
    assert page.errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-neuron.png"), full_page=True)
    page.locator("section", has=page.locator("#view-neuron")).screenshot(
        path=str(ARTIFACTS / "app-neuron-view.png")
    )
    page.locator("section", has=page.locator("#view-head")).screenshot(
        path=str(ARTIFACTS / "app-head-view.png")
    )


def test_app_model_view_click_selects(page, app_url):
    open_app(page, app_url)
    cells = page.query_selector_all("#view-model .ea-cell")
    assert len(cells) == 6 * 12
    before = page.get_attribute("body", "data-drawn")
    page.click("#view-model .ea-cell[data-layer='4'][data-head='7']")
    wait_drawn(page, before)
    assert page.input_value("#layer") == "4" and page.input_value("#head") == "7"
    assert page.text_content("#view-heatmap .gtitle") == "layer 4, head 7"
    sel = page.eval_on_selector_all(
        "#view-model .ea-selected", "c => c.map(e => e.dataset.layer + ',' + e.dataset.head)"
    )
    assert sel == ["4,7"]
    # the page's one set of controls: every view shows the chosen layer and head
    assert "layer 4, head 7" in page.text_content("#view-row .gtitle")


def choose_model(page, name):
    """Pick ``name`` in the model list and wait until its answer is drawn."""
    before = page.get_attribute("body", "data-drawn")
    page.select_option("#model", name)
    wait_drawn(page, before)


def test_app_head_search_ablation_and_generation(page, app_url):
    open_app(page, app_url)
    choose_model(page, "gpt-pydoc-char")  # switching model re-runs
    assert page.text_content("#info").startswith("gpt-pydoc-char")
    assert page.input_value("#text") == '"""Return the'  # the untouched example follows the model
    before = page.get_attribute("body", "data-drawn")
    page.fill("#text", "def f(x):\n    return x\n\ndef f(x):\n    return")
    page.click("#run")
    wait_drawn(page, before)
    page.select_option("#pattern", "induction")
    first = page.query_selector("#head-list button.jump")
    layer, head = first.get_attribute("data-layer"), first.get_attribute("data-head")
    before = page.get_attribute("body", "data-drawn")
    first.click()
    page.wait_for_function(
        "([l, h]) => document.querySelector('#layer').value === l && "
        "document.querySelector('#head').value === h",
        arg=[layer, head],
    )
    page.check("#head-list input.off >> nth=0")
    page.wait_for_function("document.body.getAttribute('data-ablated')", timeout=60_000)
    assert "switched off" in page.text_content("#ablation-result")
    traces = page.eval_on_selector("#view-ablation", "el => el.data.map(d => d.name)")
    assert traces == ["all heads", f"L{layer}H{head} off"]
    assert page.query_selector(
        f"#view-model .ea-cell-off[data-layer='{layer}'][data-head='{head}']"
    )
    # watch it write: step through the generation
    page.fill("#text", '"""Return the')
    page.fill("#gen-max", "16")
    page.click("#generate")
    page.wait_for_function("document.body.getAttribute('data-generated')", timeout=60_000)
    assert page.text_content("#gen-label").startswith("step 1 of 16: wrote")
    page.click("#gen-next")
    page.click("#gen-next")
    assert page.get_attribute("body", "data-gen-step") == "2"
    body = {
        "model": "gpt-pydoc-char",
        "prompt": '"""Return the',
        "max_new_tokens": 16,
        "temperature": 0,
    }
    code, g = post(app_url + "api/generate", body)
    assert code == 200
    sel_layer, sel_head = int(page.input_value("#layer")), int(page.input_value("#head"))
    want = g["steps"][2]["attention"][sel_layer][sel_head]
    bars = page.eval_on_selector("#view-gen", "el => el.data[0].y")
    torch.testing.assert_close(torch.tensor(bars), torch.tensor(want), atol=1e-9, rtol=0)
    toks = page.eval_on_selector_all("#gen-tokens .ea-token", "s => s.map(e => e.textContent)")
    assert len(toks) == len(g["prompt_tokens"]) + 3
    assert page.get_attribute("#gen-tokens .ea-new", "data-index") == str(len(toks) - 1)
    assert len(page.query_selector_all("#gen-tokens .ea-generated")) == 3
    page.click("#gen-prev")
    assert page.get_attribute("body", "data-gen-step") == "1"
    page.click("#gen-play")
    page.wait_for_function("document.body.getAttribute('data-gen-step') === '15'", timeout=30_000)
    assert page.text_content("#gen-play") == "play"  # stopped at the end
    assert page.errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-generate.png"), full_page=True)
    page.locator("#gen-section").screenshot(path=str(ARTIFACTS / "app-generate-view.png"))


def test_app_fits_800_px_and_wraps_long_token_strips(browser, app_url):
    ctx = browser.new_context(viewport={"width": 800, "height": 900})
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    text = (
        "When the quick brown fox jumped over the lazy dog, the dog did not move at all, "
        "because it was asleep in the warm afternoon sun by the old red barn near the river, "
        "and nobody in the village wanted to wake it up."
    )
    open_app(page, app_url + "?text=" + text.replace(" ", "+"))
    n = len(page.query_selector_all("#tokens .ea-token"))
    assert n >= 50
    assert page.evaluate("document.documentElement.scrollWidth") <= 800
    tops = page.eval_on_selector_all(
        "#tokens .ea-token",
        "s => new Set(s.map(e => Math.round(e.getBoundingClientRect().top))).size",
    )
    assert tops >= 2  # the strip wraps
    right = page.eval_on_selector_all(
        "#view-model .ea-cell", "cs => Math.max(...cs.map(c => c.getBoundingClientRect().right))"
    )
    assert right <= 800  # all twelve heads of every layer are on screen
    assert errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-800.png"), full_page=True)
    ctx.close()


def test_app_bad_input_clears_old_plots_and_keeps_serving(page, app_url):
    open_app(page, app_url)
    page.fill("#text", "   ")
    page.click("#run")
    page.wait_for_selector("#message.error", timeout=30_000)
    assert "empty" in page.text_content("#message")
    assert page.query_selector("#view-heatmap .main-svg") is None  # stale plots are gone
    assert page.query_selector("#tokens .ea-token") is None
    answer = page.evaluate(
        "fetch('api/trace', {method: 'POST', headers: {'Content-Type': 'application/json'}, "
        "body: JSON.stringify({text: 'hi', model: 'no-such-model'})}).then(r => r.json())"
    )
    assert "unknown model 'no-such-model': choose one of ['default', " in answer["error"]
    assert "'gpt-pydoc-char'" in answer["error"] and "'llama-pydoc'" in answer["error"]
    before = page.get_attribute("body", "data-drawn")
    page.fill("#text", "Still serving.")
    page.click("#run")
    wait_drawn(page, before)
    assert page.get_attribute("#message", "class") in ("", "note")
    assert tick_texts(page, "#view-heatmap", "x")[1] == "still"


def test_foreign_host_is_refused(page, app_url):
    port = app_url.rstrip("/").rsplit(":", 1)[1]
    # evil.example resolves to 127.0.0.1 in this browser (--host-resolver-rules): DNS rebinding
    r = page.goto(f"http://evil.example:{port}/")
    assert r.status == 403 and "is not allowed" in page.text_content("body")
    r = page.goto(f"http://localhost:{port}/")
    assert r.status == 200


def test_saved_views_work_from_file_with_network_blocked(page, tmp_path):
    from explore_attention.inspect.trace import AttentionTrace
    from explore_attention.viz import views

    g = torch.Generator().manual_seed(0)
    n = len(HOSTILE)
    A = torch.softmax(torch.randn(2, 3, n, n, generator=g), -1)
    trace = AttentionTrace(A, HOSTILE, HOSTILE, "hostile <b>model</b>", "self")
    plain = AttentionTrace(A, [f"t{i}" for i in range(n)], [f"t{i}" for i in range(n)], "p", "self")
    shown = ["∅" if t == "" else ("␣" * len(t) if t.isspace() else t) for t in HOSTILE]
    blocked = []

    def route(r):
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    ARTIFACTS.mkdir(exist_ok=True)
    for make in (views.attention_heatmap, views.head_view, views.model_view, views.token_view):
        kw = {"layer": 1, "head": 2} if make is views.attention_heatmap else {}
        path = make(trace, **kw).save_html(tmp_path / f"{make.__name__}.html")
        if make is views.attention_heatmap:  # every view has the same elements
            ref = make(plain).save_html(tmp_path / "plain.html")
            page.goto(ref.as_uri())
            page.wait_for_selector(".main-svg", timeout=30_000)
            plain_scripts = page.evaluate("document.scripts.length")
        page.goto(path.as_uri())
        page.wait_for_selector(".main-svg, .ea-headview", timeout=30_000)
        assert page.evaluate("document.scripts.length") == plain_scripts
        assert page.query_selector("img") is None and page.query_selector("b") is None
        assert page.text_content(".ea-title").endswith("hostile <b>model</b> (self attention)")
        if make is views.attention_heatmap:
            assert tick_texts(page, ".ea-heatmap", "x") == shown
            z = heatmap_z(page, "")
            torch.testing.assert_close(z, A[1, 2], atol=6e-5, rtol=0)
        if make is views.token_view:
            spans = page.eval_on_selector_all(".ea-token", "s => s.map(e => e.textContent)")
            assert spans == shown
            page.click(".ea-token[data-index='5']")
            bars = page.eval_on_selector(".ea-attends-to", "el => el.data[0].y")
            torch.testing.assert_close(torch.tensor(bars), A.mean((0, 1))[5], atol=2e-4, rtol=0)
        if make is views.head_view:
            texts = page.eval_on_selector_all(".ea-hv-token", "t => t.map(e => e.textContent)")
            assert texts == shown + shown
        page.screenshot(path=str(ARTIFACTS / f"{make.__name__}.png"), full_page=True)
    assert blocked == [] and page.dialogs == [] and page.errors == []


def test_saved_view_of_512_tokens_renders(page, tmp_path):
    from explore_attention.inspect.trace import AttentionTrace
    from explore_attention.viz import views

    A = torch.softmax(torch.randn(2, 2, 512, 512), -1)
    toks = [f"w{i}" for i in range(512)]
    path = views.attention_heatmap(AttentionTrace(A, toks, toks, "long", "self")).save_html(
        tmp_path / "long.html"
    )
    page.goto(path.as_uri())
    page.wait_for_selector(".main-svg", timeout=30_000)
    assert "512 query tokens shown as 128 bins" in page.text_content(".ea-note")
    assert len(tick_texts(page, ".ea-heatmap", "x")) == 128


def overlay_z(page, what):
    sel = f"#image-views .ea-image-plot[data-what='{what}']"
    return torch.tensor(page.eval_on_selector(sel, "el => el.data[1].z"))


def test_app_vit_digits_shows_image_prediction_and_attention(page, app_url):
    from explore_attention.app.models import checkpoints_dir
    from explore_attention.data.digits import load_digits_splits
    from explore_attention.explain import rollout
    from explore_attention.models.vit_hub import vit_trace
    from explore_attention.train import load_checkpoint

    open_app(page, app_url)
    choose_model(page, "vit-digits")
    assert page.is_hidden("#text-views") and page.is_visible("#image-views")
    before = page.get_attribute("body", "data-drawn")
    page.click("#next-image")  # example 0 → 1
    page.wait_for_function(
        "b => document.body.getAttribute('data-drawn') !== b", arg=before, timeout=60_000
    )
    page.select_option("#layer", "3")
    page.select_option("#head", "2")
    model, cfg = load_checkpoint(checkpoints_dir() / "vit-digits")
    d = load_digits_splits(seed=cfg["split_seed"])
    x = d.test_x[1]
    trace = vit_trace(model, x)
    with torch.no_grad():
        pred = int(model(x[None]).logits.argmax())
    assert page.text_content("#prediction").startswith(f"Prediction: {pred} (")
    assert f"true label: {int(d.test_y[1])}" in page.text_content("#prediction")
    plots = page.eval_on_selector_all(
        "#view-image-maps .ea-image-plot", "els => els.map(e => e.getAttribute('data-what'))"
    )
    assert plots == ["image", "cls", "rollout", "gradient"]
    assert page.query_selector_all("#view-image-maps .ea-image-plot .main-svg")
    shown = page.eval_on_selector(
        "#image-views .ea-image-plot[data-what='image']", "el => el.data[0].z"
    )
    assert torch.tensor(shown).shape == (8, 8, 3)
    z = overlay_z(page, "cls")
    torch.testing.assert_close(z, trace.attentions[3, 2, 0, 1:].reshape(4, 4), atol=1e-5, rtol=0)
    roll = overlay_z(page, "rollout")
    torch.testing.assert_close(roll, rollout(trace)[0, 1:].reshape(4, 4), atol=1e-5, rtol=0)
    assert page.dialogs == [] and page.errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-vit-digits.png"), full_page=True)


def test_app_multimodal_shows_a_map_per_word(page, app_url):
    from explore_attention.app.images import SCENE_SEED_BASE
    from explore_attention.app.models import checkpoints_dir
    from explore_attention.inspect import capture
    from explore_attention.tasks.multimodal import encode, make_questions
    from explore_attention.train import load_checkpoint

    open_app(page, app_url)
    choose_model(page, "multimodal-scenes")
    first = int(page.input_value("#index"))  # the first scene the model answers right
    own = make_questions(1, seed=SCENE_SEED_BASE + first).question(0)
    assert page.input_value("#question-select") == own
    assert page.text_content("#prediction").endswith("\u2713")
    # a typed question; the maps are this question's, mean of heads in layer 1
    before = page.get_attribute("body", "data-drawn")
    page.fill("#question-text", "where is the red circle")
    page.click("#run")
    page.wait_for_function(
        "b => document.body.getAttribute('data-drawn') !== b", arg=before, timeout=60_000
    )
    page.select_option("#layer", "1")
    page.select_option("#head", "mean")
    words = ["where", "is", "the", "red", "circle"]
    titles = page.eval_on_selector_all(
        "#view-words .ea-image-plot .gtitle", "t => t.map(e => e.textContent)"
    )
    assert titles == [f"\u201c{w}\u201d" for w in words]
    model, _ = load_checkpoint(checkpoints_dir() / "multimodal-scenes")
    x = make_questions(1, seed=SCENE_SEED_BASE + first).scenes.images
    ids = encode(" ".join(words))[None]  # (1, L)
    trace = capture(model, (x, ids), tokens=words, key_tokens=model.patch_tokens, kind="cross")
    for i in range(len(words)):
        z = page.eval_on_selector(f"#view-words [data-word='{i}']", "el => el.data[1].z")
        want = trace.attentions[1, :, i].mean(0).reshape(6, 6)
        torch.testing.assert_close(torch.tensor(z), want, atol=1e-5, rtol=0)
    assert page.text_content("#prediction").startswith("Prediction: ")
    # an unknown word: a message naming it, listing the vocabulary; the page keeps working
    page.fill("#question-text", "where is the <img src=x onerror=alert(1)>")
    page.click("#run")
    page.wait_for_selector("#message.error", timeout=30_000)
    msg = page.text_content("#message")
    assert "['<img', 'src=x', 'onerror=alert(1)>']" in msg
    assert "'circle', 'square', 'triangle'" in msg
    assert page.query_selector("img") is None
    assert page.dialogs == [] and page.errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-multimodal.png"), full_page=True)
