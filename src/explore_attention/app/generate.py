r"""Watch a GPT write: generation token by token with the KV cache, and each step's attention.

``POST /api/generate`` with ``{"model", "prompt", "max_new_tokens", "temperature"}`` runs the
prompt once, then feeds one token at a time with the cached keys and values
(``past_key_values``), as :meth:`explore_attention.models.gpt.GPT.generate` does for our GPT.
Step :math:`t` produces token :math:`s_t`; its ``attention[layer][head]`` is the attention row of
the query that predicted it — the position just before :math:`s_t` — over the prompt and the
:math:`t` tokens already written (length :math:`P + t`, each row sums to 1). Temperature 0 (the
default) is greedy decoding; above 0 tokens are sampled from :math:`\operatorname{softmax}(z/T)`
with a fixed seed, so the same request gives the same text.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel

from .models import KIND_LABELS
from .text import Deadline, TextModels, check_text, read_output

__all__ = ["MAX_NEW_TOKENS", "GenerateRequest", "generate"]

MAX_NEW_TOKENS = 64  # most tokens one request may ask for
MAX_TEMPERATURE = 5.0
SEED = 0
DECIMALS = 4


class GenerateRequest(BaseModel):
    model: Any = ""
    prompt: Any = ""
    max_new_tokens: Any = 16
    temperature: Any = 0.0


def _check(req: GenerateRequest) -> tuple[str, int, float]:
    prompt = check_text(req.prompt, "prompt")
    n = req.max_new_tokens
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_NEW_TOKENS:
        raise ValueError(f"max_new_tokens must be an integer in [1, {MAX_NEW_TOKENS}], got {n!r}")
    t = 0.0 if req.temperature is None else req.temperature
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= MAX_TEMPERATURE:
        raise ValueError(
            f"temperature must be a number in [0, {MAX_TEMPERATURE:g}] (0 = greedy), got {t!r}"
        )
    return prompt, n, float(t)


def _rows(att: tuple[torch.Tensor, ...]) -> list:
    """The last query's row of every layer: ``[layer][head][key]``, rounded."""
    A = torch.stack([a[0, :, -1].float().cpu() for a in att])  # (layers, heads, Lk)
    return A.double().round(decimals=DECIMALS).tolist()


def generate(models: TextModels, req: GenerateRequest, deadline: Deadline) -> dict[str, Any]:
    """The JSON answer; ``ValueError`` for bad input, ``TimeoutError`` past the deadline."""
    prompt, n_new, temperature = _check(req)
    entry = models.entry(req.model)
    with models.cache.lock(entry.id):
        model, tok, kind = models.load(entry)
        if kind != "causal":
            raise ValueError(
                f"model {entry.id!r} is an {KIND_LABELS[kind]} model; generation needs a causal "
                "language model (e.g. gpt-pydoc-char)"
            )
        device = next(model.parameters()).device
        ids = tok(prompt, return_tensors="pt")["input_ids"].to(device)  # (1, P)
        P = ids.shape[1]
        limit = getattr(model.config, "n_positions", None) or getattr(
            model.config, "max_position_embeddings", None
        )
        if limit is not None and P + n_new - 1 > limit:
            raise ValueError(
                f"the prompt has {P} tokens; with max_new_tokens={n_new} the model would see "
                f"{P + n_new - 1} positions, more than its {limit}. Shorten the prompt or ask "
                f"for at most {max(0, limit - P + 1)} tokens"
            )
        previous = getattr(model.config, "_attn_implementation", None)
        if previous != "eager":
            model.set_attn_implementation("eager")
        gen = torch.Generator().manual_seed(SEED)
        steps = []
        try:
            with torch.no_grad():
                out = model(input_ids=ids, use_cache=True, output_attentions=True)
                for _ in range(n_new):
                    deadline.check()
                    logits, att = read_output(out)
                    z = logits[0, -1].float().cpu()  # (V,)
                    if temperature == 0:
                        nxt = int(z.argmax())
                    else:
                        p = torch.softmax(z / temperature, -1)
                        nxt = int(torch.multinomial(p, 1, generator=gen))
                    steps.append(
                        {
                            "token": tok.decode([nxt]),
                            "id": nxt,
                            "probability": round(float(torch.softmax(z, -1)[nxt]), 5),
                            "attention": _rows(att),  # (layers, heads, P + t)
                        }
                    )
                    if len(steps) == n_new:
                        break
                    out = model(
                        input_ids=torch.tensor([[nxt]], device=device),
                        past_key_values=out.past_key_values,
                        use_cache=True,
                        output_attentions=True,
                    )
        finally:
            if previous != "eager":
                model.set_attn_implementation(previous)
    return {
        "model": entry.id,
        "prompt_tokens": [tok.decode([i]) for i in ids[0].tolist()],
        "prompt_ids": ids[0].tolist(),
        "num_layers": len(steps[0]["attention"]),
        "num_heads": len(steps[0]["attention"][0]),
        "temperature": temperature,
        "steps": steps,
    }
