r"""Inside one head: its query and key vectors, its scores, and switching a head off.

BertViz's *neuron view* (Vig 2019, arXiv:1904.02679) shows, for one query token :math:`i` and
key token :math:`j` of one head, the query :math:`q_i`, the key :math:`k_j`, their elementwise
product :math:`q_i \odot k_j` (whose sum, times the scale, is the score) and the softmax row:

.. math::

    s_{ij} = \frac{q_i \cdot k_j}{\sqrt{d_h}} + m_{ij}, \qquad
    A_{ij} = \operatorname{softmax}_j(s_{ij})

(Vaswani et al. 2017, arXiv:1706.03762, Eq. 1; :math:`m_{ij} = -\infty` where the mask forbids
the key). For rotary models (RoPE, Su et al. 2021, arXiv:2104.09864) :math:`q` and :math:`k` are
shown before and after the rotation; the score uses the rotated ones.

:func:`query_key` reads :math:`q, k` as the model itself computes them:

* **Hugging Face models** (BERT, GPT-2, Llama, … any model whose attention goes through
  transformers' ``eager_attention_forward``): for the call, the ``"eager"`` entry of
  ``transformers``' attention registry is wrapped; the wrapper records the ``query`` / ``key`` /
  ``scaling`` / ``attention_mask`` it is given and calls the model's own eager function.
  Pre-rotation vectors come from the attention module's ``q_proj`` / ``k_proj`` outputs.
* **the project's models** (:class:`~explore_attention.attention.MultiHeadAttention`): a
  forward pre-hook takes the module's input and applies its own projections (and RoPE).

:func:`ablate_heads` zeroes chosen heads' outputs (the head's slice of the concatenated head
outputs, before the output projection), as Michel et al. 2019 (arXiv:1905.10650) mask heads.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["QueryKey", "ablate_heads", "query_key"]


@dataclass(frozen=True)
class QueryKey:
    """One head's vectors for one input (batch item 0)."""

    q: Tensor  # (Lq, Dh) queries as scored (after RoPE for rotary models)
    k: Tensor  # (Lk, Dh) keys as scored
    q_raw: Tensor | None  # (Lq, Dh) before the rotation; None for non-rotary models
    k_raw: Tensor | None  # (Lk, Dh)
    scale: float  # the factor on q·k (1/sqrt(Dh) unless the model says otherwise)
    scores: Tensor  # (Lq, Lk) scale · q kᵀ, -inf where masked
    weights: Tensor  # (Lq, Lk) softmax of scores over keys


# --------------------------------------------------------------------------- HF probe

_probe_lock = threading.Lock()
_probes: dict[int, Any] = {}  # id(attention module) -> callback(module, q, k, scaling, mask, out)
_installed = 0


def _probe(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kw):
    """The "eager" attention, as each model defines it, plus the registered callbacks."""
    eager = sys.modules[type(module).__module__].eager_attention_forward
    out, weights = eager(
        module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kw
    )
    cb = _probes.get(id(module))
    if cb is not None:
        out = cb(module, query, key, scaling, attention_mask, out)
    return out, weights


