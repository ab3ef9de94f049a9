"""Capture every layer's and head's attention for one input → :class:`AttentionTrace`.

Two kinds of model are supported:

* **Hugging Face models** (``model`` is ``None``, a hub name, a folder, or a loaded
  ``PreTrainedModel``): run once with ``output_attentions=True``. A model loaded with a kernel
  that returns no weights (SDPA, flash) is switched to eager attention for the call and switched
  back afterwards.
* **The project's own models**: any ``nn.Module`` containing
  :class:`~explore_attention.attention.MultiHeadAttention` submodules. Forward hooks force
  ``return_weights=True`` and collect the weights of every call, in call order. Pass the model's
  input (a tensor ``input_ids``, a tuple of positional inputs, or a dict of keyword inputs) and
  the tokens to label it with::

      trace = capture(gpt, input_ids, tokens=["The", " cat", " sat"])      # (1, L) or (L,)
      trace = capture(seq2seq, (src, tgt), tokens=tgt_tokens, key_tokens=src_tokens,
                      kind="cross")

``kind`` chooses which attention to capture: ``None`` = the model's own self-attention
(``"self"`` for encoders, ``"causal"`` for decoder-only models), ``"cross"`` = an encoder-decoder's
cross-attention (decoder queries, encoder keys). For a Hugging Face encoder-decoder ``"self"`` is
the encoder's and ``"causal"`` the decoder's self-attention.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .loading import is_causal_config, load_model
from .trace import KINDS, AttentionTrace

__all__ = ["capture"]


def capture(
    model: Any,
    text_or_inputs: Any,
    tokenizer: Any = None,
    *,
    tokens: Sequence[str] | None = None,
    key_tokens: Sequence[str] | None = None,
    kind: str | None = None,
    model_name: str | None = None,
) -> AttentionTrace:
    """Run ``model`` on one input and return its attention, ``(layers, heads, Lq, Lk)``.

    Args:
        model: ``None`` (bundled all-MiniLM-L6-v2), a hub name or local folder, a loaded Hugging
            Face model, or an ``nn.Module`` built from ``MultiHeadAttention``.
        text_or_inputs: a string (needs a tokenizer, loaded automatically for names/paths), a
            tensor of token ids ``(L,)`` or ``(1, L)``, a tuple of positional inputs, or a dict
            of keyword inputs (e.g. a tokenizer's ``BatchEncoding``). One example, batch size 1.
        tokenizer: a Hugging Face tokenizer, or any object with ``encode(text) -> list[int]`` and
            ``decode(list[int]) -> str``; used for text and to label token ids.
        tokens: query-side token labels (required for own models without a tokenizer).
        key_tokens: key-side labels for cross-attention (default: ``tokens``).
        kind: which attention to capture: ``None``, ``"self"``, ``"causal"`` or ``"cross"``.
        model_name: label for plots (default: the model's name or class).

    Raises:
        TypeError / ValueError: wrong model or input type, empty text, text longer than the
            model's maximum length, batch size above 1, token labels of the wrong length.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be None or one of {KINDS}, got {kind!r}")
    if model is None or isinstance(model, (str, os.PathLike)):
        name = "all-MiniLM-L6-v2" if model is None else str(model)
        model, loaded_tok = load_model(model)
        tokenizer = tokenizer if tokenizer is not None else loaded_tok
        model_name = model_name or name
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be None, a name/path, a Hugging Face model or an nn.Module, got "
            f"{type(model).__name__}"
        )
    if _is_hf_model(model):
        return _capture_hf(model, text_or_inputs, tokenizer, tokens, key_tokens, kind, model_name)
    return _capture_own(model, text_or_inputs, tokenizer, tokens, key_tokens, kind, model_name)


# --------------------------------------------------------------------------- inputs


def _is_hf_model(model: nn.Module) -> bool:
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(model, PreTrainedModel)


def _is_hf_tokenizer(tokenizer: Any) -> bool:
    from transformers import PreTrainedTokenizerBase

    return isinstance(tokenizer, PreTrainedTokenizerBase)


def _check_text(text: str, tokenizer: Any) -> None:
    if not text.strip():
        raise ValueError(f"text is empty or whitespace only ({text!r}); give at least one word")
    if tokenizer is None:
        raise ValueError(
            "text was given without a tokenizer; pass tokenizer=..., or token ids with tokens=[...]"
        )


def _ids_to_tokens(ids: list[int], tokenizer: Any) -> list[str]:
    if _is_hf_tokenizer(tokenizer):
        return [str(t) for t in tokenizer.convert_ids_to_tokens(ids)]
    if hasattr(tokenizer, "decode"):
        return [tokenizer.decode([i]) for i in ids]
    raise TypeError(
        f"tokenizer {type(tokenizer).__name__} has no decode(); pass tokens=[...] explicitly"
    )


def _check_labels(name: str, labels: Sequence[str] | None, n: int) -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(labels).__name__}")
    if len(labels) != n:
        raise ValueError(
            f"{name} has {len(labels)} entries but the input has {n} tokens; give one label per "
            "token"
        )
    return [str(t) for t in labels]


