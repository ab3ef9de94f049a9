"""viz.views: payload values, long inputs, escaping, self-contained HTML, static export."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
import torch
from conftest import toy_trace

from explore_attention.viz import views
from explore_attention.viz.html import script_json

NASTY = [
    "[CLS]",
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<!--",
    "&amp;",
    "😀",
    "שלום",
    "",
    "   ",
    "Ġthe",
    "▁x",
    "\u2028",
    "[SEP]",
]
MAKERS = [views.attention_heatmap, views.head_view, views.model_view, views.token_view]


class Counter(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: dict[str, int] = {}
        self.data_blocks: list[str] = []
        self._in_data = False

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self._in_data = tag == "script" and ("class", "ea-data") in attrs

    def handle_endtag(self, tag):
        self._in_data = False

    def handle_data(self, data):
        if self._in_data:
            self.data_blocks.append(data)


def parse(html: str) -> Counter:
    c = Counter()
    c.feed(html)
    return c


def test_script_json_escapes_markup_and_line_separators():
    s = script_json({"t": "</script><!--&\u2028\u2029"})
    assert "<" not in s and ">" not in s and "&" not in s
    assert "\u2028" not in s and "\u2029" not in s
    assert json.loads(s) == {"t": "</script><!--&\u2028\u2029"}


@pytest.mark.parametrize("make", MAKERS, ids=lambda f: f.__name__)
def test_nasty_tokens_stay_data(make):
    benign = parse(make(toy_trace([f"t{i}" for i in range(len(NASTY))])).to_html())
    nasty_html = make(toy_trace(NASTY)).to_html()
    nasty = parse(nasty_html)
    # Same elements as with plain tokens: no token became markup.
    assert nasty.tags == benign.tags
    assert nasty.tags["script"] == 4
    (block,) = nasty.data_blocks
    payload = json.loads(block)
    assert payload["tokens"] == NASTY and payload["key_tokens"] == NASTY
    for tok in NASTY[1:5]:  # ("&amp;" occurs in the escaping code itself)
        assert tok not in nasty_html


@pytest.mark.parametrize("make", MAKERS, ids=lambda f: f.__name__)
def test_html_is_self_contained_and_ids_unique(make):
    v = make(toy_trace(["a", "b", "c"]))
    h = v.to_html()
    assert not re.search(r"<script[^>]+src=", h) and "<link" not in h
    ids = {re.search(r'id="(ea-[0-9a-f]+)"', v._repr_html_()).group(1) for _ in range(3)}
    assert len(ids) == 3


def test_heatmap_payload_holds_the_trace_values():
    t = toy_trace(["a", "b", "c", "d"], layers=3, heads=2)
    p = views.attention_heatmap(t, layer=2, head=1).payload
    got = torch.tensor(p["attentions"])
    torch.testing.assert_close(got, t.attentions, atol=5e-5, rtol=0)
    assert (p["layer"], p["head"], p["note"]) == (2, 1, "")


def test_long_input_is_aggregated_and_says_so():
    toks = [f"w{i}" for i in range(512)]
    t = toy_trace(toks, layers=1, heads=2)
    A, q, k, note = views.prepare(t, max_tokens=128)
    assert A.shape == (1, 2, 128, 128) and len(q) == len(k) == 128
    assert "512" in note and "bins" in note
    # bins of 4: queries averaged, keys summed
    ref = t.attentions.view(1, 2, 128, 4, 128, 4).mean(3).sum(-1)
    torch.testing.assert_close(A, ref)
    torch.testing.assert_close(A.sum(-1), torch.ones(1, 2, 128))
    assert q[0] == "w0…w3 [0–3]"
    for make in MAKERS:
        v = make(t)
        assert v.payload["note"], make.__name__
        assert len(v.payload["tokens"]) <= 128


def test_window_shows_a_slice_exactly():
    t = toy_trace([f"w{i}" for i in range(40)])
    A, q, k, note = views.prepare(t, window=(10, 20))
    torch.testing.assert_close(A, t.attentions[:, :, 10:20, 10:20])
    assert q == k == [f"w{i}" for i in range(10, 20)] and "Window" in note


def test_cross_trace_keeps_query_and_key_tokens_apart():
    t = toy_trace(["q1", "q2"], ["k1", "k2", "k3", "<b>"], kind="cross")
    for make in MAKERS:
        p = make(t).payload
        assert p["tokens"] == ["q1", "q2"] and p["key_tokens"] == ["k1", "k2", "k3", "<b>"]
        assert p["kind"] == "cross"
    A, *_ = views.prepare(toy_trace(["q"] * 3, [f"k{i}" for i in range(300)], kind="cross"))
    assert A.shape[-2:] == (3, 100)


@pytest.mark.parametrize("make", MAKERS, ids=lambda f: f.__name__)
def test_static_export_png_and_svg(make, tmp_path):
    v = make(toy_trace(NASTY))
    png = v.save_image(tmp_path / "v.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = v.save_image(tmp_path / "v.svg").read_text()
    assert "<svg" in svg
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        v.save_image(tmp_path / "v.jpg")


def test_save_html_roundtrip(tmp_path):
    v = views.token_view(toy_trace(NASTY))
    path = v.save_html(tmp_path / "sub" / "t.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_bad_input():
    t = toy_trace(["a", "b"])
    with pytest.raises(TypeError, match="AttentionTrace"):
        views.head_view(t.attentions)
    with pytest.raises(ValueError, match="layer must be"):
        views.attention_heatmap(t, layer=2)
    with pytest.raises(ValueError, match="head must be"):
        views.attention_heatmap(t, head=-1)
    with pytest.raises(ValueError, match="max_tokens"):
        views.attention_heatmap(t, max_tokens=0)
    with pytest.raises(ValueError, match="window"):
        views.attention_heatmap(t, window=(1, 5))
    with pytest.raises(TypeError, match="window"):
        views.attention_heatmap(t, window=3)
    with pytest.raises(ValueError, match="token must be"):
        views.token_view(t, token=2)


def test_views_of_real_model_and_of_our_own_model():
    from explore_attention.explain.synthetic import MarkerTask, TinyClassifier, TinyConfig
    from explore_attention.inspect import capture, load_model

    model, tok = load_model()
    trace = capture(model, "Attention is all you need.", tok)
    p = views.attention_heatmap(trace, layer=5, head=11).payload
    assert p["tokens"] == trace.tokens and p["kind"] == "self"
    torch.testing.assert_close(torch.tensor(p["attentions"]), trace.attentions, atol=5e-5, rtol=0)

    task = MarkerTask()
    ours = TinyClassifier(TinyConfig(vocab_size=task.vocab_size, max_len=task.length)).eval()
    ids, _, _ = task.sample(1, torch.Generator().manual_seed(0))
    own = capture(ours, ids, tokens=[f"id{i}" for i in ids[0].tolist()])
    assert own.attentions.shape == (2, 2, 12, 12)
    v = views.model_view(own)
    torch.testing.assert_close(
        torch.tensor(v.payload["attentions"]), own.attentions, atol=5e-5, rtol=0
    )