@contextmanager
def _hf_probe(modules: dict[int, Any]) -> Iterator[None]:
    """Route every eager attention call of ``modules`` (id → callback) through :func:`_probe`."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    global _installed
    with _probe_lock:
        _probes.update(modules)
        if _installed == 0:
            ALL_ATTENTION_FUNCTIONS["eager"] = _probe
        _installed += 1
    try:
        yield
    finally:
        with _probe_lock:
            for k in modules:
                _probes.pop(k, None)
            _installed -= 1
            if _installed == 0:
                del ALL_ATTENTION_FUNCTIONS["eager"]


def _is_hf(model: nn.Module) -> bool:
    from transformers import PreTrainedModel

    return isinstance(model, PreTrainedModel)


def _hf_attention_modules(model: nn.Module) -> list[nn.Module]:
    """The self-attention modules in layer order (those calling ``eager_attention_forward``)."""
    found = []
    for _, m in model.named_modules():
        mod = sys.modules.get(type(m).__module__)
        if mod is None or not hasattr(mod, "eager_attention_forward"):
            continue
        if not any(hasattr(m, a) for a in ("q_proj", "query", "c_attn", "qkv_proj", "Wqkv")):
            continue
        if "cross" in type(m).__name__.lower() or getattr(m, "is_cross_attention", False):
            continue
        found.append(m)
    return found


def _own_attention_modules(model: nn.Module) -> list[nn.Module]:
    from ..attention.multihead import MultiHeadAttention

    return [m for _, m in model.named_modules() if isinstance(m, MultiHeadAttention)]


def _check_layer_head(name: str, value: Any, n: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
        raise ValueError(f"{name} must be an int in [0, {n}), got {value!r}")
    return value


def _run(model: nn.Module, inputs: Any) -> None:
    with torch.no_grad():
        if isinstance(inputs, Tensor):
            model(inputs)
        elif isinstance(inputs, dict):
            model(**inputs)
        else:
            raise TypeError(
                f"inputs must be a tensor of token ids or a dict of model inputs, got "
                f"{type(inputs).__name__}"
            )


def query_key(model: nn.Module, inputs: Any, layer: int, head: int) -> QueryKey:
    """The queries, keys, scores and weights of ``head`` in ``layer`` for one input.

    Args:
        model: a Hugging Face model or one of the project's (``MultiHeadAttention`` inside).
        inputs: a dict of model inputs (a tokenizer's output) or a ``(1, L)`` id tensor.
        layer, head: which self-attention layer (in call order) and which query head.

    ``softmax(scores)`` equals the weights the model applies (tested against
    ``output_attentions`` / ``capture``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    hf = _is_hf(model)
    mods = _hf_attention_modules(model) if hf else _own_attention_modules(model)
    if not mods:
        raise TypeError(f"found no attention modules in {type(model).__name__}")
    _check_layer_head("layer", layer, len(mods))
    att = mods[layer]
    got: dict[str, Any] = {}
    if hf:
        got.update(_hf_query_key(model, att, inputs))
    else:
        got.update(_own_query_key(model, att, inputs))
    q, k = got["q"][0], got["k"][0]  # (H, Lq, Dh), (Hkv, Lk, Dh)
    H, Hkv = q.shape[0], k.shape[0]
    _check_layer_head("head", head, H)
    kh = head // (H // Hkv)  # grouped-query attention: the key head this query head reads
    scale = float(got["scale"])
    qh, khv = q[head].float().cpu(), k[kh].float().cpu()  # (Lq, Dh), (Lk, Dh)
    scores = scale * qh @ khv.T  # (Lq, Lk)
    allowed = got["allowed"]  # (Lq, Lk) bool
    scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    q_raw = k_raw = None
    if got.get("q_raw") is not None:
        qr, kr = got["q_raw"][0][head].float().cpu(), got["k_raw"][0][kh].float().cpu()
        if not (torch.allclose(qr, qh) and torch.allclose(kr, khv)):
            q_raw, k_raw = qr, kr
    return QueryKey(qh, khv, q_raw, k_raw, scale, scores, weights)


def _split_heads(x: Tensor, dh: int) -> Tensor:
    B, L, _ = x.shape
    return x.view(B, L, -1, dh).transpose(1, 2)  # (B, H, L, Dh)


def _hf_query_key(model: nn.Module, att: nn.Module, inputs: Any) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def record(module, q, k, scaling, mask, out):
        if "q" not in got:  # the first call (no cache): the whole input
            got.update(q=q.detach(), k=k.detach(), scale=scaling, mask=mask)
        return out

    handles = []
    raw: dict[str, Tensor] = {}
    for name in ("q_proj", "k_proj"):
        sub = getattr(att, name, None)
        if isinstance(sub, nn.Module):

            def hook(m, a, out, name=name):
                raw.setdefault(name, out.detach())

            handles.append(sub.register_forward_hook(hook))
    previous = getattr(model.config, "_attn_implementation", None)
    switched = previous != "eager"
    if switched:
        model.set_attn_implementation("eager")
    try:
        with _hf_probe({id(att): record}):
            _run(model, inputs)
    finally:
        for h in handles:
            h.remove()
        if switched:
            model.set_attn_implementation(previous)
    if "q" not in got:
        raise ValueError(f"{type(att).__name__} was not called through eager attention")
    dh = got["q"].shape[-1]
    if got["scale"] is None:
        got["scale"] = dh**-0.5
    if len(raw) == 2:
        got["q_raw"], got["k_raw"] = (
            _split_heads(raw["q_proj"], dh),
            _split_heads(raw["k_proj"], dh),
        )
    Lq, Lk = got["q"].shape[2], got["k"].shape[2]
    mask = got["mask"]
    if mask is None:
        allowed = torch.ones(Lq, Lk, dtype=torch.bool)
    else:
        m = mask[0, 0, :, :Lk]  # (Lq, Lk) additive float or bool
        allowed = m if m.dtype == torch.bool else m > torch.finfo(m.dtype).min / 2
    got["allowed"] = allowed.cpu()
    return got


def _own_query_key(model: nn.Module, att: nn.Module, inputs: Any) -> dict[str, Any]:
    from ..attention import masks

    got: dict[str, Any] = {}

    def pre(mod, a, kw):
        if "q" in got:
            return
        x = a[0] if a else kw["x"]
        context = kw.get("context", a[1] if len(a) > 1 else None)
        src = x if context is None else context
        q = mod._split(mod.q_proj(x), mod.num_heads)  # (B, H, Lq, Dh)
        k = mod._split(mod.k_proj(src), mod.num_kv_heads)  # (B, Hkv, Lk, Dh)
        got.update(q_raw=q, k_raw=k)
        q, k = mod.position_qk(q, k, 0)  # the module's own positions: RoPE, or the identity
        mm = kw.get("mask_mod")
        Lq, Lk = q.shape[2], k.shape[2]
        allowed = (
            torch.ones(Lq, Lk, dtype=torch.bool)
            if mm is None
            else masks.materialize(mm, Lq, Lk)[0, 0].bool().cpu()
        )
        got.update(q=q.detach(), k=k.detach(), scale=q.shape[-1] ** -0.5, allowed=allowed)

    handle = att.register_forward_pre_hook(pre, with_kwargs=True)
    was_training = model.training
    model.eval()
    try:
        _run(model, inputs)
    finally:
        handle.remove()
        model.train(was_training)
    if "q" not in got:
        raise ValueError(f"{type(att).__name__} was not called")
    if got.get("q_raw") is not None and getattr(att, "rope_base", None) is None:
        got["q_raw"] = got["k_raw"] = None
    return got


# --------------------------------------------------------------------------- ablation


@contextmanager
def ablate_heads(model: nn.Module, heads: Iterable[tuple[int, int]]) -> Iterator[None]:
    """Within the block, the outputs of ``heads`` (``(layer, head)`` pairs) are zero.

    The head's slice of the concatenated per-head outputs is zeroed before the output
    projection, so the head contributes nothing (its bias-free share of the residual stream).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    hf = _is_hf(model)
    mods = _hf_attention_modules(model) if hf else _own_attention_modules(model)
    if not mods:
        raise TypeError(f"found no attention modules in {type(model).__name__}")
    chosen: dict[int, set[int]] = {}
    for pair in heads:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"heads must hold (layer, head) pairs, got {pair!r}")
        layer = _check_layer_head("layer", pair[0], len(mods))
        n_heads = _num_heads(mods[layer], model)
        chosen.setdefault(layer, set()).add(_check_layer_head("head", pair[1], n_heads))
    if not chosen:
        yield
        return
    if hf:
        callbacks = {}
        for layer, hs in chosen.items():
            idx = sorted(hs)

            def zero(module, q, k, scaling, mask, out, idx=idx):
                out = out.clone()
                out[:, :, idx] = 0  # out: (B, L, H, Dh)
                return out

            callbacks[id(mods[layer])] = zero
        previous = getattr(model.config, "_attn_implementation", None)
        switched = previous != "eager"
        if switched:
            model.set_attn_implementation("eager")
        try:
            with _hf_probe(callbacks):
                yield
        finally:
            if switched:
                model.set_attn_implementation(previous)
        return
    handles = []
    for layer, hs in chosen.items():
        mod = mods[layer]
        dh, hs = mod.head_dim, tuple(sorted(hs))

        def pre(m, a, hs=hs, dh=dh):
            x = a[0].clone()  # (B, L, H * Dh)
            for h in hs:
                x[..., h * dh : (h + 1) * dh] = 0
            return (x, *a[1:])

        handles.append(mod.out_proj.register_forward_pre_hook(pre))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _num_heads(att: nn.Module, model: nn.Module) -> int:
    for obj, name in (
        (att, "num_heads"),
        (att, "num_attention_heads"),
        (getattr(att, "config", None), "num_attention_heads"),
        (model.config if hasattr(model, "config") else None, "num_attention_heads"),
        (getattr(model, "config", None), "n_head"),
    ):
        v = getattr(obj, name, None) if obj is not None else None
        if isinstance(v, int) and v > 0:
            return v
    raise ValueError(f"cannot tell how many heads {type(att).__name__} has")
