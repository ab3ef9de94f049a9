r"""The ``"flex"`` backend: our ``mask_mod``/``score_mod`` lowered to PyTorch's FlexAttention.

``torch.nn.attention.flex_attention`` (PyTorch ≥ 2.5) takes the same two callables as
:func:`~explore_attention.attention.core.attend`; its ``BlockMask`` plays the role of our tiled
backend's block map (empty tiles are skipped). Two differences are bridged here:

* **Position convention.** FlexAttention numbers queries ``0..Lq-1``; ours puts query ``i`` at
  ``i + (Lk - Lq)`` on the key axis. The wrappers add that offset before calling the user's mod.
* **Compilation.** Eagerly, FlexAttention runs an unfused reference that materialises the
  scores (fine for checking, O(L²) memory, forward only on CPU). Compiled with
  ``torch.compile`` it generates a fused kernel — on CPU this needs a C++ compiler and costs
  about a minute of compile time per new shape, so it is opt-in: call :func:`set_compiled` or
  set ``EXPLORE_ATTENTION_FLEX_COMPILE=1``.

The backend is registered only when FlexAttention can be imported; :func:`available` says why
not otherwise. Gradients are refused in eager mode (PyTorch's eager path does not support the
backward pass); use ``backend="tiled"`` to train.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from . import core
from .core import AttentionOutput, MaskMod, ScoreMod

__all__ = ["available", "flex_attention_backend", "set_compiled"]

try:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    _REASON = ""
except ImportError as err:  # PyTorch < 2.5
    create_block_mask = flex_attention = None  # type: ignore[assignment]
    _REASON = f"torch.nn.attention.flex_attention cannot be imported ({err})"

_STATE: dict[str, object] = {
    "compiled": os.environ.get("EXPLORE_ATTENTION_FLEX_COMPILE") == "1",
    "fn": None,
}


def available() -> tuple[bool, str]:
    """``(True, "")`` when FlexAttention can run here, else ``(False, why)``."""
    return (flex_attention is not None, _REASON)


def set_compiled(compiled: bool) -> None:
    """Use ``torch.compile(flex_attention)`` (fused, O(L·block) memory, slow first call) or the
    eager reference (unfused, no compile wait)."""
    if not isinstance(compiled, bool):
        raise TypeError(f"compiled must be a bool, got {type(compiled).__name__}")
    _STATE["compiled"] = compiled
    _STATE["fn"] = None


def _kernel() -> Callable[..., Tensor]:
    if _STATE["fn"] is None:
        _STATE["fn"] = (
            torch.compile(flex_attention, dynamic=False) if _STATE["compiled"] else flex_attention
        )
    return _STATE["fn"]  # type: ignore[return-value]


def _shift_mask(mask_mod: MaskMod, offset: int) -> MaskMod:
    if offset == 0:
        return mask_mod

    def shifted(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return mask_mod(b, h, q_idx + offset, kv_idx)

    return shifted


def _shift_score(score_mod: ScoreMod, offset: int) -> ScoreMod:
    if offset == 0:
        return score_mod

    def shifted(score: Tensor, b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return score_mod(score, b, h, q_idx + offset, kv_idx)

    return shifted


def flex_attention_backend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask_mod: MaskMod | None,
    score_mod: ScoreMod | None,
    scale: float,
    dropout_p: float,
    return_weights: bool,
) -> AttentionOutput:
    """``attend(..., backend="flex")``: FlexAttention with our position convention."""
    ok, why = available()
    if not ok:
        raise RuntimeError(f"backend='flex' is unavailable: {why}")
    if (
        not _STATE["compiled"]
        and torch.is_grad_enabled()
        and any(t.requires_grad for t in (q, k, v))
    ):
        raise ValueError(
            "backend='flex' runs FlexAttention eagerly, which has no backward pass on CPU; "
            "use backend='tiled' for gradients, or call flex.set_compiled(True)"
        )
    B, H, Lq, _ = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    offset = Lk - Lq
    block_mask = None
    if mask_mod is not None:
        block_mask = create_block_mask(
            _shift_mask(mask_mod, offset), B, H, Lq, Lk, device=str(q.device)
        )
    sm = _shift_score(score_mod, offset) if score_mod is not None else None
    with warnings.catch_warnings():
        # The eager path warns that it is unfused; that is documented above.
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        out = _kernel()(
            q, k, v, score_mod=sm, block_mask=block_mask, scale=scale, enable_gqa=Hkv != H
        )
    return AttentionOutput(out, None)


if available()[0]:
    core.register_backend(
        "flex",
        flex_attention_backend,
        gives_weights=False,
        supports_score_mod=True,
        supports_dropout=False,
    )
