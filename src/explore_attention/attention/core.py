r"""Scaled dot-product attention: the one function every mechanism in this package shares.

Vaswani et al. 2017, "Attention Is All You Need" (arXiv:1706.03762), Eq. (1):

.. math::

    \operatorname{Attention}(Q, K, V)
        = \operatorname{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V

Shapes (batch-first, the layout of ``F.scaled_dot_product_attention`` and FlexAttention)::

    q        (B, H,   Lq, D)     queries
    k        (B, Hkv, Lk, D)     keys     (H % Hkv == 0: grouped-query / multi-query attention)
    v        (B, Hkv, Lk, Dv)    values
    output   (B, H,   Lq, Dv)
    weights  (B, H,   Lq, Lk)    each row sums to 1 over the keys it may attend to

Variants are small functions with FlexAttention's signatures:

* ``mask_mod(b, h, q_idx, kv_idx) -> bool``: True where query ``q_idx`` may attend to key
  ``kv_idx``.
* ``score_mod(score, b, h, q_idx, kv_idx) -> score``: rewrites a raw (already scaled) score.

**The index contract.** ``b``, ``h``, ``q_idx`` and ``kv_idx`` are integer tensors that
broadcast against each other (and against ``score``), of *any* shape a backend chooses: the full
grids ``(B,1,1,1)``, ``(1,H,1,1)``, ``(1,1,Lq,1)``, ``(1,1,1,Lk)`` of the reference backend, one
``128``-key tile of the tiled backend, or 0-d scalars under FlexAttention's ``vmap``. So a mod

1. uses elementwise tensor operations (``&``, ``|``, ``torch.where``), never Python
   ``and``/``if`` on values;
2. never reads the indices' sizes (``q_idx.shape``, ``kv_idx.numel()``) nor depends on them:
   the answer for one (b, h, q, kv) is the same whichever tile it is computed in;
3. reads captured data by indexing it with the indices it is given (``keep[b, kv_idx]``,
   ``mask[q_idx - offset, kv_idx]``, ``bias[h, q_idx - kv_idx]``), never by slicing it to a
   size;
4. draws randomness as a function of absolute positions and a seed (a table drawn once when
   the mod is built), never per call.

Size checks that a mod needs (``padding(lengths)`` was built for B items, ``alibi(8)`` for 8
heads) live in an optional attribute ``check_shapes(B, H, Lq, Lk)`` that raises a
``ValueError``; :func:`check_mod_shapes` calls it once before any backend runs (see
:func:`with_shape_check`). Every mod the library ships obeys this contract and is exercised on
every backend by ``tests/test_conformance.py``, which finds them by introspection.

**Position convention.** ``q_idx`` is the query's *position on the key axis*: query ``i`` sits at
``i + (Lk - Lq)``, so the last query and the last key coincide. With ``Lq == Lk`` this is plain
``0..L-1`` (FlexAttention's convention); with a KV cache (``Lq < Lk``) it is the true position of
the new tokens, so causal masks, ALiBi and windows need no offset argument. With ``Lq > Lk`` the
first ``Lq - Lk`` queries get negative positions, and a causal mask leaves them empty.

**Fully masked rows** (a query that may attend to no key) give output 0 and weights 0 on every
backend, never NaN. Masks are applied with ``torch.where`` (never multiplication), so a masked
key holding ``inf`` or ``NaN`` cannot leak into the result.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

MaskMod = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
ScoreMod = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]

__all__ = [
    "BACKENDS",
    "AttentionOutput",
    "attend",
    "check_mod_shapes",
    "check_qkv",
    "choose_backend",
    "masked_softmax",
    "register_backend",
    "repeat_kv",
    "set_weights_budget",
    "weights_budget",
    "with_shape_check",
]


@dataclass(frozen=True)
class AttentionOutput:
    """What every attention mechanism returns."""

    output: Tensor  # (B, H, Lq, Dv)
    weights: Tensor | None  # (B, H, Lq, Lk); None only when the backend cannot give them


@dataclass(frozen=True)
class Backend:
    """An implementation of :func:`attend`'s contract."""

    # fn(q, k, v, mask_mod, score_mod, scale, dropout_p, return_weights) -> AttentionOutput
    fn: Callable[..., AttentionOutput]
    gives_weights: bool  # can it return the exact attention matrix?
    supports_score_mod: bool  # can it apply an arbitrary score_mod?
    supports_dropout: bool  # can it apply attention dropout?


