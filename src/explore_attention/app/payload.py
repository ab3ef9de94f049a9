"""Compact attention arrays for the page: quantised, base64-encoded, decoded by ``views.js``.

A weight :math:`w \\in [0, 1]` is sent as

* ``"u16"``: :math:`\\operatorname{round}(65535\\, w)` — exact to :math:`7.6 \\cdot 10^{-6}`, used
  while the array has at most :data:`U16_MAX_VALUES` entries;
* ``"u8sqrt"``: :math:`\\operatorname{round}(255 \\sqrt{w})`, decoded as :math:`(q / 255)^2` —
  one byte per weight, finest where weights are small (error at most
  :math:`\\sqrt{w} / 255 + 1/255^2 \\le 0.004`), for longer inputs.

Both are little-endian and base64-encoded: a 300-token, 12-head layer (1.08 M weights) is 1.4 MB
of JSON instead of ~8 MB as decimal text.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["U16_MAX_VALUES", "pack", "unpack"]

U16_MAX_VALUES = 400_000  # above this many weights, one byte per weight


def pack(weights: Tensor, encoding: str | None = None) -> dict[str, Any]:
    """``{"shape", "encoding", "data"}`` for a tensor of weights in ``[0, 1]``."""
    w = weights.detach().float().cpu().clamp(0, 1)
    if encoding is None:
        encoding = "u16" if w.numel() <= U16_MAX_VALUES else "u8sqrt"
    if encoding == "u16":
        q = (w * 65535).round().numpy().astype("<u2")
    elif encoding == "u8sqrt":
        q = (w.sqrt() * 255).round().numpy().astype(np.uint8)
    else:
        raise ValueError(f"encoding must be 'u16' or 'u8sqrt', got {encoding!r}")
    return {
        "shape": list(w.shape),
        "encoding": encoding,
        "data": base64.b64encode(q.tobytes()).decode("ascii"),
    }


def unpack(packed: dict[str, Any]) -> Tensor:
    """The inverse of :func:`pack` (what the page's ``EAViews.unpack`` computes)."""
    raw = base64.b64decode(packed["data"])
    if packed["encoding"] == "u16":
        w = torch.from_numpy(np.frombuffer(raw, dtype="<u2").astype(np.float32)) / 65535
    else:
        w = (torch.from_numpy(np.frombuffer(raw, dtype=np.uint8).astype(np.float32)) / 255) ** 2
    return w.reshape(packed["shape"])
