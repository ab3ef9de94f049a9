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

    ``append(k (B, Hkv, n, D), v (B, Hkv, n, Dv))`` adds ``n`` new tokens and returns the keys
    and values *their queries* need: the sinks, the ``window - 1`` tokens before the chunk and
    the chunk itself (at most ``num_sinks + window - 1 + n``). Attend to them with
    ``mask_mod=sink_window(num_sinks, window)``: in-cache positions keep every distance except
    the jump after the sinks, so the stream's mask is also the cache's (bottom-right aligned, the
    chunk's queries are the last ``n`` positions). For ``n = 1`` every returned key is visible
    and the mask may be omitted. Afterwards the cache keeps the sinks and the last ``window``
    tokens, so memory is bounded by ``num_sinks + window`` however long the stream.

    Keys are stored un-rotated: rotate the returned keys with their in-cache positions
    ``0 .. n_returned - 1`` (:meth:`positions` after a one-token append) and the queries with
    the last ``n`` of them (§3.2).
    """

    def __init__(self, num_sinks: int, window: int) -> None:
        self.num_sinks = check_int("num_sinks", num_sinks, 0)  # initial tokens never evicted
        self.window = check_int("window", window, 1)  # most recent tokens kept
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

    def _check(self, k: Tensor, v: Tensor) -> None:
        for name, t in (("k", k), ("v", v)):
            if not isinstance(t, Tensor) or t.dim() != 4:
                got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"{name} must have shape (B, Hkv, n, D), got {got}")
        if k.shape[:3] != v.shape[:3]:
            raise ValueError(
                f"k and v must agree on (B, Hkv, n): {tuple(k.shape)}, {tuple(v.shape)}"
            )
        for name, t, held in (("k", k, self.keys), ("v", v, self.values)):
            if held is not None and (t.shape[:2] != held.shape[:2] or t.shape[3] != held.shape[3]):
                raise ValueError(
                    f"{name} has shape {tuple(t.shape)}, the cache holds {tuple(held.shape)}"
                )

    def _keep(self, x: Tensor, recent: int) -> Tensor:
        """The sinks and the last ``recent`` tokens of ``x (B, Hkv, n', ·)``."""
        n, s = x.shape[2], self.num_sinks
        if n <= s + recent:
            return x
        return torch.cat([x[:, :, :s], x[:, :, n - recent :]], dim=2)  # evict the middle

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        self._check(k, v)
        n = k.shape[2]
        keys = k if self.keys is None else torch.cat([self.keys, k], dim=2)  # (B, Hkv, n', D)
        values = v if self.values is None else torch.cat([self.values, v], dim=2)
        self.seen += n
        # the chunk's first query sees the window - 1 tokens before it; after the append the
        # cache keeps `window` recent tokens (StreamingLLM's cache of num_sinks + window)
        self.keys, self.values = self._keep(keys, self.window), self._keep(values, self.window)
        need = self.window - 1 + n
        return self._keep(keys, need), self._keep(values, need)