BACKENDS: dict[str, Backend] = {}


def register_backend(
    name: str,
    fn: Callable[..., AttentionOutput],
    *,
    gives_weights: bool,
    supports_score_mod: bool,
    supports_dropout: bool,
) -> None:
    """Make ``attend(..., backend=name)`` call ``fn``; used by ``tiled.py`` and ``flex``."""
    BACKENDS[name] = Backend(fn, gives_weights, supports_score_mod, supports_dropout)


# --------------------------------------------------------------------------- validation


def _shape(t: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    """Raise a clear ``TypeError``/``ValueError`` unless q, k, v follow the shape legend above."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(
                f"{name} must have 4 dimensions (B, H, L, D), got shape {_shape(t)} "
                f"({t.dim()} dimensions)"
            )
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    B, H, _, D = q.shape
    if k.shape[0] != B or v.shape[0] != B:
        raise ValueError(
            f"batch sizes differ: q {_shape(q)}, k {_shape(k)}, v {_shape(v)}; expected one B"
        )
    if k.shape[-1] != D:
        raise ValueError(
            f"k's head dim must equal q's: q {_shape(q)} has D={D}, k {_shape(k)} has "
            f"D={k.shape[-1]}"
        )
    if k.shape[:3] != v.shape[:3]:
        raise ValueError(f"k and v must agree on (B, Hkv, Lk): k {_shape(k)}, v {_shape(v)}")
    Hkv = k.shape[1]
    if Hkv < 1 or H % Hkv != 0:
        raise ValueError(
            f"q's heads must be a multiple of k's heads (GQA): q {_shape(q)} has H={H}, "
            f"k {_shape(k)} has Hkv={Hkv}, and {H} % {Hkv} != 0"
        )


def repeat_kv(x: Tensor, num_heads: int) -> Tensor:
    """Repeat each of ``Hkv`` key/value heads ``num_heads // Hkv`` times (GQA → MHA).

    Ainslie et al. 2023, "GQA" (arXiv:2305.13245): query head ``h`` uses kv head
    ``h // (H / Hkv)``, which is what ``repeat_interleave`` along dim 1 gives.
    """
    Hkv = x.shape[1]
    if Hkv == num_heads:
        return x
    return x.repeat_interleave(num_heads // Hkv, dim=1)  # (B, H, Lk, D)


# --------------------------------------------------------------------------- mods


def with_shape_check(fn, check: Callable[[int, int, int, int], None]):
    """Attach ``check(B, H, Lq, Lk)`` to a mask_mod / score_mod as ``fn.check_shapes``.

    A mod may not read its indices' sizes (the index contract above), so a mod built for a
    given batch size, head count or length says so here; :func:`check_mod_shapes` runs the check
    once per call of :func:`attend`, before any backend evaluates the mod.
    """
    fn.check_shapes = check
    return fn


def check_mod_shapes(mod: object, B: int, H: int, Lq: int, Lk: int) -> None:
    """Run ``mod.check_shapes(B, H, Lq, Lk)`` if the mod has one (it raises ``ValueError``)."""
    check = getattr(mod, "check_shapes", None)
    if check is not None:
        check(B, H, Lq, Lk)


# --------------------------------------------------------------------------- masks


def index_grids(
    B: int, H: int, Lq: int, Lk: int, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Broadcastable (b, h, q_idx, kv_idx) index tensors; q_idx follows the position convention."""
    b = torch.arange(B, device=device).view(B, 1, 1, 1)
    h = torch.arange(H, device=device).view(1, H, 1, 1)
    q_idx = (torch.arange(Lq, device=device) + (Lk - Lq)).view(1, 1, Lq, 1)
    kv_idx = torch.arange(Lk, device=device).view(1, 1, 1, Lk)
    return b, h, q_idx, kv_idx


def mask_tensor(
    mask_mod: MaskMod, B: int, H: int, Lq: int, Lk: int, device: torch.device | str | None = None
) -> Tensor:
    """Evaluate ``mask_mod`` on every (b, h, q, kv): a bool tensor broadcastable to (B, H, Lq, Lk).

    Dimensions the mask does not depend on stay of size 1 (no copy per head or batch).
    """
    if not callable(mask_mod):
        raise TypeError(f"mask_mod must be callable, got {type(mask_mod).__name__}")
    check_mod_shapes(mask_mod, B, H, Lq, Lk)
    m = mask_mod(*index_grids(B, H, Lq, Lk, device))
    return checked_mask(mask_mod, m, (B, H, Lq, Lk), device)


def checked_mask(
    mask_mod: MaskMod, m: object, shape: tuple[int, int, int, int], device=None
) -> Tensor:
    """What ``mask_mod`` returned for a ``shape = (B, H, queries, keys)`` grid, checked: a bool
    tensor (a Python bool becomes one, on ``device``) broadcastable to ``shape``, made 4-D. A
    TypeError or ValueError names the mask and what it returned otherwise."""
    if not isinstance(m, Tensor):
        m = torch.tensor(bool(m), device=device)
    if m.dtype != torch.bool:
        name = getattr(mask_mod, "__name__", repr(mask_mod))
        raise TypeError(f"mask_mod {name!r} must return a bool tensor, got dtype {m.dtype}")
    try:
        torch.broadcast_shapes(m.shape, shape)
    except RuntimeError:
        raise ValueError(
            f"mask_mod returned shape {tuple(m.shape)}, which does not broadcast to "
            f"(B, H, queries, keys) = {shape}"
        ) from None
    while m.dim() < 4:
        m = m.unsqueeze(0)
    return m


def masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    r"""Softmax over the last dim that is exactly 0 at masked entries and on fully masked rows.

    .. math::

        w_{ij} = \frac{m_{ij}\, e^{s_{ij} - \max_j s_{ij}}}
                      {\sum_j m_{ij}\, e^{s_{ij} - \max_j s_{ij}}}

    Low-precision scores are accumulated in float32 and cast back.
    """
    dtype = scores.dtype
    if scores.shape[-1] == 0:  # no key at all (Lk = 0): every row is empty, weights are (…, 0)
        return scores.clone()
    s = scores.float() if dtype in (torch.float16, torch.bfloat16) else scores
    if mask is not None:
        s = torch.where(mask, s, float("-inf"))
    row_max = s.amax(dim=-1, keepdim=True)
    # A fully masked row has max -inf; shift by 0 there so exp gives exact zeros, not NaN.
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    e = torch.exp(s - row_max)
    denom = e.sum(dim=-1, keepdim=True)
    w = e / torch.where(denom > 0, denom, torch.ones_like(denom))
    return w.to(dtype)


def _dead_keys_zeroed(v: Tensor, mask: Tensor | None, H: int) -> Tensor:
    """Zero key/value rows that no query may see, so ``0 * NaN`` cannot reach the output."""
    if mask is None:
        return v
    dead = ~mask.any(dim=-2)  # (B|1, H|1, Lk)
    if not bool(dead.any()):
        return v
    v = repeat_kv(v, H) if dead.shape[1] != 1 else v
    return v.masked_fill(dead.unsqueeze(-1), 0.0)


# --------------------------------------------------------------------------- backends


def _reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask_mod: MaskMod | None,
    score_mod: ScoreMod | None,
    scale: float,
    dropout_p: float,
    return_weights: bool,
) -> AttentionOutput:
    """Eager math: materialises the (B, H, Lq, Lk) score matrix. Always gives weights."""
    B, H, Lq, _ = q.shape
    Lk = k.shape[2]
    k, v = repeat_kv(k, H), repeat_kv(v, H)  # (B, H, Lk, D), (B, H, Lk, Dv)
    mask = mask_tensor(mask_mod, B, H, Lq, Lk, q.device) if mask_mod is not None else None
    # Keys no query may see are zeroed: torch.where hides their scores in the forward pass, but
    # the backward pass forms dq = dS · k, and 0 · NaN = NaN.
    k = _dead_keys_zeroed(k, mask, H)
    # s_ij = scale · q_i · k_j                                          (B, H, Lq, Lk)
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale
    if score_mod is not None:
        scores = score_mod(scores, *index_grids(B, H, Lq, Lk, q.device))
    weights = masked_softmax(scores, mask)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    v = _dead_keys_zeroed(v, mask, H)
    # o_i = Σ_j w_ij v_j                                                (B, H, Lq, Dv)
    out = torch.matmul(weights, v)
    return AttentionOutput(out, weights if return_weights else None)


