"""What the Explorer computes for text models: traces, head types, q/k vectors, ablation.

Every function takes the request's raw fields (typed ``Any`` by the server) and checks them
itself, so a wrong value gives a ``ValueError`` that names the field, what was given and what was
expected; the server turns it into ``400 {"error": message}``.

* :func:`trace` — one layer's attention ``(heads, L, L)`` (packed, :mod:`.payload`), thumbnails
  of every layer and head for the model view (binned to at most :data:`THUMB_TOKENS` tokens),
  the head types (:func:`explore_attention.inspect.classify_heads`) and an explanation.
* :func:`neurons` — one head's q and k (:func:`explore_attention.inspect.query_key`).
* :func:`ablate` — the prediction with chosen heads switched off
  (:func:`explore_attention.inspect.ablate_heads`).

Model outputs are read in one place, :func:`read_output`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Any

import torch
from pydantic import BaseModel
from torch import Tensor

from . import images
from .models import DEFAULT_ID, Entry, ModelCache, hf_kind
from .payload import pack

__all__ = [
    "EXPLANATIONS",
    "MAX_CHARS",
    "MAX_FLOW_TOKENS",
    "AblateRequest",
    "Deadline",
    "NeuronRequest",
    "TextModels",
    "TraceRequest",
    "read_output",
]

MAX_CHARS = 5000  # longest text accepted (the model's own token limit is checked as well)
MAX_FLOW_TOKENS = 32  # flow runs one max-flow per input token (one output row); cap it
THUMB_TOKENS = 32  # the model view's thumbnails show at most this many (binned) tokens
EXPLANATIONS = ("none", "rollout", "flow", "gradient")
TOP_K = 8  # tokens shown in the ablation's next-token distributions


def read_output(out: Any) -> tuple[Tensor | None, tuple[Tensor, ...] | None]:
    """``(logits or None, per-layer self-attention weights or None)`` of any model's output.

    The one adapter between the app and model outputs: Hugging Face ``ModelOutput`` objects,
    our ``models.output.ModelOutput`` (``attentions`` a dict of sites; the decoder's or
    encoder's self-attention is taken), older tuples, or a bare logits tensor.
    """
    if isinstance(out, Tensor):
        return out, None
    logits = getattr(out, "logits", None)
    att = getattr(out, "attentions", None)
    if isinstance(att, dict):
        att = att.get("decoder") or att.get("encoder") or next(iter(att.values()), None)
    return logits, (tuple(att) if att is not None else None)


class Deadline:
    """A time limit for one request; :meth:`check` raises ``TimeoutError`` once it has passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise TimeoutError(
                f"the request took longer than its {self.seconds:g} s limit; try a shorter text "
                "or fewer tokens"
            )


class TraceRequest(BaseModel):
    text: Any = ""  # the sentence to run
    model: Any = DEFAULT_ID  # a listed model name (or a hub name)
    layer: Any = 0  # which layer's weights to send in full
    explain: Any = "none"  # "none" | "rollout" | "flow" | "gradient"


class NeuronRequest(BaseModel):
    text: Any = ""
    model: Any = DEFAULT_ID
    layer: Any = 0
    head: Any = 0
    query: Any = 0  # the query token's position


class AblateRequest(BaseModel):
    text: Any = ""
    model: Any = DEFAULT_ID
    heads: Any = []  # [[layer, head], ...] switched off


def check_text(text: Any, name: str = "text") -> str:
    if not isinstance(text, str):
        raise ValueError(f"{name} must be a string, got {type(text).__name__} {text!r}")
    if not text.strip():
        raise ValueError(f"Please type some text: {name} is empty.")
    if len(text) > MAX_CHARS:
        raise ValueError(
            f"{name} has {len(text)} characters; the explorer accepts at most {MAX_CHARS}."
        )
    return text


def check_index(name: str, value: Any, n: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
        raise ValueError(f"{name} must be an integer in [0, {n - 1}], got {value!r}")
    return value


class TextModels:
    """The loaded text models, one lock per model, and the last traces (per model and text)."""

    def __init__(self, cache: ModelCache, keep: int = 16) -> None:
        self.cache = cache
        self.keep = keep
        self._traces: OrderedDict[tuple[str, str], tuple[Any, dict]] = OrderedDict()
        self._guard = threading.Lock()

    # -- loading and running ------------------------------------------------------------------

    def entry(self, model: Any) -> Entry:
        entry = self.cache.resolve(model)
        if images.lookup(entry.id) is not None:
            raise ValueError(
                f"{entry.id!r} is an image model: choose it in the model list (the page then asks "
                "POST /api/image)"
            )
        return entry

    def load(self, entry: Entry) -> tuple[Any, Any, str]:
        """``(model, tokenizer, kind)``; hold ``self.cache.lock(entry.id)``."""
        model, tok = self.cache.get(entry)
        return model, tok, hf_kind(model.config)

    @staticmethod
    def inputs(model: Any, tok: Any, text: str, kind: str) -> dict[str, Tensor]:
        inputs = dict(tok(text, return_tensors="pt"))
        if kind == "seq2seq":  # the encoder's self-attention: one decoder start token suffices
            start = model.config.decoder_start_token_id
            inputs["decoder_input_ids"] = torch.tensor([[0 if start is None else start]])
        device = next(model.parameters()).device  # `demo --device` may put the model on a GPU
        return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in inputs.items()}

    def _captured(self, entry: Entry, text: str, deadline: Deadline) -> tuple[Any, dict]:
        """``(trace, info)`` for ``text``, from the cache of recent traces or a forward pass."""
        from ..inspect import capture
        from ..inspect.loading import DEFAULT_MODEL_NAME

        key = (entry.id, text)
        with self._guard:
            if key in self._traces:
                self._traces.move_to_end(key)
                return self._traces[key]
        with self.cache.lock(entry.id):
            deadline.check()
            model, tok, kind = self.load(entry)
            name = DEFAULT_MODEL_NAME.split("/")[-1] if entry.id == DEFAULT_ID else entry.id
            inputs = self.inputs(model, tok, text, kind)
            which = "self" if kind == "seq2seq" else None  # an encoder-decoder: its encoder
            try:
                trace = capture(model, inputs, tok, model_name=name, kind=which)
            except (ValueError, TypeError) as err:
                raise ValueError(str(err)) from err
            info = {"kind": kind}
        with self._guard:
            self._traces[key] = (trace, info)
            while len(self._traces) > self.keep:
                self._traces.popitem(last=False)
        return trace, info

    # -- endpoints -----------------------------------------------------------------------------

    def trace(self, req: TraceRequest, deadline: Deadline) -> dict[str, Any]:
        from ..inspect import classify_heads
        from ..viz.views import prepare

        text = check_text(req.text)
        if req.explain not in EXPLANATIONS:
            raise ValueError(f"explain must be one of {EXPLANATIONS}, got {req.explain!r}")
        entry = self.entry(req.model)
        trace, info = self._captured(entry, text, deadline)
        layer = check_index("layer", req.layer, trace.num_layers)
        A = trace.attentions  # (layers, heads, L, L)
        thumbs, t_tok, _, t_note = prepare(trace, max_tokens=THUMB_TOKENS)
        n = len(trace.tokens)
        result: dict[str, Any] = {
            "model": entry.id,
            "model_name": trace.model_name,
            "model_kind": info["kind"],
            "kind": trace.kind,
            "num_layers": trace.num_layers,
            "num_heads": trace.num_heads,
            "num_tokens": n,
            "tokens": trace.tokens,
            "layer": layer,
            "attention": pack(A[layer]),  # (heads, L, L)
            "thumbnails": {"weights": pack(thumbs), "tokens": t_tok, "note": t_note},
            "head_types": classify_heads(trace).to_dict(),
            "explanation": None,
            "explanation_note": "",
        }
        if req.explain != "none":
            grad = None
            if req.explain == "gradient" and info["kind"] == "causal":
                with self.cache.lock(entry.id):
                    model, tok, _ = self.load(entry)
                    grad = _gradient_relevance(model, tok, text)
            deadline.check()
            result["explanation"], result["explanation_note"] = _explanation(
                trace, req.explain, grad, deadline
            )
        return result

    def neurons(self, req: NeuronRequest, deadline: Deadline) -> dict[str, Any]:
        from ..inspect import query_key

        text = check_text(req.text)
        entry = self.entry(req.model)
        trace, _ = self._captured(entry, text, deadline)
        layer = check_index("layer", req.layer, trace.num_layers)
        head = check_index("head", req.head, trace.num_heads)
        query = check_index("query", req.query, len(trace.tokens))
        with self.cache.lock(entry.id):
            model, tok, kind = self.load(entry)
            try:
                qk = query_key(model, self.inputs(model, tok, text, kind), layer, head)
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"the neuron view is not available for {entry.id!r}: {err}"
                ) from err

        def rows(x: Tensor | None) -> list | None:
            return None if x is None else x.double().round(decimals=4).tolist()

        s = qk.scores[query]
        return {
            "layer": layer,
            "head": head,
            "query": query,
            "tokens": trace.tokens,
            "scale": qk.scale,
            "q": rows(qk.q[query]),  # (Dh,)
            "k": rows(qk.k),  # (L, Dh)
            "q_raw": rows(None if qk.q_raw is None else qk.q_raw[query]),
            "k_raw": rows(qk.k_raw),
            "scores": [None if math.isinf(v) else round(v, 4) for v in s.tolist()],  # (L,)
            "weights": rows(qk.weights[query]),  # (L,)
        }

    def ablate(self, req: AblateRequest, deadline: Deadline) -> dict[str, Any]:
        from ..inspect import ablate_heads

        text = check_text(req.text)
        entry = self.entry(req.model)
        trace, _ = self._captured(entry, text, deadline)
        heads = req.heads
        if not isinstance(heads, list) or not all(
            isinstance(p, list) and len(p) == 2 for p in heads
        ):
            raise ValueError(f"heads must be a list of [layer, head] pairs, got {heads!r}")
        pairs = []
        for layer, head in heads:
            pairs.append(
                (
                    check_index("layer", layer, trace.num_layers),
                    check_index("head", head, trace.num_heads),
                )
            )
        with self.cache.lock(entry.id):
            model, tok, kind = self.load(entry)
            inputs = self.inputs(model, tok, text, kind)
            try:
                with torch.no_grad():
                    base = model(**inputs)
                    deadline.check()
                    with ablate_heads(model, pairs):
                        off = model(**inputs)
            except (TypeError, ValueError) as err:
                raise ValueError(f"heads of {entry.id!r} cannot be switched off: {err}") from err
        if kind == "causal":
            p0 = torch.softmax(read_output(base)[0][0, -1].float().cpu(), -1)  # (V,)
            p1 = torch.softmax(read_output(off)[0][0, -1].float().cpu(), -1)
            top = torch.cat([p0.topk(TOP_K).indices, p1.topk(TOP_K).indices]).unique()
            top = top[p0[top].argsort(descending=True)].tolist()
            kl = float((p0 * (p0.clamp_min(1e-12).log() - p1.clamp_min(1e-12).log())).sum())
            return {
                "kind": "causal",
                "heads": pairs,
                "after": trace.tokens[-1],
                "tokens": [tok.decode([i]) for i in top],
                "before": [round(float(p0[i]), 5) for i in top],
                "ablated": [round(float(p1[i]), 5) for i in top],
                "kl": round(kl, 6),
            }
        h0, h1 = _last_hidden(base)[0].float().cpu(), _last_hidden(off)[0].float().cpu()  # (L, d)
        e0, e1 = h0.mean(0), h1.mean(0)  # mean pooling: the sentence embedding
        return {
            "kind": "encoder",
            "heads": pairs,
            "cosine": round(float(torch.cosine_similarity(e0, e1, dim=0)), 6),
            "token_cosine": [round(v, 5) for v in torch.cosine_similarity(h0, h1, dim=-1).tolist()],
            "tokens": trace.tokens,
        }


