r"""Attention flow (Abnar & Zuidema 2020, arXiv:2005.00928, §4): max-flow on the layer graph.

The attention graph has one node per (layer boundary :math:`l`, position :math:`j`),
:math:`l = 0 \dots L` (0 = the input embeddings). Layer :math:`l` adds an edge from
:math:`(l-1, j)` to :math:`(l, i)` with capacity :math:`\tilde A_l[i, j]`, the head-fused weights
with the residual identity as in rollout (:math:`\tilde A = \operatorname{rownorm}(0.5A + 0.5I)`).
The flow from input token :math:`j` to output position :math:`i` is the value of a maximum flow
from :math:`(0, j)` to :math:`(L, i)`. Unlike rollout (a product of matrices, i.e. a sum over
paths of products), flow is limited by the narrowest cut between the two nodes.

As in the authors' release, each output position's flows are then normalised to sum to 1
(``normalize=True``); ``normalize=False`` returns the raw max-flow values.

Cost: one max-flow per (query, key) pair on a graph of :math:`L \cdot n^2` edges; pass
``queries=[0]`` (e.g. ``[CLS]``) to compute only the rows you need.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx
import torch
from networkx.algorithms.flow import shortest_augmenting_path
from torch import Tensor

from .rollout import as_attentions, fuse_heads

__all__ = ["attention_graph", "flow"]


def attention_graph(fused: Tensor) -> nx.DiGraph:
    """The layer graph of ``fused (layers, L, L)`` weights; nodes are ``(layer, position)``."""
    G = nx.DiGraph()
    L = fused.shape[-1]
    for layer in range(fused.shape[0]):
        W = fused[layer].tolist()
        for i in range(L):
            for j in range(L):
                if W[i][j] > 0:
                    G.add_edge((layer, j), (layer + 1, i), capacity=W[i][j])
    return G


def flow(
    trace: Any,
    *,
    head_fusion: str = "mean",
    residual: bool = True,
    queries: Sequence[int] | None = None,
    normalize: bool = True,
) -> Tensor:
    """Attention flow, ``(len(queries), Lk)`` float32 (all query rows when ``queries`` is None).

    ``out[r, j]`` is the maximum flow from input token ``j`` to output position ``queries[r]``,
    divided by the row's total when ``normalize`` (then rows sum to 1).
    """
    A = as_attentions(trace).to(torch.float64)  # (layers, heads, L, L)
    fused = fuse_heads(A, head_fusion)  # (layers, L, L)
    n = fused.shape[-1]
    if residual:
        eye = torch.eye(n, dtype=torch.float64)
        fused = 0.5 * fused + 0.5 * eye
        fused = fused / fused.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    rows = list(range(n)) if queries is None else list(queries)
    for q in rows:
        if isinstance(q, bool) or not isinstance(q, int) or not 0 <= q < n:
            raise ValueError(f"queries must hold ints in [0, {n}), got {q!r}")
    G = attention_graph(fused)
    last = fused.shape[0]
    out = torch.zeros(len(rows), n, dtype=torch.float64)
    for r, i in enumerate(rows):
        for j in range(n):
            src, dst = (0, j), (last, i)
            if src in G and dst in G:
                out[r, j] = nx.maximum_flow_value(G, src, dst, flow_func=shortest_augmenting_path)
    if normalize:
        out = out / out.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return out.to(torch.float32)
