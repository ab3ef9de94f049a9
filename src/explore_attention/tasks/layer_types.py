r"""Vaswani et al. 2017, Table 1, measured: self-attention vs recurrent vs convolutional layers.

"Attention Is All You Need" (arXiv:1706.03762), §4 "Why Self-Attention", Table 1 compares
layer types that map a sequence :math:`(x_1, \dots, x_n)`, :math:`x_i \in \mathbb{R}^d`, to
another of the same length, on three counts:

==========================  ====================  ===================  ==================
layer type                  complexity per layer  sequential ops       maximum path length
==========================  ====================  ===================  ==================
self-attention              O(n²·d)               O(1)                 O(1)
recurrent                   O(n·d²)               O(n)                 O(n)
convolutional               O(k·n·d²)             O(1)                 O(log_k n)
self-attention (restricted) O(r·n·d)              O(1)                 O(n/r)
==========================  ====================  ===================  ==================

(the convolutional path is O(log_k n) for *dilated* kernels and O(n/k) for contiguous ones, §4).
Here each count is **measured on a real layer**, not typed:

* **complexity** — :func:`flops`: multiply–adds counted by ``torch.utils.flop_counter`` while
  the layer runs, and :func:`seconds`: wall-clock time;
* **sequential operations** — :func:`sequential_operations`: the depth (longest chain of
  dependent operations) of the autograd graph the layer builds;
* **maximum path length** — :func:`max_path_length`: the longest shortest path, in layer
  applications (one recurrent step counts as one), from any input position to any output
  position it reaches, on the graph whose edges are the layer's non-zero Jacobian blocks.

Layers (``kind``): ``"self-attention"`` (one head, :math:`W_Q, W_K, W_V`, softmax scaled by
:math:`1/\sqrt{d}`), ``"recurrent"`` (an Elman ``nn.RNNCell`` stepped n times),
``"convolutional"`` (``nn.Conv1d`` with kernel k, "same" padding), ``"dilated-convolutional"``
(layer ℓ of a causal stack dilated by :math:`k^\ell`, as in WaveNet / ByteNet),
``"restricted"`` (self-attention over the band :math:`|i - j| \le \lfloor r/2 \rfloor`, the
library's ``window`` r).
"""

from __future__ import annotations

import math
import time
from collections import deque

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from ..checks import check_int

__all__ = [
    "KINDS",
    "flops",
    "make_layer",
    "max_path_length",
    "seconds",
    "sequential_operations",
    "table1",
]

KINDS = ("self-attention", "recurrent", "convolutional", "dilated-convolutional", "restricted")


class _SelfAttention(nn.Module):
    """One-head self-attention, optionally restricted to a band of width ``window``."""

    def __init__(self, d: int, window: int | None = None) -> None:
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.window = window

    def forward(self, x: Tensor) -> Tensor:  # x (n, d)
        n, d = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # (n, d) each
        if self.window is None:
            scores = q @ k.T / math.sqrt(d)  # (n, n): every pair, O(n²·d)
            return torch.softmax(scores, dim=-1) @ v  # (n, d)
        # restricted: each query scores only the r keys of its band, O(r·n·d)
        half = self.window // 2
        idx = torch.arange(n).unsqueeze(1) + torch.arange(-half, half + 1)  # (n, r)
        inside = (idx >= 0) & (idx < n)
        idx = idx.clamp(0, n - 1)
        kb, vb = k[idx], v[idx]  # (n, r, d)
        scores = (q.unsqueeze(1) @ kb.transpose(1, 2)).squeeze(1) / math.sqrt(d)  # (n, r)
        scores = scores.masked_fill(~inside, float("-inf"))
        return (torch.softmax(scores, dim=-1).unsqueeze(1) @ vb).squeeze(1)  # (n, d)