def _labels(name: str, given: Sequence[str] | None, ids: list[int], tokenizer: Any) -> list[str]:
    """``given`` checked against ``ids``, else the tokenizer's strings for ``ids``."""
    labels = _check_labels(name, given, len(ids))
    if labels is not None:
        return labels
    if tokenizer is None:
        raise ValueError(
            f"token ids were given without a tokenizer: pass tokenizer=... or {name}=[...] "
            f"({len(ids)} labels)"
        )
    return _ids_to_tokens(ids, tokenizer)


def _as_ids(x: Tensor, name: str = "input_ids") -> Tensor:
    if x.dim() == 1:
        x = x.unsqueeze(0)  # (1, L)
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (L,) or (1, L), got {tuple(x.shape)}")
    if x.shape[0] != 1:
        raise ValueError(
            f"{name} must hold one example (batch size 1), got shape {tuple(x.shape)}; "
            "capture one input at a time"
        )
    if x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    return x


def _max_length(model: nn.Module, tokenizer: Any) -> int | None:
    cfg = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_seq_len", "block_size"):
        val = getattr(cfg, attr, None)
        if isinstance(val, int) and val > 0:
            return val
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        return tok_max
    return None


# --------------------------------------------------------------------------- Hugging Face


def _hf_kind(model: nn.Module) -> str:
    cfg = model.config
    if getattr(cfg, "is_encoder_decoder", False):
        return "encoder-decoder"
    if is_causal_config(cfg) or type(model).__name__.endswith(("ForCausalLM", "LMHeadModel")):
        return "causal"
    return "self"