def _sdpa(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask_mod: MaskMod | None,
    score_mod: ScoreMod | None,
    scale: float,
    dropout_p: float,
    return_weights: bool,
) -> AttentionOutput:
    """PyTorch's fused ``F.scaled_dot_product_attention``: fast, but never gives weights."""
    from . import masks  # local: masks imports core

    B, H, Lq, _ = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    gqa = Hkv != H
    if mask_mod is None:
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout_p, scale=scale, enable_gqa=gqa
        )
        return AttentionOutput(out, None)
    if mask_mod is masks.causal and Lq == Lk:
        # Our bottom-right convention equals SDPA's top-left one when Lq == Lk.
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout_p, scale=scale, is_causal=True, enable_gqa=gqa
        )
        return AttentionOutput(out, None)
    mask = mask_tensor(mask_mod, B, H, Lq, Lk, q.device)
    # The fused kernel adds the mask to q·k, and NaN + (-inf) = NaN: zero keys *and* values that
    # no query may see, so a NaN or inf in a padded key cannot leak into the output.
    k = _dead_keys_zeroed(k, mask, H)
    v = _dead_keys_zeroed(v, mask, H)
    if v.shape[1] != Hkv:  # dead-key zeroing expanded k and v per head
        gqa = False
    live = mask.any(dim=-1, keepdim=True)  # (B|1, H|1, Lq, 1): rows with at least one key
    all_live = bool(live.all())
    # A row with no key would make the fused softmax 0/0 = NaN (and NaN gradients); let such
    # rows see every key, then zero their output.
    safe_mask = mask if all_live else mask | ~live
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=safe_mask, dropout_p=dropout_p, scale=scale, enable_gqa=gqa
    )
    if not all_live:
        out = torch.where(live, out, torch.zeros((), dtype=out.dtype, device=out.device))
    return AttentionOutput(out, None)


