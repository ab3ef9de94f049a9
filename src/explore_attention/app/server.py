"""The Attention Explorer: a small FastAPI app serving one self-contained page.

The page is built from the same renderers as :mod:`explore_attention.viz.views` (Plotly and our
``views.js`` inlined, so it needs no network). ``POST /api/trace`` runs the chosen model on the
text with :func:`explore_attention.inspect.capture` and returns the views' JSON payloads, plus an
explanation (attention rollout or flow, :mod:`explore_attention.explain`) when asked. Every
failure — empty text, text over the model's limit, a model that cannot be loaded — comes back as
``{"error": message}`` with status 400, which the page shows; the server keeps serving.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from .models import DEFAULT_ID, ModelCache, available_models

__all__ = ["MAX_CHARS", "MAX_FLOW_TOKENS", "TraceRequest", "compute", "create_app"]

MAX_CHARS = 5000  # longest text accepted (the model's own token limit is checked as well)
MAX_FLOW_TOKENS = 40  # attention flow runs one max-flow per token pair; cap its cost
EXPLANATIONS = ("none", "rollout", "flow")


class TraceRequest(BaseModel):
    text: str  # the sentence to run
    model: str = DEFAULT_ID  # "default", a shipped checkpoint folder, a hub name or a local path
    explain: str = "none"  # "none" | "rollout" | "flow"


@lru_cache(maxsize=1)
def page_html() -> str:
    """The app's page with every script inlined."""
    from ..viz import html as vhtml

    static = resources.files("explore_attention.app").joinpath("static")
    page = static.joinpath("index.html").read_text("utf-8")
    scripts = (
        f"<style>{vhtml.STYLE}</style>\n<script>{vhtml.plotly_js()}</script>\n"
        f"<script>{vhtml.views_js()}</script>\n"
        f"<script>{static.joinpath('app.js').read_text('utf-8')}</script>"
    )
    return page.replace("<!--SCRIPTS-->", scripts)


def compute(req: TraceRequest, cache: ModelCache) -> dict[str, Any]:
    """The JSON answer for one request; raises ``ValueError`` with a message for the page."""
    from .. import explain
    from ..inspect import capture
    from ..viz import views

    text = req.text
    if not isinstance(text, str) or not text.strip():
        raise ValueError("Please type some text: the input is empty.")
    if len(text) > MAX_CHARS:
        raise ValueError(
            f"The text has {len(text)} characters; the explorer accepts at most {MAX_CHARS}."
        )
    if req.explain not in EXPLANATIONS:
        raise ValueError(f"explain must be one of {EXPLANATIONS}, got {req.explain!r}")
    with cache.lock:
        model, tokenizer = cache.get(req.model)
        try:
            trace = capture(model, text, tokenizer)
        except (ValueError, TypeError) as err:
            raise ValueError(str(err)) from err
    n = len(trace.tokens)
    result: dict[str, Any] = {
        "model_name": trace.model_name,
        "kind": trace.kind,
        "num_layers": trace.num_layers,
        "num_heads": trace.num_heads,
        "num_tokens": n,
        "views": {
            "heatmap": views.attention_heatmap(trace).payload,
            "token": views.token_view(trace).payload,
            "head": views.head_view(trace).payload,
            "model": views.model_view(trace).payload,
        },
        "explanation": None,
        "explanation_note": "",
    }
    if req.explain != "none" and trace.kind != "cross":
        if req.explain == "flow" and n > MAX_FLOW_TOKENS:
            result["explanation_note"] = (
                f"Attention flow is limited to {MAX_FLOW_TOKENS} tokens (one max-flow per token "
                f"pair); this input has {n}. Showing rollout instead."
            )
            how = "rollout"
        else:
            how = req.explain
        R = explain.rollout(trace) if how == "rollout" else explain.flow(trace)  # (L, L)
        from ..inspect import AttentionTrace

        rt = AttentionTrace(
            R[None, None], trace.tokens, trace.key_tokens, trace.model_name, trace.kind
        )
        p = views.attention_heatmap(rt).payload
        names = {"rollout": "Attention rollout", "flow": "Attention flow"}
        p["label"] = f"{names[how]} (Abnar & Zuidema 2020): input tokens behind each position"
        p["fixed_title"] = f"{names[how]} over all {trace.num_layers} layers"
        p["zmax"] = max(1e-6, float(R.max()))
        result["explanation"] = p
    return result


def create_app(default_model: str | None = None, *, preload: bool = False) -> FastAPI:
    """The FastAPI application. ``default_model`` (a name or folder) is listed first."""
    app = FastAPI(title="Attention Explorer", docs_url=None, redoc_url=None, openapi_url=None)
    cache = ModelCache()
    default_id = default_model or DEFAULT_ID
    if preload:
        cache.get(default_id)

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
        listed = available_models()
        if default_id != DEFAULT_ID and all(m["id"] != default_id for m in listed):
            listed.insert(0, {"id": default_id, "label": f"{default_id} (--model)"})
        return {"default": default_id, "models": listed}

    @app.post("/api/trace")
    def trace(req: TraceRequest) -> JSONResponse:
        try:
            return JSONResponse(compute(req, cache))
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=400)

    return app
