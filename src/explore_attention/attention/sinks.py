r"""Attention sinks: StreamingLLM (Xiao et al. 2023, "Efficient Streaming Language Models with
Attention Sinks", arXiv:2309.17453).

Trained language models pour a large share of every query's attention onto the *first* few
tokens, whatever they say: softmax must put its mass somewhere, and the initial tokens, visible
to every later query, become the place to dump it ("attention sinks", §3.1). A plain sliding
window evicts them and perplexity explodes once the text exceeds the window. StreamingLLM keeps
the first :math:`s` tokens plus the :math:`w` most recent ones (§3.2):

.. math::

    S_i = \{j \le i : j < s\} \cup \{j \le i : i - j < w\}

* :func:`sink_window` is that set as a ``mask_mod`` (training / prefill / drawing);
* :class:`SinkKVCache` is the streaming decoder's cache: it holds at most :math:`s + w` keys and
  values, evicting the middle. Keys are stored *before* RoPE and re-rotated with their
  positions *in the cache* (§3.2: "StreamingLLM focuses on positions within the cache rather
  than those in the original text"), so relative distances never exceed the cache size.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..checks import check_int
from . import masks
from .core import MaskMod

__all__ = ["SinkKVCache", "sink_window"]


def _int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def sink_window(num_sinks: int, window: int) -> MaskMod:
    r"""Causal mask keeping ``num_sinks`` initial tokens and a ``window`` of recent ones
    (the query included): :math:`j \le i \wedge (j < s \vee i - j < w)`."""
    check_int("num_sinks", num_sinks, 0)
    check_int("window", window, 1)

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        d = q_idx - kv_idx
        return (d >= 0) & ((kv_idx < num_sinks) | (d < window))

    return masks.named(mod, f"sinks_{num_sinks}_window_{window}")


class SinkKVCache:
    """A streaming KV cache that keeps ``num_sinks`` first tokens and the last ``window`` tokens.

    ``append(k (B, Hkv, n, D), v (B, Hkv, n, Dv))`` adds the new tokens, evicts the middle and
    returns the kept keys and values ``(B, Hkv, <= num_sinks + window, ·)``. Memory is bounded
    by ``num_sinks + window`` tokens however long the stream. :meth:`positions` gives the
    in-cache positions ``0 .. length-1`` to rotate keys with (RoPE) at attention time; the query
    of the newest token sits at position ``length - 1``.
    """

    def __init__(self, num_sinks: int, window: int) -> None:
        self.num_sinks = _int("num_sinks", num_sinks, 0)  # initial tokens never evicted
        self.window = _int("window", window, 1)  # most recent tokens kept
        self.keys: Tensor | None = None  # (B, Hkv, length, D), un-rotated
        self.values: Tensor | None = None  # (B, Hkv, length, Dv)
        self.seen = 0  # tokens appended since creation (positions in the original text)

    @property
    def capacity(self) -> int:
        return self.num_sinks + self.window

    @property
    def length(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    def positions(self) -> Tensor:
        """In-cache positions of the kept tokens, ``0 .. length-1``."""
        device = None if self.keys is None else self.keys.device
        return torch.arange(self.length, device=device)

    def original_positions(self) -> Tensor:
        """Where each kept token sits in the original stream (for drawing / debugging)."""
        n, s = self.length, min(self.num_sinks, self.length)
        recent = torch.arange(self.seen - (n - s), self.seen)
        return torch.cat([torch.arange(s), recent])

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        for name, t in (("k", k), ("v", v)):
            if not isinstance(t, Tensor) or t.dim() != 4:
                got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"{name} must have shape (B, Hkv, n, D), got {got}")
        if k.shape[:3] != v.shape[:3]:
            raise ValueError(
                f"k and v must agree on (B, Hkv, n): {tuple(k.shape)}, {tuple(v.shape)}"
            )
        if self.keys is not None and (
            k.shape[:2] != self.keys.shape[:2] or k.shape[3] != self.keys.shape[3]
        ):
            raise ValueError(
                f"k has shape {tuple(k.shape)}, the cache holds {tuple(self.keys.shape)}"
            )
        keys = k if self.keys is None else torch.cat([self.keys, k], dim=2)  # (B, Hkv, n', D)
        values = v if self.values is None else torch.cat([self.values, v], dim=2)
        self.seen += k.shape[2]
        n = keys.shape[2]
        if n > self.capacity:
            s = self.num_sinks
            # keep [0, s) and the last `window`: evict the middle              (B, Hkv, s + w, ·)
            keys = torch.cat([keys[:, :, :s], keys[:, :, n - self.window :]], dim=2)
            values = torch.cat([values[:, :, :s], values[:, :, n - self.window :]], dim=2)
        self.keys, self.values = keys, values
        return keys, values
