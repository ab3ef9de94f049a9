"""Real headless Chromium (found by explore_attention.tools, driven by Playwright): the app and
saved views show the model's tokens and values, render hostile tokens as text, and need no
network."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import need_tool

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def heatmap_z(page, selector):
    return torch.tensor(page.eval_on_selector(selector + " .js-plotly-plot", "el => el.data[0].z"))


def run_text(page, text):
    before = page.get_attribute("body", "data-drawn")
    page.fill("#text", text)
    page.click("#run")
    page.wait_for_function(
        "b => document.body.getAttribute('data-drawn') !== b", arg=before, timeout=60_000
    )


def test_app_shows_the_models_tokens_and_weights(page, app_url):
    from explore_attention.inspect import capture, load_model

    page.goto(app_url)
    page.wait_for_selector("#view-heatmap .main-svg", timeout=60_000)
    scripts = page.evaluate("document.scripts.length")
    text = "The keys <img src=x onerror=alert(1)> & </script><script>alert(1)</script> opened."
    run_text(page, text)
    page.select_option("#layer", "2")
    page.select_option("#head", "5")
    page.wait_for_function(
        "document.querySelector('#view-heatmap .gtitle').textContent === 'layer 2, head 5'"
    )
    model, tok = load_model()
    trace = capture(model, text, tok)
    z = heatmap_z(page, "#view-heatmap")
    torch.testing.assert_close(z, trace.attentions[2, 5], atol=6e-5, rtol=0)
    assert tick_texts(page, "#view-heatmap", "x") == trace.tokens
    assert tick_texts(page, "#view-heatmap", "y") == trace.tokens
    spans = page.eval_on_selector_all("#view-token .ea-token", "s => s.map(e => e.textContent)")
    assert spans == trace.tokens
    # hovering a token shows its row
    page.hover("#view-token .ea-token[data-index='3']")
    bars = page.eval_on_selector("#view-token .ea-attends-to", "el => el.data[0].y")
    torch.testing.assert_close(torch.tensor(bars), trace.attentions[2, 5, 3], atol=6e-5, rtol=0)
    assert page.evaluate("document.scripts.length") == scripts
    assert page.query_selector("img") is None
    assert page.dialogs == [] and page.errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)


def test_app_model_view_click_enlarges(page, app_url):
    page.goto(app_url)
    page.wait_for_selector("#view-model .ea-modelview .main-svg", timeout=60_000)
    cells = page.query_selector_all("#view-model .ea-modelview .nsewdrag")
    assert len(cells) == 6 * 12
    cells[12 * 4 + 7].hover()
    cells[12 * 4 + 7].click()
    page.wait_for_function(
        "document.querySelector('#view-model .ea-enlarged').getAttribute('data-head') === '7'"
    )
    assert page.get_attribute("#view-model .ea-enlarged", "data-layer") == "4"


def test_app_bad_input_shows_a_message_and_keeps_serving(page, app_url):
    page.goto(app_url)
    page.wait_for_selector("#view-heatmap .main-svg", timeout=60_000)
    page.fill("#text", "   ")
    page.click("#run")
    page.wait_for_selector("#message.error", timeout=30_000)
    assert "empty" in page.text_content("#message")
    page.fill("#model-name", "no-such-org/no-such-model")
    page.fill("#text", "hello")
    page.click("#run")
    page.wait_for_function(
        "document.querySelector('#message').textContent.includes('no-such-org/no-such-model')",
        timeout=30_000,
    )
    page.fill("#model-name", "")
    run_text(page, "Still serving.")
    assert page.get_attribute("#message", "class") in ("", "note")
    assert tick_texts(page, "#view-heatmap", "x")[1] == "still"


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
        page.wait_for_selector(".main-svg", timeout=30_000)
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
            texts = page.eval_on_selector_all(".textpoint text", "t => t.map(e => e.textContent)")
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


def choose_model(page, name):
    """Pick the image checkpoint ``name`` in the model list and wait for its maps."""
    from explore_attention.app.models import checkpoints_dir

    before = page.get_attribute("body", "data-drawn")
    page.select_option("#model", str(checkpoints_dir() / name))
    page.wait_for_function(
        "b => document.body.getAttribute('data-drawn') !== b", arg=before, timeout=60_000
    )


def overlay_z(page, what):
    sel = f"#image-views .ea-image-plot[data-what='{what}']"
    return torch.tensor(page.eval_on_selector(sel, "el => el.data[1].z"))


def test_app_vit_digits_shows_image_prediction_and_attention(page, app_url):
    from explore_attention.app.models import checkpoints_dir
    from explore_attention.data.digits import load_digits_splits
    from explore_attention.explain import rollout
    from explore_attention.models.vit_hub import vit_trace
    from explore_attention.train import load_checkpoint

    page.goto(app_url)
    page.wait_for_selector("#view-heatmap .main-svg", timeout=60_000)
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
        pred = int(model(x[None]).argmax())
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

    page.goto(app_url)
    page.wait_for_selector("#view-heatmap .main-svg", timeout=60_000)
    choose_model(page, "multimodal-scenes")
    own = make_questions(1, seed=SCENE_SEED_BASE).question(0)
    assert page.input_value("#question-select") == own
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
    x = make_questions(1, seed=SCENE_SEED_BASE).scenes.images
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