def _last_hidden(out: Any) -> Tensor:
    """The (encoder's) last hidden states of a Hugging Face output."""
    h = getattr(out, "last_hidden_state", None)
    return h if h is not None else out.encoder_last_hidden_state


def _gradient_relevance(model: Any, tokenizer: Any, text: str) -> tuple[Any, str] | None:
    """Chefer et al. 2021 relevance for the model's top next-token logit at the last position.

    Only models with a score to explain (a language-model head giving ``logits``) qualify;
    returns ``(R (L, L), description)`` or None.
    """
    from .. import explain

    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in tokenizer(text, return_tensors="pt").items()}
    with torch.no_grad():
        logits = read_output(model(**inputs))[0]
    if logits is None or logits.dim() != 3:
        return None
    target = int(logits[0, -1].argmax())
    with torch.enable_grad():
        A, G = explain.attention_gradients(
            model, inputs, lambda o: read_output(o)[0][0, -1, target]
        )
    word = tokenizer.convert_ids_to_tokens([target])[0]
    return explain.gradient_relevance(A, G), word


def _explanation(
    trace: Any, how: str, grad: tuple[Any, str] | None, deadline: Deadline
) -> tuple[dict, str]:
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
    deadline.check()
    rt = AttentionTrace(R[None, None], rows, trace.key_tokens, trace.model_name, trace.kind)
    p = views.attention_heatmap(rt, max_tokens=max(len(rows), n)).payload
    zmax = max(1e-6, float(R.max()))
    packed = pack(R[None, None] / zmax)  # (1, 1, rows, L) in [0, 1]
    packed["scale"] = zmax  # the page multiplies back
    p.update(label=label, fixed_title=title, zmax=zmax, attentions=packed)
    return p, note