def _capture_hf(
    model: nn.Module,
    text_or_inputs: Any,
    tokenizer: Any,
    tokens: Sequence[str] | None,
    key_tokens: Sequence[str] | None,
    kind: str | None,
    model_name: str | None,
) -> AttentionTrace:
    family = _hf_kind(model)
    if family != "encoder-decoder" and kind == "cross":
        raise ValueError(
            f"kind='cross' needs an encoder-decoder model; {type(model).__name__} has only "
            "self-attention"
        )
    if isinstance(text_or_inputs, str):
        _check_text(text_or_inputs, tokenizer)
        if family == "encoder-decoder":
            raise ValueError(
                "an encoder-decoder needs both sides: pass a dict with input_ids and "
                "decoder_input_ids"
            )
        inputs = dict(tokenizer(text_or_inputs, return_tensors="pt"))
    elif isinstance(text_or_inputs, Tensor):
        inputs = {"input_ids": text_or_inputs}
    elif isinstance(text_or_inputs, dict) or hasattr(text_or_inputs, "keys"):
        inputs = dict(text_or_inputs)
    else:
        raise TypeError(
            "text_or_inputs must be a string, a tensor of token ids or a dict of model inputs, "
            f"got {type(text_or_inputs).__name__}"
        )
    if "input_ids" not in inputs:
        raise ValueError(f"inputs must contain 'input_ids', got keys {sorted(inputs)}")
    inputs["input_ids"] = _as_ids(inputs["input_ids"])
    ids = inputs["input_ids"][0].tolist()
    limit = _max_length(model, tokenizer)
    if limit is not None and len(ids) > limit:
        raise ValueError(
            f"the input has {len(ids)} tokens but the model accepts at most {limit}; shorten "
            "the text"
        )
    if family != "encoder-decoder":
        enc_tokens = _labels("tokens", tokens, ids, tokenizer)

    device = next(model.parameters()).device
    inputs = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in inputs.items()}
    previous = getattr(model.config, "_attn_implementation", None)
    switched = previous not in (None, "eager")
    if switched:
        model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(**inputs, output_attentions=True, return_dict=True)
    finally:
        if switched:
            model.set_attn_implementation(previous)

    name = model_name or _hf_name(model)
    if family != "encoder-decoder":
        atts = getattr(out, "attentions", None)
        trace_kind = family
        q_tokens = k_tokens = enc_tokens
        if kind is not None and kind != family:
            raise ValueError(f"this model's self-attention is {family!r}, not {kind!r}")
    else:
        if "decoder_input_ids" not in inputs:
            raise ValueError("an encoder-decoder needs decoder_input_ids in the inputs dict")
        dec_ids = _as_ids(inputs["decoder_input_ids"], "decoder_input_ids")[0].tolist()
        trace_kind = kind or "self"
        if trace_kind == "self":  # encoder self-attention: tokens= labels the source
            src_tokens = _labels(
                "tokens", tokens if key_tokens is None else key_tokens, ids, tokenizer
            )
            atts, q_tokens, k_tokens = out.encoder_attentions, src_tokens, src_tokens
        else:
            dec_tokens = _labels("tokens", tokens, dec_ids, tokenizer)
            if trace_kind == "causal":
                atts, q_tokens, k_tokens = out.decoder_attentions, dec_tokens, dec_tokens
            else:
                src_tokens = _labels("key_tokens", key_tokens, ids, tokenizer)
                atts, q_tokens, k_tokens = out.cross_attentions, dec_tokens, src_tokens
    if atts is None or any(a is None for a in atts):
        raise ValueError(
            f"{type(model).__name__} returned no attention weights even with eager attention"
        )
    stacked = torch.stack([a[0] for a in atts])  # (layers, heads, Lq, Lk)
    return AttentionTrace(
        stacked,
        q_tokens,
        k_tokens,
        model_name=str(name),
        kind=trace_kind,
        meta={"source": "huggingface", "class": type(model).__name__},
    )


def _hf_name(model: nn.Module) -> str:
    """A short label: the hub name, a folder's name, or the class."""
    from .loading import DEFAULT_MODEL_NAME, default_model_path

    path = str(getattr(model, "name_or_path", "") or "")
    if not path:
        return type(model).__name__
    if path.rstrip("/") == str(default_model_path()).rstrip("/"):
        return DEFAULT_MODEL_NAME.split("/")[-1]
    return path


# --------------------------------------------------------------------------- own models