register_backend(
    "reference", _reference, gives_weights=True, supports_score_mod=True, supports_dropout=True
)
register_backend(
    "sdpa", _sdpa, gives_weights=False, supports_score_mod=False, supports_dropout=True
)


# --------------------------------------------------------------------------- auto

# ``auto`` sends a mask whose live 128 × 128 tiles are at most this fraction of all tiles to the
# tiled backend (empty tiles skipped), and denser masks to SDPA with the lowered dense mask.
# Measured with ``python -m benchmarks.auto_threshold`` (docs/design.md, "auto"): at L = 4096
# tiled took 0.14× SDPA's time at 6% live tiles, 0.49× at 40%, 0.78× at 77%, 1.0× at 95%.
TILED_MAX_LIVE_FRACTION = 0.75
# Below this many tiles (e.g. 512 × 512) SDPA's dense mask is cheap; no block map is built.
TILED_MIN_TILES = 16

_WEIGHTS_BUDGET = {
    "bytes": int(float(os.environ.get("EXPLORE_ATTENTION_WEIGHTS_GIB", "2")) * 2**30)
}


def set_weights_budget(gib: float) -> None:
    """Set how many GiB the ``(B, H, Lq, Lk)`` weights may take before :func:`attend` refuses
    to materialise them (default 2, or ``EXPLORE_ATTENTION_WEIGHTS_GIB``)."""
    if isinstance(gib, bool) or not isinstance(gib, (int, float)) or not gib > 0:
        raise ValueError(f"gib must be a positive number, got {gib!r}")
    _WEIGHTS_BUDGET["bytes"] = int(gib * 2**30)


