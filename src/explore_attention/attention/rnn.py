r"""Seq2seq attention with a decoder state: Bahdanau (additive) and Luong (multiplicative).

One decoder step attends over the encoder's annotations :math:`h_1, \dots, h_L`:

.. math::

    e_j = \operatorname{score}(s, h_j), \qquad
    \alpha_j = \frac{\exp e_j}{\sum_{j'} \exp e_{j'}}, \qquad
    c = \sum_j \alpha_j h_j

* **Bahdanau et al. 2014**, "Neural Machine Translation by Jointly Learning to Align and
  Translate" (arXiv:1409.0473), §3.1 Eqs. (5)–(6) and App. A.1.2: the query is the *previous*
  decoder state :math:`s_{i-1}` and the score is an MLP,
  :math:`e_{ij} = v_a^\top \tanh(W_a s_{i-1} + U_a h_j)`.
* **Luong et al. 2015**, "Effective Approaches to Attention-based Neural Machine Translation"
  (arXiv:1508.04025), §3.1 Eqs. (7)–(8): the query is the *current* decoder state :math:`h_t`
  and the score is ``dot`` :math:`h_t^\top \bar h_s`, ``general`` :math:`h_t^\top W_a \bar h_s`
  or ``concat`` :math:`v_a^\top \tanh(W_a [h_t; \bar h_s])`.

Which state is the query (previous or current) is the decoder's business; these modules take
whatever ``query`` they are given. Shapes::

    query    (B, Dq)      one decoder state per sentence
    keys     (B, L, Dk)   encoder annotations (they are also the values)
    key_padding_mask  (B, L)   bool, True = padding (PyTorch's convention), False = a real token
    output   (B, Dk)      the context vector c
    weights  (B, L)       sum to 1 over real positions; all-zero if a row has none

Both return :class:`~explore_attention.attention.core.AttentionOutput` ``(output, weights)``.

The scores come from :mod:`explore_attention.attention.scores`, the softmax from
:func:`~explore_attention.attention.core.masked_softmax` (padding is excluded with ``where``, a
fully padded sentence gives a zero context, never NaN).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ..checks import check_int
from . import scores
from .core import AttentionOutput, masked_softmax

__all__ = ["BahdanauAttention", "LuongAttention"]

LuongScore = Literal["dot", "general", "concat"]


def _check_inputs(
    query: Tensor, keys: Tensor, key_padding_mask: Tensor | None, query_dim: int, key_dim: int
) -> None:
    """Clear errors for the (B, Dq), (B, L, Dk), (B, L) contract."""
    for name, t in (("query", query), ("keys", keys)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if query.dim() != 2 or query.shape[1] != query_dim:
        raise ValueError(
            f"query must have shape (B, {query_dim}) (one decoder state per sentence), "
            f"got {tuple(query.shape)}"
        )
    if keys.dim() != 3 or keys.shape[2] != key_dim:
        raise ValueError(
            f"keys must have shape (B, L, {key_dim}) (encoder annotations), got {tuple(keys.shape)}"
        )
    if keys.shape[0] != query.shape[0]:
        raise ValueError(
            f"query and keys must share the batch size: query {tuple(query.shape)}, "
            f"keys {tuple(keys.shape)}"
        )
    if keys.shape[1] < 1:
        raise ValueError(f"keys must hold at least one position, got {tuple(keys.shape)}")
    if query.dtype != keys.dtype:
        raise TypeError(f"query and keys must share a dtype, got {query.dtype} and {keys.dtype}")
    if key_padding_mask is not None:
        pad = key_padding_mask
        if not isinstance(pad, Tensor):
            raise TypeError(
                f"key_padding_mask must be a bool torch.Tensor or None, got {type(pad).__name__}"
            )
        if pad.dtype != torch.bool:
            raise TypeError(
                f"key_padding_mask must be a bool tensor (True = padding), got dtype {pad.dtype}"
            )
        if tuple(pad.shape) != tuple(keys.shape[:2]):
            raise ValueError(
                f"key_padding_mask must have shape (B, L) = {tuple(keys.shape[:2])}, got "
                f"{tuple(pad.shape)}"
            )


def _attend(scores_: Tensor, keys: Tensor, key_padding_mask: Tensor | None) -> AttentionOutput:
    r"""Softmax over source positions (Eq. 6 / Eq. 7) and the context vector (Eq. 5)."""
    keep = None if key_padding_mask is None else ~key_padding_mask  # (B, L) True = real token
    # α_j = exp(e_j) / Σ_j' exp(e_j'), padding excluded                  (B, L)
    weights = masked_softmax(scores_, keep)
    if key_padding_mask is not None:
        # Padded annotations may hold anything (even NaN); never let 0 · NaN reach the context.
        keys = keys.masked_fill(key_padding_mask.unsqueeze(-1), 0.0)  # (B, L, Dk)
    # c = Σ_j α_j h_j                                                     (B, Dk)
    context = torch.bmm(weights.unsqueeze(1), keys).squeeze(1)
    return AttentionOutput(context, weights)


class BahdanauAttention(nn.Module):
    r"""Additive attention (Bahdanau et al. 2014, App. A.1.2, arXiv:1409.0473).

    .. math::

        e_{j} = v_a^\top \tanh(W_a s + U_a h_j + b), \quad
        \alpha = \operatorname{softmax}(e), \quad c = \sum_j \alpha_j h_j

    The bias :math:`b` (``score.U.bias``) is a common addition to the paper's form; set it to 0
    to recover Eq. A.1.2 exactly. ``U_a h_j`` does not depend on the decoder state: compute it
    once per sentence with :meth:`project_keys` and pass it as ``projected_keys``.

    Args:
        query_dim: size ``Dq`` of the decoder state :math:`s_{i-1}` (the paper's ``n``).
        key_dim: size ``Dk`` of each annotation :math:`h_j` (the paper's ``2n``, bidirectional).
        hidden_dim: size of the alignment MLP's hidden layer (the paper's ``n'``).
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.query_dim = check_int("query_dim", query_dim)
        self.key_dim = check_int("key_dim", key_dim)
        self.hidden_dim = check_int("hidden_dim", hidden_dim)
        self.score = scores.Additive(query_dim, key_dim, hidden_dim)

    def project_keys(self, keys: Tensor) -> Tensor:
        """``U_a h_j + b`` for every annotation: (B, L, Dk) -> (B, L, hidden_dim)."""
        return self.score.project_keys(keys)

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        key_padding_mask: Tensor | None = None,
        *,
        projected_keys: Tensor | None = None,
    ) -> AttentionOutput:
        """``(output = context (B, Dk), weights (B, L))`` for decoder state ``query (B, Dq)``."""
        _check_inputs(query, keys, key_padding_mask, self.query_dim, self.key_dim)
        # e_j = v_aᵀ tanh(W_a s + U_a h_j)                                (B, 1, L) -> (B, L)
        e = self.score(query.unsqueeze(1), keys, projected_keys).squeeze(1)
        return _attend(e, keys, key_padding_mask)


class LuongAttention(nn.Module):
    r"""Global attention with Luong et al. 2015's score functions (§3.1, Eqs. 7–8,
    arXiv:1508.04025).

    .. math::

        \operatorname{score}(h_t, \bar h_s) =
        \begin{cases}
            h_t^\top \bar h_s & \text{dot} \\
            h_t^\top W_a \bar h_s & \text{general} \\
            v_a^\top \tanh(W_a [h_t; \bar h_s]) & \text{concat}
        \end{cases}
        \qquad a_t(s) = \frac{\exp \operatorname{score}(h_t, \bar h_s)}
                             {\sum_{s'} \exp \operatorname{score}(h_t, \bar h_{s'})}

    ``concat``'s :math:`W_a [h_t; \bar h_s]` is split as :math:`W h_t + U \bar h_s` (the same
    matrix, written blockwise), so it shares :class:`~explore_attention.attention.scores.Additive`
    with Bahdanau's form (including its optional bias).

    Args:
        query_dim: size of the decoder state :math:`h_t`.
        key_dim: size of each source state :math:`\bar h_s`; ``dot`` needs ``query_dim == key_dim``.
        score: ``"dot"``, ``"general"`` or ``"concat"``.
        hidden_dim: hidden size of ``concat``'s :math:`v_a`, default ``key_dim``; only for concat.
    """

    def __init__(
        self,
        query_dim: int,
        key_dim: int,
        score: LuongScore = "dot",
        *,
        hidden_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.query_dim = check_int("query_dim", query_dim)
        self.key_dim = check_int("key_dim", key_dim)
        if score not in ("dot", "general", "concat"):
            raise ValueError(f"score must be 'dot', 'general' or 'concat', got {score!r}")
        if hidden_dim is not None and score != "concat":
            raise ValueError(f"hidden_dim only applies to score='concat', got score={score!r}")
        self.score_name = score
        self.score: nn.Module | None
        if score == "dot":
            if query_dim != key_dim:
                raise ValueError(
                    f"score='dot' needs query_dim == key_dim, got {query_dim} and {key_dim}; "
                    "use score='general' to learn a map between them"
                )
            self.score = None
        elif score == "general":
            self.score = scores.General(query_dim, key_dim)
        else:
            hidden = key_dim if hidden_dim is None else check_int("hidden_dim", hidden_dim)
            self.score = scores.Additive(query_dim, key_dim, hidden)

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, score={self.score_name!r}"

    def forward(
        self, query: Tensor, keys: Tensor, key_padding_mask: Tensor | None = None
    ) -> AttentionOutput:
        """``(output = context (B, Dk), weights (B, L))`` for decoder state ``query (B, Dq)``."""
        _check_inputs(query, keys, key_padding_mask, self.query_dim, self.key_dim)
        q = query.unsqueeze(1)  # (B, 1, Dq)
        # score(h_t, h̄_s) for every source position s                      (B, 1, L) -> (B, L)
        score_fn = scores.dot if self.score is None else self.score
        e = score_fn(q, keys).squeeze(1)
        return _attend(e, keys, key_padding_mask)
