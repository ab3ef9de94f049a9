"""The Attention Explorer: a small FastAPI app serving one self-contained page.

The page is built from the same renderers as :mod:`explore_attention.viz.views` (Plotly and our
``views.js`` inlined, so it needs no network). ``POST /api/trace`` runs the chosen model on the
text with :func:`explore_attention.inspect.capture` and returns the views' JSON payloads, plus an
explanation (attention rollout, flow, or Chefer et al.'s gradient relevance for language models,
:mod:`explore_attention.explain`) when asked. Every
failure — empty text, text over the model's limit, a model that cannot be loaded — comes back as
``{"error": message}`` with status 400, which the page shows; the server keeps serving.
``POST /api/image`` does the same for the shipped image models (:mod:`.images`).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from . import images
from .models import DEFAULT_ID, ModelCache, available_models

__all__ = ["MAX_CHARS", "MAX_FLOW_TOKENS", "TraceRequest", "compute", "create_app"]

MAX_CHARS = 5000  # longest text accepted (the model's own token limit is checked as well)
MAX_FLOW_TOKENS = 32  # flow runs one max-flow per input token (one output row); cap it
EXPLANATIONS = ("none", "rollout", "flow", "gradient")


class TraceRequest(BaseModel):
    text: str  # the sentence to run
    model: str = DEFAULT_ID  # "default", a shipped checkpoint folder, a hub name or a local path
    explain: str = "none"  # "none" | "rollout" | "flow" | "gradient"


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


def compute(req: TraceRequest, cache: ModelCache) -> dict[str, Any]:
    """The JSON answer for one request; raises ``ValueError`` with a message for the page."""
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
    if images.image_task(Path(req.model.strip() or ".")) is not None:
        raise ValueError(
            f"{req.model!r} is an image model: choose it in the model list (the page then asks "
            "POST /api/image)"
        )
    with cache.lock:
        model, tokenizer = cache.get(req.model)
        try:
            trace = capture(model, text, tokenizer)
        except (ValueError, TypeError) as err:
            raise ValueError(str(err)) from err
        grad = None
        if req.explain == "gradient" and hasattr(getattr(model, "config", None), "model_type"):
            grad = _gradient_relevance(model, tokenizer, text)
    n = len(trace.tokens)
    result: dict[str, Any] = {
        "model_name": trace.model_name,
        "kind": trace.kind,
        "num_layers": trace.num_layers,
        "num_heads": trace.num_heads,
        "num_tokens": n,
        "views": {
            # The page derives the token and head views from the heatmap's payload (same data).
            "heatmap": views.attention_heatmap(trace).payload,
            "model": views.model_view(trace).payload,
        },
        "explanation": None,
        "explanation_note": "",
    }
    if req.explain != "none" and trace.kind != "cross":
        result["explanation"], result["explanation_note"] = _explanation(trace, req.explain, grad)
    return result


def _gradient_relevance(model: Any, tokenizer: Any, text: str) -> tuple[Any, str] | None:
    """Chefer et al. 2021 relevance for the model's top next-token logit at the last position.

    Only models with a score to explain (a language-model head giving ``logits``) qualify;
    returns ``(R (L, L), description)`` or None.
    """
    import torch

    from .. import explain

    inputs = dict(tokenizer(text, return_tensors="pt"))
    with torch.no_grad():
        out = model(**inputs)
    logits = getattr(out, "logits", None)
    if logits is None or logits.dim() != 3:
        return None
    target = int(logits[0, -1].argmax())
    with torch.enable_grad():
        A, G = explain.attention_gradients(model, inputs, lambda o: o.logits[0, -1, target])
    word = tokenizer.convert_ids_to_tokens([target])[0]
    return explain.gradient_relevance(A, G), word


def _explanation(trace: Any, how: str, grad: tuple[Any, str] | None = None) -> tuple[dict, str]:
    """A heatmap payload of rollout (all positions), flow or gradient (one position), a note."""
    from .. import explain
    from ..inspect import AttentionTrace
    from ..viz import views

    n, note = len(trace.tokens), ""
    if how == "gradient" and grad is None:
        note = (
            "Gradient relevance needs a score to explain: it is offered for language models "
            "(their next-token logit). This model has none; showing rollout instead."
        )
        how = "rollout"
    if how == "flow" and n > MAX_FLOW_TOKENS:
        note = (
            f"Attention flow is limited to {MAX_FLOW_TOKENS} tokens (one max-flow per input "
            f"token); this input has {n}. Showing rollout instead."
        )
        how = "rollout"
    cite = "(Abnar & Zuidema 2020)"
    if how == "rollout":
        R = explain.rollout(trace)  # (L, L)
        rows = trace.tokens
        label = f"Attention rollout {cite}: the input tokens behind each position"
        title = f"Attention rollout over all {trace.num_layers} layers"
    elif how == "gradient":
        R = grad[0][-1:]  # (1, L): relevance of each input token for the last position
        rows = [trace.tokens[-1]]
        label = (
            "Gradient-weighted attention relevance (Chefer et al. 2021) for the predicted next "
            f"token {grad[1]!r}"
        )
        title = f"Relevance for predicting {grad[1]!r} after the last token"
    else:
        # The position whose prediction matters: [CLS] for encoders, the last token for GPTs.
        q = n - 1 if trace.kind == "causal" else 0
        R = explain.flow(trace, queries=[q])  # (1, L)
        rows = [trace.tokens[q]]
        label = f"Attention flow {cite}: the input tokens behind position {q}"
        title = f"Attention flow into position {q}, over all {trace.num_layers} layers"
    rt = AttentionTrace(R[None, None], rows, trace.key_tokens, trace.model_name, trace.kind)
    p = views.attention_heatmap(rt).payload
    p.update(label=label, fixed_title=title, zmax=max(1e-6, float(R.max())))
    return p, note


def create_app(
    default_model: str | None = None, *, preload: bool = False, device: Any = "cpu"
) -> FastAPI:
    """The FastAPI application. ``default_model`` (a name or folder) is listed first; text
    models run on ``device`` (the image checkpoints are tiny and run on the CPU)."""
    app = FastAPI(title="Attention Explorer", docs_url=None, redoc_url=None, openapi_url=None)
    cache = ModelCache(device=device)
    store = images.ImageModels()
    default_id = default_model or DEFAULT_ID
    image_default = images.lookup(default_model) if default_model else None
    if image_default is not None:
        default_id = str(image_default[0])
        if preload:
            store.get(image_default[0])
    elif preload:
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
        listed = available_models() + images.image_models()
        if default_id != DEFAULT_ID and all(m["id"] != default_id for m in listed):
            kind = "text" if image_default is None else images.IMAGE_TASKS[image_default[1]]
            listed.insert(0, {"id": default_id, "label": f"{default_id} (--model)", "kind": kind})
        return {"default": default_id, "models": listed}

    @app.post("/api/trace")
    def trace(req: TraceRequest) -> JSONResponse:
        try:
            return JSONResponse(compute(req, cache))
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=400)

    @app.post("/api/image")
    def image(req: images.ImageRequest) -> JSONResponse:
        try:
            return JSONResponse(images.compute_image(req, store))
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=400)

    return app