class _Recurrent(nn.Module):
    """Elman RNN: h_t = tanh(W x_t + U h_{t-1} + b), one step after another."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.cell = nn.RNNCell(d, d)

    def forward(self, x: Tensor) -> Tensor:  # x (n, d)
        h = x.new_zeros(1, x.shape[1])
        out = []
        for t in range(x.shape[0]):  # n dependent steps: nothing to parallelise
            h = self.cell(x[t : t + 1], h)
            out.append(h)
        return torch.cat(out)  # (n, d)


class _Convolutional(nn.Module):
    """Conv1d over positions, kernel k: centred ("same" padding) or, dilated, causal.

    A dilated stack (dilations 1, k, k², …) looks back only, as in WaveNet and ByteNet: output
    j reads j, j − δ, …, j − (k−1)δ, so every path moves forward and stays inside the sequence.
    """

    def __init__(self, d: int, kernel_size: int, dilation: int | None = None) -> None:
        super().__init__()
        self.left = 0 if dilation is None else dilation * (kernel_size - 1)
        pad = (kernel_size - 1) // 2 if dilation is None else 0
        self.conv = nn.Conv1d(d, d, kernel_size, padding=pad, dilation=dilation or 1)

    def forward(self, x: Tensor) -> Tensor:  # x (n, d)
        x = nn.functional.pad(x.T.unsqueeze(0), (self.left, 0))  # (1, d, left + n)
        return self.conv(x).squeeze(0).T  # (n, d)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def make_layer(
    kind: str, d: int, *, kernel_size: int = 3, window: int = 3, layer_index: int = 0
) -> nn.Module:
    """One layer of ``kind`` mapping ``(n, d) -> (n, d)``.

    ``kernel_size`` (k, odd) is for the convolutions; layer ``layer_index`` of a dilated stack
    has dilation ``k ** layer_index``. ``window`` (r, odd) is the restricted band's width.
    """
    _check_kind(kind)
    check_int("d", d)
    k = check_int("kernel_size", kernel_size, minimum=3)
    if k % 2 == 0:
        raise ValueError(f"kernel_size must be odd (centred 'same' kernel), got {k}")
    if kind == "self-attention":
        return _SelfAttention(d)
    if kind == "restricted":
        r = check_int("window", window, minimum=3)
        if r % 2 == 0:
            raise ValueError(f"window must be odd (a centred band), got {r}")
        return _SelfAttention(d, window=r)
    if kind == "recurrent":
        return _Recurrent(d)
    if kind == "convolutional":
        return _Convolutional(d, k)
    return _Convolutional(d, k, dilation=k ** check_int("layer_index", layer_index, 0))


def flops(kind: str, n: int, d: int, **layer_kw: int) -> int:
    """Floating-point operations of one forward pass over ``n`` positions (matmuls and
    convolutions, as ``torch.utils.flop_counter`` counts them: 2 per multiply–add)."""
    layer = make_layer(kind, d, **layer_kw)
    x = torch.randn(check_int("n", n), d)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        layer(x)
    return int(counter.get_total_flops())


def seconds(kind: str, n: int, d: int, *, repeats: int = 3, **layer_kw: int) -> float:
    """Best-of-``repeats`` wall-clock seconds of one forward pass (no autograd)."""
    layer = make_layer(kind, d, **layer_kw)
    x = torch.randn(check_int("n", n), d)
    best = math.inf
    with torch.no_grad():
        layer(x)  # warm-up
        for _ in range(check_int("repeats", repeats)):
            start = time.perf_counter()
            layer(x)
            best = min(best, time.perf_counter() - start)
    return best


def _graph_depth(out: Tensor) -> int:
    """Longest chain of autograd nodes from ``out`` back to the inputs (iterative DFS)."""
    depth: dict[object, int] = {}
    stack = [(out.grad_fn, False)]
    while stack:
        node, expanded = stack.pop()
        if node is None or node in depth:
            continue
        children = [c for c, _ in node.next_functions if c is not None]
        if expanded:
            depth[node] = 1 + max((depth[c] for c in children), default=0)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if c not in depth)
    return depth[out.grad_fn]


def sequential_operations(kind: str, n: int, d: int = 4, **layer_kw: int) -> int:
    """Depth of the autograd graph of one layer over ``n`` positions: the operations that
    must run one after another however many processors there are."""
    layer = make_layer(kind, d, **layer_kw)
    x = torch.randn(check_int("n", n), d, requires_grad=True)
    return _graph_depth(layer(x))


def _support(fn: nn.Module, x: Tensor) -> Tensor:
    """(n_out, n_in) bool: output position j depends on input position i (Jacobian ≠ 0)."""
    jac = torch.autograd.functional.jacobian(fn, x, vectorize=True)  # (n_out, d, n_in, d)
    return jac.abs().amax(dim=(1, 3)) > 0


def max_path_length(kind: str, n: int, d: int = 2, **layer_kw: int) -> int:
    """Longest shortest path (in layer applications) from an input position to an output
    position that depends on it, in a stack of layers of ``kind``.

    Recurrent: nodes are the inputs and hidden states, edges ``x_t → h_t`` and
    ``h_{t-1} → h_t`` read from the cell's Jacobian; one step is one hop. Others: stack
    layers until every output sees every input; the path length of (i, j) is the number of
    layers after which j first depends on i.
    """
    _check_kind(kind)
    check_int("n", n, minimum=2)
    torch.manual_seed(0)
    if kind == "recurrent":
        cell = make_layer(kind, d).cell
        x, h = torch.randn(1, d), torch.randn(1, d)
        dx, dh = torch.autograd.functional.jacobian(cell, (x, h))
        edges: dict[tuple[str, int], list[tuple[str, int]]] = {}
        for t in range(n):
            if bool(dx.abs().amax() > 0):
                edges.setdefault(("x", t), []).append(("h", t))
            if t > 0 and bool(dh.abs().amax() > 0):
                edges.setdefault(("h", t - 1), []).append(("h", t))
        longest = 0
        for i in range(n):  # breadth-first search from every input position
            dist = {("x", i): 0}
            queue = deque([("x", i)])
            while queue:
                node = queue.popleft()
                for nxt in edges.get(node, []):
                    if nxt not in dist:
                        dist[nxt] = dist[node] + 1
                        queue.append(nxt)
            longest = max([longest] + [v for (kind_, _), v in dist.items() if kind_ == "h"])
        return longest
    x = torch.randn(n, d)
    reach = torch.eye(n, dtype=torch.bool)  # reach[j, i]: output j of the stack sees input i
    # every pair can connect, except in the causal dilated stack: there j sees only i <= j
    goal = torch.ones(n, n, dtype=torch.bool)
    if kind == "dilated-convolutional":
        goal = goal.tril()
    first = torch.full((n, n), -1)
    for layers in range(1, n + 1):
        support = _support(make_layer(kind, d, layer_index=layers - 1, **layer_kw), x)
        reach = (support.float() @ reach.float()) > 0
        first[(first < 0) & reach] = layers
        if bool(reach[goal].all()):
            return int(first.max())
    raise RuntimeError(f"{kind} did not connect all {n} positions in {n} layers")


def table1(
    ns: list[int], d: int = 64, *, kernel_size: int = 3, window: int = 5, repeats: int = 3
) -> list[dict[str, float | int | str]]:
    """Every count of Table 1 for every ``kind`` and sequence length ``n``: one row each."""
    rows = []
    for kind in KINDS:
        kw = {"kernel_size": kernel_size, "window": window}
        for n in ns:
            rows.append(
                {
                    "kind": kind,
                    "n": n,
                    "flops": flops(kind, n, d, **kw),
                    "seconds": seconds(kind, n, d, repeats=repeats, **kw),
                    "sequential": sequential_operations(kind, n, **kw),
                    "path": max_path_length(kind, n, **kw),
                }
            )
    return rows
