r"""How far back does each head look? Attention by query–key distance.

For a causal (or self-attention) trace with weights :math:`A_{ij}`, the profile of a head at
distance :math:`d \ge 0` is the mean weight a query puts on the key :math:`d` positions before it,

.. math::

    P(d) = \frac{1}{L - d} \sum_{i=d}^{L-1} A_{i,\,i-d},

so :math:`P(1)` is the previous-token score of :mod:`explore_attention.inspect.head_types` and a
head that spreads uniformly over its :math:`i + 1` keys has :math:`P(d) \approx` the mean of
:math:`1/(i+1)`. The mean distance :math:`\bar d_i = \sum_j A_{ij} (i - j)` summarises a
head in one number (a local head: about 1; a head that attends to the first token: about
:math:`i`). Distance profiles are how ALiBi (Press et al. 2021, arXiv:2108.12409) and
sliding-window models are compared with dense ones.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .trace import AttentionTrace, self_attention_weights

__all__ = ["attention_by_distance", "mean_distance"]


def _causal_weights(trace: AttentionTrace) -> Tensor:
    return self_attention_weights(trace, "distances")  # (layers, heads, L, L)


def attention_by_distance(trace: AttentionTrace) -> Tensor:
    r"""``(layers, heads, L)``: entry ``d`` is :math:`P(d)`, the mean weight on the key ``d``
    positions before the query (module docstring)."""
    A = _causal_weights(trace)
    L = A.shape[-1]
    out = torch.zeros(*A.shape[:2], L)
    for d in range(L):
        i = torch.arange(d, L)
        out[..., d] = A[..., i, i - d].mean(-1)
    return out


def mean_distance(trace: AttentionTrace) -> Tensor:
    r"""``(layers, heads)``: :math:`\bar d_i = \sum_j A_{ij}(i - j)` averaged over the queries
    (in a bidirectional trace, keys after the query count as negative distances)."""
    A = _causal_weights(trace)
    L = A.shape[-1]
    i = torch.arange(L)
    dist = (i[:, None] - i[None, :]).float()  # (L, L): i - j
    return (A * dist).sum(-1).mean(-1)