def _capture_own(
    model: nn.Module,
    text_or_inputs: Any,
    tokenizer: Any,
    tokens: Sequence[str] | None,
    key_tokens: Sequence[str] | None,
    kind: str | None,
    model_name: str | None,
) -> AttentionTrace:
    from ..attention import masks
    from ..attention.multihead import MultiHeadAttention

    mhas = [(n, m) for n, m in model.named_modules() if isinstance(m, MultiHeadAttention)]
    if not mhas:
        raise TypeError(
            f"{type(model).__name__} is neither a Hugging Face model nor contains "
            "explore_attention.attention.MultiHeadAttention modules; nothing to capture"
        )
    if isinstance(text_or_inputs, str):
        _check_text(text_or_inputs, tokenizer)
        if _is_hf_tokenizer(tokenizer):
            ids = tokenizer(text_or_inputs, return_tensors="pt")["input_ids"]
        elif hasattr(tokenizer, "encode"):
            ids = torch.tensor([tokenizer.encode(text_or_inputs)], dtype=torch.long)
        else:
            raise TypeError(f"tokenizer {type(tokenizer).__name__} has no encode()")
        text_or_inputs = ids
    if isinstance(text_or_inputs, Tensor):
        ids_t = _as_ids(text_or_inputs) if not text_or_inputs.is_floating_point() else None
        args, kwargs = ((ids_t if ids_t is not None else text_or_inputs),), {}
    elif isinstance(text_or_inputs, tuple):
        args, kwargs, ids_t = text_or_inputs, {}, None
    elif isinstance(text_or_inputs, dict):
        args, kwargs, ids_t = (), dict(text_or_inputs), None
    else:
        raise TypeError(
            "text_or_inputs must be a string, a tensor, a tuple of positional inputs or a dict "
            f"of keyword inputs, got {type(text_or_inputs).__name__}"
        )
    if ids_t is not None:
        limit = _max_length(model, tokenizer)
        if limit is not None and ids_t.shape[1] > limit:
            raise ValueError(
                f"the input has {ids_t.shape[1]} tokens but the model accepts at most {limit}"
            )

    calls: list[tuple[str, str, Tensor]] = []  # (module name, kind, weights (1, H, Lq, Lk))
    pending: dict[int, str] = {}

    def pre_hook(name: str):
        def hook(mod: nn.Module, a: tuple, kw: dict) -> tuple[tuple, dict]:
            context = kw.get("context", a[1] if len(a) > 1 else None)
            mm = kw.get("mask_mod")
            if context is not None:
                pending[id(mod)] = "cross"
            elif mm is not None and _is_causal_mask(mm, masks):
                pending[id(mod)] = "causal"
            else:
                pending[id(mod)] = "self"
            kw = dict(kw)
            kw["return_weights"] = True
            return a, kw

        return hook

    def post_hook(name: str):
        def hook(mod: nn.Module, a: tuple, kw: dict, output: Any) -> None:
            w = output[1]
            if w is None:
                raise RuntimeError(f"{name} returned no weights despite return_weights=True")
            calls.append((name, pending.pop(id(mod)), w.detach()))

        return hook

    handles = []
    for name, m in mhas:
        handles.append(m.register_forward_pre_hook(pre_hook(name), with_kwargs=True))
        handles.append(m.register_forward_hook(post_hook(name), with_kwargs=True))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    want_cross = kind == "cross"
    chosen = [c for c in calls if (c[1] == "cross") == want_cross]
    if not chosen:
        seen = sorted({c[1] for c in calls}) or ["none"]
        raise ValueError(
            f"no {'cross' if want_cross else 'self'}-attention calls were captured; the model "
            f"ran attention of kind(s) {seen}"
        )
    if any(w.shape[0] != 1 for _, _, w in chosen):
        raise ValueError(f"capture needs batch size 1, got weights {tuple(chosen[0][2].shape)}")
    shapes = {tuple(w.shape) for _, _, w in chosen}
    if len(shapes) != 1:
        raise ValueError(
            f"captured layers have different shapes {sorted(shapes)}; cannot stack them"
        )
    kinds = {k for _, k, _ in chosen}
    trace_kind = "cross" if want_cross else ("causal" if kinds == {"causal"} else "self")
    if kind is not None and kind != trace_kind:
        raise ValueError(f"asked for kind={kind!r} but the model's attention is {trace_kind!r}")
    stacked = torch.stack([w[0] for _, _, w in chosen])  # (layers, heads, Lq, Lk)
    Lq, Lk = stacked.shape[2], stacked.shape[3]
    q_labels = _check_labels("tokens", tokens, Lq)
    if q_labels is None:
        if ids_t is None or tokenizer is None:
            raise ValueError(
                f"pass tokens=[...] ({Lq} labels) to label the query axis of an own model"
            )
        q_labels = _ids_to_tokens(ids_t[0].tolist(), tokenizer)
        q_labels = _check_labels("tokens", q_labels, Lq)
    k_labels = _check_labels("key_tokens", key_tokens, Lk)
    if k_labels is None:
        if Lk != Lq and not want_cross:
            raise ValueError(f"pass key_tokens=[...] ({Lk} labels) for the key axis")
        if want_cross:
            raise ValueError(f"pass key_tokens=[...] ({Lk} labels) for cross-attention's keys")
        k_labels = q_labels
    return AttentionTrace(
        stacked,
        q_labels,
        k_labels,
        model_name=model_name or type(model).__name__,
        kind=trace_kind,
        meta={"source": "explore_attention", "layers": [n for n, _, _ in chosen]},
    )


def _is_causal_mask(mask_mod: Any, masks: Any) -> bool:
    """A self-attention mask is causal when it never lets a query see a later key."""
    if mask_mod is masks.causal:
        return True
    try:
        m = masks.materialize(mask_mod, 8, 8)[0, 0]  # (8, 8)
    except Exception:  # a mask that needs batch-specific data (padding); judge by name
        return "causal" in getattr(mask_mod, "__name__", "")
    return not bool(torch.triu(m, diagonal=1).any())
