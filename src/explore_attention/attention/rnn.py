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


# --- Luong et al. 2015 §3.2: local attention (local-m, local-p) and §3.1's location score ---

LocalAlignment = Literal["monotonic", "predictive"]


class LuongLocalAttention(LuongAttention):
    r"""Local attention of Luong et al. 2015, §3.2 (arXiv:1508.04025): attend only to a window
    of source positions around an aligned position :math:`p_t`.

    * **local-m** (``alignment="monotonic"``): :math:`p_t = t`, the decoder step; the weights
      are Eq. (7)'s softmax of the score, taken over the window only.
    * **local-p** (``alignment="predictive"``): the decoder predicts the centre (Eq. 9) and a
      Gaussian favours positions near it (Eq. 10):

      .. math::

          p_t = S \cdot \operatorname{sigmoid}(v_p^\top \tanh(W_p h_t)), \qquad
          a_t(s) = \operatorname{align}(h_t, \bar h_s)
                   \exp\!\Big(-\frac{(s - p_t)^2}{2\sigma^2}\Big), \quad \sigma = \frac{D}{2}

      with :math:`S` the source length (padding excluded). The Gaussian is applied *after*
      the softmax, so local-p's weights sum to less than 1 — as in the paper.

    The window is :math:`[p_t - D, p_t + D]`. The paper's :math:`D` is a *half*-width; this
    library's ``window`` is the whole band (docs/design.md, Vocabulary), so
    :math:`D = \lfloor \text{window} / 2 \rfloor` and ``window = 2D + 1`` gives the paper's
    :math:`a_t \in \mathbb{R}^{2D+1}`. Positions are counted from 1 as in the paper
    (:math:`s = 1, \dots, S`, so Eq. 9's :math:`p_t \in [0, S]` spans the sentence);
    the decoder step ``step`` is 0-based, and local-m's :math:`p_t = \text{step} + 1`.
    :math:`p_t` is real, :math:`s` an integer with :math:`|s - p_t| \le D`.

    Args:
        query_dim, key_dim, score, hidden_dim: as in :class:`LuongAttention`.
        window: the whole band ``2D + 1`` (``D = window // 2``); local-p needs ``D >= 1``.
        alignment: ``"monotonic"`` (local-m) or ``"predictive"`` (local-p).
        position_dim: rows of :math:`W_p` (local-p only), default ``query_dim``.
    """

    def __init__(
        self,
        query_dim: int,
        key_dim: int,
        score: LuongScore = "general",
        *,
        window: int,
        alignment: LocalAlignment = "predictive",
        hidden_dim: int | None = None,
        position_dim: int | None = None,
    ) -> None:
        super().__init__(query_dim, key_dim, score, hidden_dim=hidden_dim)
        self.window = check_int("window", window)
        if alignment not in ("monotonic", "predictive"):
            raise ValueError(
                f"alignment must be 'monotonic' (local-m) or 'predictive' (local-p), "
                f"got {alignment!r}"
            )
        self.alignment = alignment
        self.half_width = window // 2  # the paper's D
        self.position: nn.Sequential | None = None
        if alignment == "predictive":
            if self.half_width < 1:
                raise ValueError(
                    f"alignment='predictive' needs window >= 2 (D = window // 2 >= 1, "
                    f"sigma = D / 2 > 0), got window={window}"
                )
            if position_dim is not None:
                check_int("position_dim", position_dim)
            p_dim = query_dim if position_dim is None else position_dim
            # v_pᵀ tanh(W_p h_t): W_p (p_dim × Dq), v_p (p_dim), no biases (Eq. 9)
            self.position = nn.Sequential(
                nn.Linear(query_dim, p_dim, bias=False), nn.Tanh(), nn.Linear(p_dim, 1, bias=False)
            )
        elif position_dim is not None:
            raise ValueError("position_dim only applies to alignment='predictive'")

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, window={self.window}, alignment={self.alignment!r}"

    @property
    def sigma(self) -> float:
        """The Gaussian's standard deviation :math:`\\sigma = D / 2` (Eq. 10)."""
        return self.half_width / 2

    def aligned_position(
        self, query: Tensor, lengths: Tensor, step: int | Tensor | None = None
    ) -> Tensor:
        """:math:`p_t` (B,), counted from 1: ``step + 1`` (local-m) or Eq. (9) (local-p)."""
        if self.position is None:
            if step is None:
                raise ValueError("alignment='monotonic' (local-m) needs step= (p_t = t)")
            t = torch.as_tensor(step, device=query.device, dtype=query.dtype)
            return (t + 1).expand(query.shape[0]).clone()
        # p_t = S · sigmoid(v_pᵀ tanh(W_p h_t))                                    (B,)
        return lengths.to(query.dtype) * torch.sigmoid(self.position(query).squeeze(-1))

    def forward(  # type: ignore[override]
        self,
        query: Tensor,
        keys: Tensor,
        key_padding_mask: Tensor | None = None,
        *,
        step: int | Tensor | None = None,
    ) -> AttentionOutput:
        """``(output = context (B, Dk), weights (B, L))``; ``key_padding_mask`` True = padding.

        ``step`` is the 0-based decoder step (needed by local-m, ignored by local-p).
        """
        _check_inputs(query, keys, key_padding_mask, self.query_dim, self.key_dim)
        keep = None if key_padding_mask is None else ~key_padding_mask  # (B, L) True = real
        B, L, _ = keys.shape
        # S, the source length without padding                                      (B,)
        lengths = torch.full((B,), L, device=keys.device) if keep is None else keep.sum(dim=1)
        p_t = self.aligned_position(query, lengths, step)  # (B,), 1-based
        s = torch.arange(1, L + 1, device=keys.device, dtype=query.dtype)  # (L,) 1-based
        dist = s.unsqueeze(0) - p_t.unsqueeze(1)  # (B, L)  s − p_t
        allowed = dist.abs() <= self.half_width  # the window [p_t − D, p_t + D]
        if keep is not None:
            allowed = allowed & keep
        q = query.unsqueeze(1)  # (B, 1, Dq)
        score_fn = scores.dot if self.score is None else self.score
        e = score_fn(q, keys).squeeze(1)  # (B, L)
        weights = masked_softmax(e, allowed)  # align(h_t, h̄_s) over the window   (B, L)
        if self.position is not None:
            # a_t(s) = align(h_t, h̄_s) · exp(−(s − p_t)² / (2σ²))                   (Eq. 10)
            weights = weights * torch.exp(-(dist**2) / (2 * self.sigma**2))
        values = keys if keep is None else keys.masked_fill(~keep.unsqueeze(-1), 0.0)
        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)  # (B, Dk)
        return AttentionOutput(context, weights)


