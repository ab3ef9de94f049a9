"""The Attention Explorer: a small FastAPI app serving one self-contained page.

The page is built from the same renderer as :mod:`explore_attention.viz.views` (Plotly and our
``views.js`` inlined, so it needs no network). Endpoints:

* ``GET /api/models`` — the models, by name, with their kind (encoder / causal / seq2seq / vit /
  multimodal);
* ``POST /api/trace`` — one layer's attention, thumbnails of all heads, head types, an
  explanation (:mod:`.text`);
* ``POST /api/neurons`` — one head's q and k for one query (the neuron view);
* ``POST /api/ablate`` — the prediction with heads switched off;
* ``POST /api/generate`` — generation step by step with each step's attention (:mod:`.generate`);
* ``POST /api/image`` — the shipped image models (:mod:`.images`).

Hardening (a local server a web page could otherwise reach through DNS rebinding, as Jupyter
guards against): a request whose ``Host`` is not the bound address or localhost, or whose
``Origin`` is another site, gets 403; bodies over :data:`MAX_BODY` bytes get 413; each request
runs under a time limit (:data:`TIME_LIMIT` seconds; 504 with a message past it); every bad input
is a 4xx ``{"error": message}`` and the server keeps serving.
"""

from __future__ import annotations

import concurrent.futures
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from . import images
from .generate import GenerateRequest, generate
from .models import DEFAULT_ID, ModelCache, available_models, is_hf_folder
from .text import (
    MAX_CHARS,
    AblateRequest,
    Deadline,
    NeuronRequest,
    TextModels,
    TraceRequest,
)

__all__ = ["MAX_BODY", "MAX_CHARS", "TIME_LIMIT", "allowed_hosts", "create_app"]

MAX_BODY = 64_000  # bytes of JSON a request may send
TIME_LIMIT = 60.0  # seconds one request may take
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@lru_cache(maxsize=1)
def page_html() -> str:
    """The app's page with every script inlined."""
    from ..viz import html as vhtml

    static = resources.files("explore_attention.app").joinpath("static")
    page = static.joinpath("index.html").read_text("utf-8")
    scripts = (
        f"<style>{vhtml.STYLE}</style>\n<script>{vhtml.plotly_js()}</script>\n"
        f"<script>{vhtml.views_js()}</script>\n"
        f"<script>{static.joinpath('images.js').read_text('utf-8')}</script>\n"
        f"<script>{static.joinpath('app.js').read_text('utf-8')}</script>"
    )
    return page.replace("<!--SCRIPTS-->", scripts)


def allowed_hosts(bound: str | None) -> frozenset[str]:
    """Host names a request may carry: localhost's names and the address the server is bound to.

    Binding to all interfaces (``0.0.0.0`` / ``::``) names no host, so only localhost's are
    accepted; bind to a machine's own address to serve it on a network.
    """
    hosts = set(LOCAL_HOSTS)
    if bound and bound not in ("0.0.0.0", "::"):
        hosts.add(bound.strip("[]").lower())
    return frozenset(hosts)


def _hostname(value: str) -> str | None:
    try:
        return urlsplit("//" + value).hostname
    except ValueError:
        return None


