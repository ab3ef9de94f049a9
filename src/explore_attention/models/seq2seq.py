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

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..attention.rnn import BahdanauAttention, LuongAttention
from ..checks import check_int
from .config import resolve_config
from .output import ModelOutput

__all__ = ["ATTENTIONS", "Seq2Seq", "Seq2SeqConfig"]

PAD = 0
ATTENTIONS = ("none", "bahdanau", "luong-dot", "luong-general", "luong-concat")


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Hyper-parameters of :class:`Seq2Seq`."""

    src_vocab: int  # source token ids 0..src_vocab-1 (0 = PAD)
    tgt_vocab: int  # target token ids (0 = PAD, 1 = BOS, 2 = EOS)
    emb_dim: int = 64  # embedding size of both sides
    hidden: int = 128  # width of each encoder direction, of the keys and of the decoder state
    attention: str = "bahdanau"  # one of ATTENTIONS
    cell: str = "gru"  # "gru" or "lstm"

    def __post_init__(self) -> None:
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        if self.cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {self.cell!r}")
        for name in ("src_vocab", "tgt_vocab", "emb_dim", "hidden"):
            check_int(name, getattr(self, name))


class Seq2Seq(nn.Module):
    """A bidirectional-RNN encoder and an RNN decoder with optional attention.

    Build from a :class:`Seq2SeqConfig`, its ``asdict`` (as ``config.json`` stores it) or its
    fields as keywords (``Seq2Seq(src_vocab=12, tgt_vocab=11, attention="luong-dot")``).
    """

    def __init__(self, config: Seq2SeqConfig | dict | None = None, **fields: Any) -> None:
        super().__init__()
        self.config = c = resolve_config(Seq2SeqConfig, config, fields)
        src_vocab, tgt_vocab, emb_dim, hidden = c.src_vocab, c.tgt_vocab, c.emb_dim, c.hidden
        attention, cell = c.attention, c.cell
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
        pad = src == PAD  # (B, S), True = padding (PyTorch's convention)
        lengths = (~pad).sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(
            self.src_emb(src), lengths, batch_first=True, enforce_sorted=False
        )
        out, last = self.encoder(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])  # (B, S, 2H)
        h_n = last[0] if self.cell_kind == "lstm" else last  # (2, B, H): forward, backward
        s0 = torch.tanh(self.init_proj(torch.cat([h_n[0], h_n[1]], dim=-1)))  # (B, H)
        state = {"key_padding_mask": pad, "h": s0}
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
            a = self.attn(
                state["h"], state["keys"], state["key_padding_mask"], projected_keys=state["proj"]
            )
            state = self._cell(torch.cat([e, a.output], -1), state)
            return self.out(torch.cat([state["h"], a.output], -1)), state, a.weights
        # Luong: s_i first (input feeding h̃_{i-1}), then attend with s_i
        state = self._cell(torch.cat([e, state["feed"]], -1), state)
        a = self.attn(state["h"], state["keys"], state["key_padding_mask"])
        h_tilde = torch.tanh(self.combine(torch.cat([a.output, state["h"]], -1)))  # Eq. 5
        state["feed"] = h_tilde
        return self.out(h_tilde), state, a.weights

    def forward(self, src: Tensor, tgt_in: Tensor, *, return_weights: bool = False) -> ModelOutput:
        """Teacher-forced logits ``(B, T, V)`` for ``tgt_in (B, T)`` (BOS-started targets).

        ``return_weights=True`` also fills ``attentions["cross"]``: one layer, one head,
        ``(B, 1, T, S)`` (``attentions`` is empty for ``attention="none"``, which has none).
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
            return ModelOutput(out)
        if weights[0] is None:
            return ModelOutput(out, attentions={})
        return ModelOutput(out, attentions={"cross": (torch.stack(weights, 1)[:, None],)})