class LuongLocationAttention(nn.Module):
    r"""Location-based score of Luong et al. 2015, §3.1 Eq. (8) (arXiv:1508.04025):
    :math:`a_t = \operatorname{softmax}(W_a h_t)`.

    The weights come from the decoder state alone — the source states are never compared
    with it — so :math:`W_a` needs one row per source position: ``max_len`` rows, of which
    the first ``L`` are used for a source of length ``L`` (padding excluded from the softmax).
    """

    def __init__(self, query_dim: int, max_len: int) -> None:
        super().__init__()
        self.query_dim = check_int("query_dim", query_dim)
        self.max_len = check_int("max_len", max_len)
        self.W_a = nn.Linear(query_dim, max_len, bias=False)

    def forward(
        self, query: Tensor, keys: Tensor, key_padding_mask: Tensor | None = None
    ) -> AttentionOutput:
        """``(output = context (B, Dk), weights (B, L))``; ``key_padding_mask`` True = padding."""
        if not isinstance(keys, Tensor) or keys.dim() != 3:
            raise ValueError(
                f"keys must be a (B, L, Dk) tensor, got {getattr(keys, 'shape', type(keys))}"
            )
        _check_inputs(query, keys, key_padding_mask, self.query_dim, keys.shape[-1])
        if keys.shape[1] > self.max_len:
            raise ValueError(f"keys has {keys.shape[1]} positions but max_len is {self.max_len}")
        e = self.W_a(query)[:, : keys.shape[1]]  # W_a h_t, one score per position  (B, L)
        return _attend(e, keys, key_padding_mask)


__all__ += ["LuongLocalAttention", "LuongLocationAttention"]