def create_app(
    default_model: str | None = None,
    *,
    preload: bool = False,
    host: str | None = "127.0.0.1",
    time_limit: float = TIME_LIMIT,
    device: Any = "cpu",
) -> FastAPI:
    """The FastAPI application.

    Args:
        default_model: listed first and opened first: a listed name, a hub name, a local Hugging
            Face folder (offered under its folder name) or an image checkpoint (``vit-digits``).
        preload: load the default model now (``demo`` does, so the first request is fast).
        host: the address the server is bound to (requests must name it or localhost).
        time_limit: seconds a request may take before it is answered with 504.
        device: where the text models run (``demo --device``); the image checkpoints are tiny
            and run on the CPU.
    """
    app = FastAPI(title="Attention Explorer", docs_url=None, redoc_url=None, openapi_url=None)
    extra = None
    if default_model is not None and images.lookup(default_model) is None:
        folder = Path(default_model).expanduser()
        if folder.is_dir():
            if not is_hf_folder(folder):
                raise ValueError(
                    f"--model {default_model!r} is a folder but not a Hugging Face model "
                    "(no config.json with a model_type) nor an image checkpoint"
                )
            extra = folder.resolve()
    cache = ModelCache(extra=extra, device=device)
    text_models = TextModels(cache)
    store = images.ImageModels()
    image_default = images.lookup(default_model) if default_model else None
    if image_default is not None:
        default_id = image_default[0].name
    elif extra is not None:
        default_id = extra.name
    else:
        default_id = cache.resolve(default_model or DEFAULT_ID).id
    if preload:
        if image_default is not None:
            store.get(image_default[0])
        else:
            entry = cache.resolve(default_id)
            with cache.lock(entry.id):
                cache.get(entry)
    app.state.text_models = text_models  # for tests: the caches and per-model locks
    hosts = allowed_hosts(host)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="explorer")

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        host_name = _hostname(request.headers.get("host", ""))
        if host_name is None or host_name.lower() not in hosts:
            return JSONResponse(
                {
                    "error": f"Host {request.headers.get('host', '')!r} is not allowed: open the "
                    "explorer at http://127.0.0.1 or http://localhost"
                },
                status_code=403,
            )
        origin = request.headers.get("origin")
        if origin is not None:
            o = urlsplit(origin)
            if o.scheme not in ("http", "https") or (o.hostname or "").lower() not in hosts:
                return JSONResponse(
                    {"error": f"Origin {origin!r} is not allowed (cross-site request)"},
                    status_code=403,
                )
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BODY):
            return JSONResponse(
                {"error": f"the request body must be at most {MAX_BODY} bytes, got {size}"},
                status_code=413,
            )
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return JSONResponse(
            {"error": f"the request must be a JSON object with the documented fields ({where})"},
            status_code=400,
        )

    def answer(fn: Any, *args: Any) -> JSONResponse:
        deadline = Deadline(time_limit)
        future = pool.submit(fn, *args, deadline)
        try:
            return JSONResponse(future.result(timeout=time_limit))
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        except (TimeoutError, concurrent.futures.TimeoutError) as err:
            msg = str(err) or (
                f"the request took longer than its {time_limit:g} s limit; try a shorter text "
                "or fewer tokens"
            )
            return JSONResponse({"error": msg}, status_code=504)
        except Exception as err:  # a model that fails in a way we did not foresee: say so, go on
            return JSONResponse(
                {"error": f"the model failed on this input: {type(err).__name__}: {err}"},
                status_code=500,
            )

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page_html())

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/models")
    def models() -> dict[str, Any]:
        listed = available_models(extra) + images.image_models()
        if all(m["id"] != default_id for m in listed):  # a hub name given with --model
            listed.insert(
                0, {"id": default_id, "label": f"{default_id} (--model)", "kind": "causal"}
            )
        return {"default": default_id, "models": listed}

    @app.post("/api/trace")
    def trace(req: TraceRequest) -> JSONResponse:
        return answer(text_models.trace, req)

    @app.post("/api/neurons")
    def neurons(req: NeuronRequest) -> JSONResponse:
        return answer(text_models.neurons, req)

    @app.post("/api/ablate")
    def ablate(req: AblateRequest) -> JSONResponse:
        return answer(text_models.ablate, req)

    @app.post("/api/generate")
    def generate_(req: GenerateRequest) -> JSONResponse:
        return answer(lambda r, d: generate(text_models, r, d), req)

    @app.post("/api/image")
    def image(req: images.ImageRequest) -> JSONResponse:
        return answer(lambda r, d: images.compute_image(r, store), req)

    return app
