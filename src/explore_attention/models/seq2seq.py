r"""Recurrent encoder-decoders without attention, with Bahdanau attention, with Luong attention.

Encoder (all variants): a bidirectional GRU/LSTM reads the source; its annotations
:math:`h_j = [\overrightarrow{h}_j; \overleftarrow{h}_j]` are projected to ``hidden`` units
(the keys), and :math:`s_0 = \tanh(W_s[\overrightarrow{h}_S; \overleftarrow{h}_1])` starts the
decoder (Bahdanau et al. 2014, arXiv:1409.0473, App. A.2).

Decoders, one step (:math:`y_{i-1}` embedded as :math:`e_{i-1}`):

* ``"none"`` — Cho et al. 2014 (arXiv:1406.1078): a fixed summary :math:`c = s_0` is fed at every
  step, :math:`s_i = f([e_{i-1}; c], s_{i-1})`,
  :math:`p(y_i) = \operatorname{softmax}(W_o[s_i; c])`.
  The whole source must pass through one vector — the bottleneck Bahdanau et al. removed.
* ``"bahdanau"`` — :math:`c_i = \sum_j \alpha_{ij} h_j` with additive scores on
  :math:`s_{i-1}`; :math:`s_i = f([e_{i-1}; c_i], s_{i-1})`; :math:`p(y_i) =
  \operatorname{softmax}(W_o[s_i; c_i])`.
* ``"luong-dot" | "luong-general" | "luong-concat"`` — Luong et al. 2015 (arXiv:1508.04025),
  global attention with input feeding: :math:`s_i = f([e_{i-1}; \tilde h_{i-1}], s_{i-1})`,
  :math:`c_i` from scores on :math:`s_i`, :math:`\tilde h_i = \tanh(W_c[c_i; s_i])` (Eq. 5),
  :math:`p(y_i) = \operatorname{softmax}(W_o \tilde h_i)` (Eq. 6).

Token ids follow :mod:`explore_attention.data.synthetic`: ``PAD = 0``, ``BOS = 1``, ``EOS = 2``.
The decoding interface shared with :class:`~explore_attention.models.transformer.Transformer`:
``encode(src) -> state``, ``step(y_prev, state) -> (logits, state, weights)``, used by
:mod:`explore_attention.decoding`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..attention.rnn import BahdanauAttention, LuongAttention

__all__ = ["ATTENTIONS", "Seq2Seq"]

PAD = 0
ATTENTIONS = ("none", "bahdanau", "luong-dot", "luong-general", "luong-concat")


class Seq2Seq(nn.Module):
    """A bidirectional-RNN encoder and an RNN decoder with optional attention.

    Args:
        src_vocab: source token ids ``0..src_vocab-1`` (0 = PAD).
        tgt_vocab: target token ids (0 = PAD, 1 = BOS, 2 = EOS).
        emb_dim: embedding size of both sides.
        hidden: width of each encoder direction, of the keys and of the decoder state.
        attention: one of :data:`ATTENTIONS`.
        cell: ``"gru"`` or ``"lstm"``.
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        emb_dim: int = 64,
        hidden: int = 128,
        attention: str = "bahdanau",
        cell: str = "gru",
    ) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}")
        for n, v in (
            ("src_vocab", src_vocab),
            ("tgt_vocab", tgt_vocab),
            ("emb_dim", emb_dim),
            ("hidden", hidden),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{n} must be a positive int, got {v!r}")
        self.attention_kind, self.cell_kind, self.hidden = attention, cell, hidden
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.src_emb = nn.Embedding(src_vocab, emb_dim, padding_idx=PAD)
        self.tgt_emb = nn.Embedding(tgt_vocab, emb_dim, padding_idx=PAD)
        self.encoder = rnn(emb_dim, hidden, batch_first=True, bidirectional=True)
        # h_j (2H) -> keys (H); without attention nothing reads the annotations
        self.key_proj = nn.Linear(2 * hidden, hidden) if attention != "none" else None
        self.init_proj = nn.Linear(2 * hidden, hidden)  # W_s: s_0 = tanh(W_s [→h_S; ←h_1])
        cell_cls = nn.GRUCell if cell == "gru" else nn.LSTMCell
        self.decoder = cell_cls(emb_dim + hidden, hidden)  # input [e; c] or [e; h̃]
        self.attn: nn.Module | None = None
        if attention == "bahdanau":
            self.attn = BahdanauAttention(hidden, hidden, hidden)
        elif attention.startswith("luong"):
            self.attn = LuongAttention(hidden, hidden, score=attention.split("-")[1])
            self.combine = nn.Linear(2 * hidden, hidden)  # W_c of Luong Eq. 5
        out_in = hidden if attention.startswith("luong") else 2 * hidden
        self.out = nn.Linear(out_in, tgt_vocab)

    # ------------------------------------------------------------ encoder
    def encode(self, src: Tensor) -> dict[str, Tensor]:
        """Read ``src (B, S)``; return the decoder's start state (dict of batch-first tensors)."""
        if not isinstance(src, Tensor) or src.dim() != 2 or src.dtype != torch.long:
            raise ValueError(
                f"src must be a (B, S) long tensor, got "
                f"{getattr(src, 'shape', type(src))} {getattr(src, 'dtype', '')}"
            )
        mask = src != PAD  # (B, S), True = a real token
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(
            self.src_emb(src), lengths, batch_first=True, enforce_sorted=False
        )
        out, last = self.encoder(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])  # (B, S, 2H)
        h_n = last[0] if self.cell_kind == "lstm" else last  # (2, B, H): forward, backward
        s0 = torch.tanh(self.init_proj(torch.cat([h_n[0], h_n[1]], dim=-1)))  # (B, H)
        state = {"mask": mask, "h": s0}
        if self.key_proj is not None:
            state["keys"] = self.key_proj(out)  # (B, S, H)
        if self.cell_kind == "lstm":
            state["c"] = torch.zeros_like(s0)
        if self.attention_kind == "none":
            state["summary"] = s0
        elif self.attention_kind == "bahdanau":
            state["proj"] = self.attn.project_keys(state["keys"])  # (B, S, H): U_a h_j, once
        else:
            state["feed"] = torch.zeros_like(s0)  # h̃_0 for input feeding
        return state

    # ------------------------------------------------------------ decoder
    def _cell(self, x: Tensor, state: dict[str, Tensor]) -> dict[str, Tensor]:
        new = dict(state)
        if self.cell_kind == "lstm":
            new["h"], new["c"] = self.decoder(x, (state["h"], state["c"]))
        else:
            new["h"] = self.decoder(x, state["h"])
        return new

    def step(
        self, y_prev: Tensor, state: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor], Tensor | None]:
        """One decoder step: ``y_prev (B,)`` -> ``(logits (B, V), state, weights (B, S))``."""
        e = self.tgt_emb(y_prev)  # (B, E)
        kind = self.attention_kind
        if kind == "none":
            state = self._cell(torch.cat([e, state["summary"]], -1), state)
            return self.out(torch.cat([state["h"], state["summary"]], -1)), state, None
        if kind == "bahdanau":
            # c_i = Σ_j α_ij h_j, scored on the previous state s_{i-1}
            c, w = self.attn(state["h"], state["keys"], state["mask"], projected_keys=state["proj"])
            state = self._cell(torch.cat([e, c], -1), state)
            return self.out(torch.cat([state["h"], c], -1)), state, w
        # Luong: s_i first (input feeding h̃_{i-1}), then attend with s_i
        state = self._cell(torch.cat([e, state["feed"]], -1), state)
        c, w = self.attn(state["h"], state["keys"], state["mask"])
        h_tilde = torch.tanh(self.combine(torch.cat([c, state["h"]], -1)))  # Eq. 5
        state["feed"] = h_tilde
        return self.out(h_tilde), state, w

    def forward(
        self, src: Tensor, tgt_in: Tensor, *, return_weights: bool = False
    ) -> Tensor | tuple[Tensor, Tensor | None]:
        """Teacher-forced logits ``(B, T, V)`` for ``tgt_in (B, T)`` (BOS-started targets).

        ``return_weights=True`` also returns the attention weights ``(B, T, S)`` (None without
        attention).
        """
        if not isinstance(tgt_in, Tensor) or tgt_in.dim() != 2 or tgt_in.shape[0] != src.shape[0]:
            raise ValueError(
                f"tgt_in must be (B={src.shape[0]}, T) long, got "
                f"{getattr(tgt_in, 'shape', type(tgt_in))}"
            )
        state = self.encode(src)
        logits, weights = [], []
        for t in range(tgt_in.shape[1]):
            lg, state, w = self.step(tgt_in[:, t], state)
            logits.append(lg)
            weights.append(w)
        out = torch.stack(logits, 1)  # (B, T, V)
        if not return_weights:
            return out
        return out, (None if weights[0] is None else torch.stack(weights, 1))  # (B, T, S)