def weights_budget() -> float:
    """The budget in GiB for materialised attention weights (:func:`set_weights_budget`)."""
    return _WEIGHTS_BUDGET["bytes"] / 2**30


def _check_weights_budget(
    backend: str, q: Tensor, k: Tensor, return_weights: bool, auto: bool
) -> None:
    """Refuse, before allocating, a ``(B, H, Lq, Lk)`` matrix larger than the budget."""
    B, H, Lq, _ = q.shape
    Lk = k.shape[2]
    need = B * H * Lq * Lk * q.element_size()
    if need <= _WEIGHTS_BUDGET["bytes"]:
        return
    if return_weights:
        way_out = "pass return_weights=False (auto then picks a backend that never forms them)"
    else:
        way_out = "use backend='auto', 'sdpa' or 'tiled', which never form them"
    raise ValueError(
        f"backend={backend!r}{' (chosen by auto)' if auto else ''} would materialise attention "
        f"weights of shape (B, H, Lq, Lk) = {(B, H, Lq, Lk)} in {q.dtype}: "
        f"{need / 2**30:.2f} GiB, over the budget of {weights_budget():.2f} GiB; "
        f"{way_out}, or raise the budget with core.set_weights_budget(gib)"
    )


def live_tile_fraction(
    mask_mod: MaskMod, B: int, H: int, Lq: int, Lk: int, device: torch.device | str | None = None
) -> float:
    """Fraction of the 128 × 128 tiles of the score matrix the mask leaves non-empty (the
    tiled backend's block map, cached per mask and shape)."""
    from . import tiled  # local: tiled imports core

    state = tiled.block_map(mask_mod, B, H, Lq, Lk, device=device)
    return float((state != tiled.EMPTY).sum()) / max(1, state.numel())


def choose_backend(
    q: Tensor,
    k: Tensor,
    mask_mod: MaskMod | None,
    score_mod: ScoreMod | None,
    dropout_p: float,
    return_weights: bool,
) -> str:
    """What ``backend="auto"`` runs: the fastest backend that honours the request.

    * weights wanted → ``reference`` (the only one that forms them);
    * a ``score_mod`` → ``tiled`` (``reference`` with dropout, which tiled cannot apply);
    * no mask, or :func:`masks.causal` with ``Lq == Lk`` → ``sdpa`` (its causal fast path);
    * a mask whose live tiles are at most :data:`TILED_MAX_LIVE_FRACTION` of all 128 × 128
      tiles (on a CPU, at least :data:`TILED_MIN_TILES` tiles, no dropout) → ``tiled``, which
      skips the empty ones;
    * otherwise ``sdpa`` with the mask lowered to a dense boolean ``attn_mask``.
    """
    from . import masks  # local: masks imports core

    if return_weights:
        return "reference"
    if score_mod is not None:
        return "tiled" if dropout_p == 0.0 and "tiled" in BACKENDS else "reference"
    if mask_mod is None or dropout_p > 0.0 or "tiled" not in BACKENDS:
        return "sdpa"
    B, H, Lq, _ = q.shape
    Lk = k.shape[2]
    if (mask_mod is masks.causal and Lq == Lk) or q.device.type != "cpu":
        return "sdpa"
    if math.ceil(Lq / 128) * math.ceil(Lk / 128) < TILED_MIN_TILES:
        return "sdpa"
    live = live_tile_fraction(mask_mod, B, H, Lq, Lk, q.device)
    return "tiled" if live <= TILED_MAX_LIVE_FRACTION else "sdpa"


