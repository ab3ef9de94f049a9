"""What the mechanisms outside :func:`~explore_attention.attention.core.attend` share: linear
attention, Performer and LSH attention (:mod:`.linear`, :mod:`.performer`, :mod:`.lsh`).

* :func:`causal_only` — these mechanisms take ``mask_mod`` like ``attend`` does ("causal is a
  mask", ``docs/design.md``), but their algorithms can honour only no mask or
  :func:`masks.causal <explore_attention.attention.masks.causal>` (a prefix sum, a sort into
  chunks): anything else raises ``NotImplementedError`` naming the mechanism.
* :func:`by_head_groups` — runs a per-head computation on groups of heads in parallel Python
  threads on a multi-core CPU without autograd.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from . import masks
from .core import MaskMod

__all__ = ["SUPPORTED_MASKS", "by_head_groups", "causal_only"]

SUPPORTED_MASKS = "mask_mod=None (every key) or mask_mod=masks.causal"


def causal_only(mask_mod: MaskMod | None, mechanism: str) -> bool:
    """``False`` for ``mask_mod=None``, ``True`` for :func:`masks.causal`; any other mask raises
    ``NotImplementedError`` naming ``mechanism`` and the masks it supports."""
    if mask_mod is None:
        return False
    if mask_mod is masks.causal:
        return True
    name = getattr(mask_mod, "__name__", type(mask_mod).__name__)
    raise NotImplementedError(
        f"{mechanism} supports {SUPPORTED_MASKS} only, got mask_mod={name}; "
        "use attend(q, k, v, mask_mod=...) for other masks"
    )


def by_head_groups(
    fn: Callable[..., Tensor], dtype: torch.dtype, *tensors: Tensor | None
) -> Tensor:
    """``fn(*tensors)`` → ``(B, H, Lq, Dv)`` of ``dtype``, where ``tensors[0]`` is ``(B, H, Lq, ·)``
    and ``tensors[-1]`` is ``(·, ·, ·, Dv)``, every tensor split along its head dimension (1)
    (a ``None`` is passed through).

    On a multi-threaded CPU without autograd, groups of heads run in parallel Python threads with
    single-threaded ops (``threads.run_parallel``): a chain of medium-sized operations otherwise
    pays an OpenMP hand-off per operation (costly on a busy machine). Inside a worker
    ``get_num_threads() == 1``, so nested calls run directly. ``fn`` must treat heads
    independently.
    """
    from .threads import run_parallel

    threads = torch.get_num_threads()
    q, v = tensors[0], tensors[-1]
    B, H, Lq = q.shape[:3]
    if threads < 2 or H < 2 or q.device.type != "cpu" or torch.is_grad_enabled():
        return fn(*tensors).to(dtype)
    n = min(threads, H)
    bounds = [(H * t // n, H * (t + 1) // n) for t in range(n)]  # contiguous head ranges
    out = torch.empty(B, H, Lq, v.shape[-1], dtype=dtype, device=q.device)  # (B, H, Lq, Dv)

    def task(a: int, b: int) -> None:
        out[:, a:b] = fn(*(None if t is None else t[:, a:b] for t in tensors))  # disjoint heads

    run_parallel([lambda a=a, b=b: task(a, b) for a, b in bounds])
    return out
