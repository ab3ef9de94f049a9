r"""Attention masks as ``mask_mod`` functions: ``(b, h, q_idx, kv_idx) -> bool``, True = attend.

The signature is FlexAttention's (PyTorch ≥ 2.5), so a mask is a tiny named function that can be
evaluated densely (:func:`materialize`), lowered to SDPA's boolean ``attn_mask``, or skipped block
by block by the tiled backend. Functions receive broadcastable index tensors of any shape and
must use tensor operations: the index contract of :mod:`explore_attention.attention.core`.

Position convention (see :mod:`explore_attention.attention.core`): ``q_idx`` is the query's
position on the key axis, ``i + (Lk - Lq)``. So :func:`causal` aligns the *last* query with the
*last* key — the KV-cache convention (PyTorch's ``causal_lower_right``). With ``Lq > Lk`` the first
``Lq - Lk`` queries see no key and their output is 0.

Conventions that differ across libraries, stated once:

* a ``mask_mod`` returns True where attention is **allowed**;
* a ``key_padding_mask`` tensor (as in ``nn.MultiheadAttention``) is True where a key is
  **padding**; :func:`key_padding` converts it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..checks import check_int
from .core import MaskMod, ScoreMod, check_mod_shapes, mask_tensor, with_shape_check

__all__ = [
    "and_masks",
    "causal",
    "from_bool",
    "full",
    "key_bias",
    "key_padding",
    "materialize",
    "named",
    "or_masks",
    "padding",
    "sliding_window",
]


def named(fn: MaskMod, name: str) -> MaskMod:
    """Give a closure a readable ``__name__`` so plots and reprs label themselves."""
    fn.__name__ = name
    fn.__qualname__ = name
    return fn


def full(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
    """Every query attends to every key (the unmasked case, for composing and drawing)."""
    return torch.ones_like(q_idx - kv_idx, dtype=torch.bool)


def causal(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
    r"""Causal (autoregressive) mask, :math:`j \le i`: a token sees itself and the past.

    Bottom-right aligned when ``Lq != Lk`` (see the module docstring).
    """
    return kv_idx <= q_idx


def sliding_window(window: int, *, causal: bool = True) -> MaskMod:
    r"""Local attention to a band of ``window`` positions around each query (the paper's *w*,
    the whole band; docs/design.md "Vocabulary").

    * ``causal=True``: :math:`0 \le i - j < w` — the query and the ``w - 1`` keys before it
      (Mistral's sliding window W; Jiang et al. 2023, arXiv:2310.06825).
    * ``causal=False``: :math:`|i - j| \le \lfloor w/2 \rfloor` — ``w // 2`` keys on each side
      and the query itself (Longformer's "½w tokens on each side", Beltagy et al. 2020, §3.1,
      arXiv:2004.05150); an even ``w`` gives ``w + 1`` positions, as in the paper.
    """
    check_int("window", window, 1)

    if causal:

        def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            d = q_idx - kv_idx
            return (d >= 0) & (d < window)

        return named(mod, f"sliding_window_{window}")

    half = window // 2

    def mod_bi(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return (q_idx - kv_idx).abs() <= half

    return named(mod_bi, f"bidirectional_window_{window}")


def _check_int_tensor(name: str, t: Tensor, dims: int) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got dtype {t.dtype}")
    if t.dim() != dims:
        raise ValueError(f"{name} must have {dims} dimension(s), got shape {tuple(t.shape)}")


def _check_batch(what: str, size: int) -> Callable[[int, int, int, int], None]:
    def check(B: int, H: int, Lq: int, Lk: int) -> None:
        if size != B:
            raise ValueError(f"{what} was built for batch size {size}, attention has B={B}")

    return check


def padding(lengths: Tensor | Sequence[int]) -> MaskMod:
    """Key padding given the valid length of each batch element: key ``j`` of item ``b`` is kept
    iff ``j < lengths[b]``. ``lengths`` has shape ``(B,)``; it is read when the mask is
    evaluated, so an in-place edit of it changes the mask."""
    lengths = torch.as_tensor(lengths) if not isinstance(lengths, Tensor) else lengths
    _check_int_tensor("lengths", lengths, 1)
    if bool((lengths < 0).any()):
        raise ValueError(f"lengths must be >= 0, got {lengths.tolist()}")

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return kv_idx < lengths.to(kv_idx.device)[b]  # lengths indexed by b: any index shape

    with_shape_check(mod, _check_batch("padding(lengths)", lengths.shape[0]))
    return named(mod, "padding")


def _check_key_tensor(name: str, t: Tensor) -> Callable[[int, int, int, int], None]:
    def check(B: int, H: int, Lq: int, Lk: int) -> None:
        if tuple(t.shape) != (B, Lk):
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected (B, Lk) = {(B, Lk)}")

    return check


def key_padding(key_padding_mask: Tensor) -> MaskMod:
    """Convert a PyTorch-style ``key_padding_mask`` ``(B, Lk)``, **True = padding**, to a
    mask_mod."""
    if not isinstance(key_padding_mask, Tensor):
        raise TypeError(
            f"key_padding_mask must be a torch.Tensor, got {type(key_padding_mask).__name__}"
        )
    if key_padding_mask.dtype != torch.bool:
        raise TypeError(
            f"key_padding_mask must be a bool tensor (True = padding), got dtype "
            f"{key_padding_mask.dtype}; for an additive float mask use key_bias"
        )
    if key_padding_mask.dim() != 2:
        raise ValueError(
            f"key_padding_mask must have shape (B, Lk), got {tuple(key_padding_mask.shape)}"
        )
    keep = ~key_padding_mask  # (B, Lk)

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return keep.to(kv_idx.device)[b, kv_idx]

    with_shape_check(mod, _check_key_tensor("key_padding_mask", keep))
    return named(mod, "key_padding")


def key_bias(bias: Tensor) -> ScoreMod:
    r"""A float ``(B, Lk)`` bias added to every query's score for key ``j`` of item ``b``, as a
    score_mod: :math:`s_{ij} \mathrel{+}= \text{bias}_{b,j}` (PyTorch's float
    ``key_padding_mask``: ``-inf`` or a large negative number at padding)."""
    if not isinstance(bias, Tensor) or not bias.is_floating_point() or bias.dim() != 2:
        got = f"{bias.dtype} {tuple(bias.shape)}" if isinstance(bias, Tensor) else type(bias)
        raise TypeError(f"bias must be a float tensor of shape (B, Lk), got {got}")

    def mod(score: Tensor, b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return score + bias.to(device=score.device, dtype=score.dtype)[b, kv_idx]

    with_shape_check(mod, _check_key_tensor("key_bias(bias)", bias))
    return named(mod, "key_bias")


def from_bool(mask: Tensor) -> MaskMod:
    """Wrap a boolean tensor ``(..., Lq, Lk)`` (True = attend, broadcastable to (B, H, Lq, Lk))
    as a mask_mod. Row ``r`` of the tensor is query ``r``, at position ``r + (Lk - Lq)`` on the
    key axis (the position convention), so the mod reads ``mask[..., q_idx - (Lk - Lq), kv_idx]``.
    """
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = attend), got dtype {mask.dtype}")
    if not 2 <= mask.dim() <= 4:
        raise ValueError(f"mask must have 2 to 4 dims (..., Lq, Lk), got {tuple(mask.shape)}")
    m4 = mask.reshape((1,) * (4 - mask.dim()) + tuple(mask.shape))  # (B|1, H|1, Lq, Lk)
    mB, mH, mLq, mLk = m4.shape
    offset = mLk - mLq

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        mm = m4.to(q_idx.device)
        bi = b if mB > 1 else b * 0  # a size-1 dim broadcasts: index 0
        hi = h if mH > 1 else h * 0
        return mm[bi, hi, q_idx - offset, kv_idx]

    def check(B: int, H: int, Lq: int, Lk: int) -> None:
        if (mLq, mLk) != (Lq, Lk):
            raise ValueError(f"mask has shape (..., {mLq}, {mLk}), expected (..., {Lq}, {Lk})")
        for dim, size, want in ((0, mB, B), (1, mH, H)):
            if size not in (1, want):
                raise ValueError(
                    f"mask dim {dim} has size {size}, expected 1 or {want}; "
                    f"mask shape {tuple(mask.shape)}"
                )

    with_shape_check(mod, check)
    return named(mod, "from_bool")


def _combined_check(mods: Sequence[object]) -> Callable[[int, int, int, int], None]:
    def check(B: int, H: int, Lq: int, Lk: int) -> None:
        for m in mods:
            check_mod_shapes(m, B, H, Lq, Lk)

    return check


def and_masks(*mods: MaskMod) -> MaskMod:
    """Intersection: attend where *every* mask allows it."""
    if not mods:
        raise ValueError("and_masks needs at least one mask_mod")

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        out = mods[0](b, h, q_idx, kv_idx)
        for m in mods[1:]:
            out = out & m(b, h, q_idx, kv_idx)
        return out

    with_shape_check(mod, _combined_check(mods))
    return named(mod, " & ".join(getattr(m, "__name__", "mask") for m in mods))


def or_masks(*mods: MaskMod) -> MaskMod:
    """Union: attend where *any* mask allows it."""
    if not mods:
        raise ValueError("or_masks needs at least one mask_mod")

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        out = mods[0](b, h, q_idx, kv_idx)
        for m in mods[1:]:
            out = out | m(b, h, q_idx, kv_idx)
        return out

    with_shape_check(mod, _combined_check(mods))
    return named(mod, " | ".join(getattr(m, "__name__", "mask") for m in mods))


def materialize(
    mask_mod: MaskMod,
    Lq: int,
    Lk: int | None = None,
    B: int = 1,
    H: int = 1,
    device: torch.device | str | None = None,
) -> Tensor:
    """Evaluate ``mask_mod`` densely: a bool tensor ``(B, H, Lq, Lk)``, True = attend.

    Use it to draw a mask, to hand it to SDPA, or to count the work a sparse pattern saves.
    """
    Lk = Lq if Lk is None else Lk
    for name, val in (("Lq", Lq), ("Lk", Lk), ("B", B), ("H", H)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    return mask_tensor(mask_mod, B, H, Lq, Lk, device).expand(B, H, Lq, Lk).contiguous()