# --------------------------------------------------------------------------- attend


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    mask_mod: MaskMod | None = None,
    score_mod: ScoreMod | None = None,
    scale: float | None = None,
    dropout_p: float = 0.0,
    backend: str = "auto",
    return_weights: bool = True,
) -> AttentionOutput:
    r"""Scaled dot-product attention with pluggable masks, score rewrites and backends.

    .. math::

        s_{ij} = \mathrm{score\_mod}(\alpha\, q_i \cdot k_j,\ b, h, i, j), \qquad
        w_{ij} = \frac{\mathbb{1}[\mathrm{mask}(b,h,i,j)]\, e^{s_{ij}}}
                      {\sum_{j'} \mathbb{1}[\mathrm{mask}(b,h,i,j')]\, e^{s_{ij'}}}, \qquad
        o_i = \sum_j w_{ij} v_j

    with :math:`\alpha = 1/\sqrt{D}` unless ``scale`` is given (Vaswani et al. 2017, Eq. 1,
    arXiv:1706.03762).

    Args:
        q: queries ``(B, H, Lq, D)``.
        k: keys ``(B, Hkv, Lk, D)``; ``H % Hkv == 0`` (GQA / MQA share key heads).
        v: values ``(B, Hkv, Lk, Dv)``.
        mask_mod: ``(b, h, q_idx, kv_idx) -> bool``, True = may attend (see module docstring
            for the position convention when ``Lq != Lk``).
        score_mod: ``(score, b, h, q_idx, kv_idx) -> score``, applied after scaling.
        scale: multiplies ``q·k``; default ``1/sqrt(D)``. Negative values are allowed.
        dropout_p: probability of zeroing each attention weight (survivors are scaled by
            ``1/(1-p)``), in [0, 1). It is applied whenever it is > 0: ``attend`` is a function
            and knows no training mode, so a module passes ``self.dropout if self.training
            else 0.0`` (as :class:`MultiHeadAttention` does). ``tiled`` and ``flex`` refuse it.
        backend: ``"reference"`` (eager, gives weights), ``"sdpa"`` (PyTorch's fused kernel,
            no weights), ``"tiled"`` (flash-style online softmax, skips empty tiles, no
            weights), ``"flex"`` (FlexAttention) or ``"auto"`` (:func:`choose_backend`: the
            fastest one that honours the request, looking at the mask).
        return_weights: return the attention matrix actually applied (after dropout, as
            ``nn.MultiheadAttention`` does). A backend that cannot compute it returns ``None``
            and warns. The matrix is ``B·H·Lq·Lk`` numbers: over :func:`weights_budget` GiB
            (default 2) a ``ValueError`` says so before anything is allocated.

    Returns:
        :class:`AttentionOutput` with ``output (B, H, Lq, Dv)`` and ``weights (B, H, Lq, Lk)``.
    """
    check_qkv(q, k, v)
    if mask_mod is not None and not callable(mask_mod):
        raise TypeError(
            f"mask_mod must be a callable (b, h, q_idx, kv_idx) -> bool, got "
            f"{type(mask_mod).__name__}; build one with explore_attention.attention.masks"
        )
    if score_mod is not None and not callable(score_mod):
        raise TypeError(
            f"score_mod must be a callable (score, b, h, q_idx, kv_idx) -> score, got "
            f"{type(score_mod).__name__}"
        )
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, (int, float)):
        raise TypeError(f"dropout_p must be a float in [0, 1), got {dropout_p!r}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if scale is not None and (not isinstance(scale, (int, float)) or isinstance(scale, bool)):
        raise TypeError(f"scale must be a float or None, got {scale!r}")
    auto = backend == "auto"
    if auto:
        backend = choose_backend(q, k, mask_mod, score_mod, float(dropout_p), return_weights)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {['auto', *sorted(BACKENDS)]}, got {backend!r}")
    impl = BACKENDS[backend]
    if score_mod is not None and not impl.supports_score_mod:
        raise ValueError(
            f"backend={backend!r} cannot apply a score_mod; use backend='reference' or 'tiled'"
        )
    if dropout_p > 0.0 and not impl.supports_dropout:
        raise ValueError(f"backend={backend!r} does not support dropout_p > 0")
    B, H, Lq, _ = q.shape
    for mod in (mask_mod, score_mod):
        check_mod_shapes(mod, B, H, Lq, k.shape[2])
    if impl.gives_weights:
        _check_weights_budget(backend, q, k, return_weights, auto)
    if return_weights and not impl.gives_weights:
        warnings.warn(
            f"backend={backend!r} cannot return attention weights; weights is None. "
            "Use backend='reference' (or 'auto') to get them, or pass return_weights=False.",
            stacklevel=2,
        )
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    return impl.fn(q, k, v, mask_mod, score_mod, float(scale), float(dropout_p), return_weights)
