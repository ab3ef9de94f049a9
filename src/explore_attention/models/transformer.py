r"""A small Transformer encoder-decoder (Vaswani et al. 2017, arXiv:1706.03762) on our attention.

Every attention is :class:`~explore_attention.attention.MultiHeadAttention`:

* encoder self-attention, padding keys masked;
* decoder causal self-attention (``masks.causal``), with a :class:`KVCache` per layer when
  decoding one token at a time (each new token attends to the cached keys/values: O(L) per
  token instead of recomputing the prefix);
* decoder cross-attention to the encoder output.

Layers are pre-LN, :math:`x + \mathrm{Sublayer}(\mathrm{LN}(x))` (Xiong et al. 2020,
arXiv:2002.04745; :class:`~explore_attention.models.blocks.PreLNBlock`), which trains without
warmup tricks at this size; positions are the sinusoids of §3.5, added to the
:math:`\sqrt{d}`-scaled embeddings (§3.4). Token ids 0 / 1 / 2 are PAD / BOS / EOS, as in
:class:`~explore_attention.models.seq2seq.Seq2Seq`, whose decoding interface (``encode`` /
``step``) this model shares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..attention import masks
from ..attention.positional import sinusoidal_positions
from ..checks import check_int, check_probability
from .blocks import PreLNBlock
from .config import resolve_config
from .output import ModelOutput

__all__ = ["Transformer", "TransformerConfig"]

PAD = 0


@dataclass(frozen=True)
class TransformerConfig:
    """Hyper-parameters of :class:`Transformer`."""

    src_vocab: int  # source vocabulary size (0 = PAD, 1 = BOS, 2 = EOS)
    tgt_vocab: int  # target vocabulary size (same special ids)
    d_model: int = 64  # model width
    num_heads: int = 4  # attention heads
    num_layers: int = 2  # encoder = decoder depth
    d_ff: int | None = None  # feed-forward width (None: 4 * d_model)
    max_len: int = 256  # longest sequence (size of the sinusoid table)
    dropout: float = 0.0  # dropout on attention weights and feed-forward outputs

    def __post_init__(self) -> None:
        for name in ("src_vocab", "tgt_vocab", "d_model", "num_heads", "num_layers", "max_len"):
            check_int(name, getattr(self, name))
        if self.d_ff is not None:
            check_int("d_ff", self.d_ff)
        check_probability("dropout", self.dropout)


class Transformer(nn.Module):
    """Encoder-decoder Transformer: ``forward(src, tgt_in) -> ModelOutput``.

    Build from a :class:`TransformerConfig`, its ``asdict`` (as ``config.json`` stores it) or
    its fields as keywords (``Transformer(src_vocab=13, tgt_vocab=11)``).
    """

    def __init__(self, config: TransformerConfig | dict | None = None, **fields: Any) -> None:
        super().__init__()
        self.config = c = resolve_config(TransformerConfig, config, fields)
        src_vocab, tgt_vocab, d_model, num_heads = c.src_vocab, c.tgt_vocab, c.d_model, c.num_heads
        num_layers, max_len, dropout = c.num_layers, c.max_len, c.dropout
        d_ff = 4 * d_model if c.d_ff is None else c.d_ff
        self.d_model, self.max_len = d_model, max_len
        self.src_emb = nn.Embedding(src_vocab, d_model, padding_idx=PAD)
        self.tgt_emb = nn.Embedding(tgt_vocab, d_model, padding_idx=PAD)
        for emb in (self.src_emb, self.tgt_emb):  # std d^-1/2, so √d·E is unit-scale like PE
            nn.init.normal_(emb.weight, std=d_model**-0.5)
            emb.weight.data[PAD] = 0.0
        self.register_buffer("pe", sinusoidal_positions(max_len, d_model), persistent=False)
        self.encoder = nn.ModuleList(
            PreLNBlock(d_model, num_heads, d_ff, dropout, attn_dropout=dropout)
            for _ in range(num_layers)
        )
        self.decoder = nn.ModuleList(
            PreLNBlock(
                d_model, num_heads, d_ff, dropout, attn_dropout=dropout, cross_attention=True
            )
            for _ in range(num_layers)
        )
        self.enc_ln, self.dec_ln = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, tgt_vocab)

    def _embed(self, emb: nn.Embedding, ids: Tensor, start: int = 0) -> Tensor:
        L = ids.shape[1]
        if start + L > self.max_len:
            raise ValueError(f"sequence of length {start + L} exceeds max_len={self.max_len}")
        # x = √d · E[ids] + PE[pos]                                        (B, L, D)
        return emb(ids) * math.sqrt(self.d_model) + self.pe[start : start + L]

    def _memory(self, src: Tensor, return_weights: bool) -> tuple[dict, list[Tensor | None]]:
        if not isinstance(src, Tensor) or src.dim() != 2 or src.dtype != torch.long:
            raise ValueError(
                f"src must be a (B, S) long tensor, got "
                f"{getattr(src, 'shape', type(src))} {getattr(src, 'dtype', '')}"
            )
        pad = src == PAD  # (B, S), True = padding (PyTorch's convention)
        x = self._embed(self.src_emb, src)
        weights = []
        for layer in self.encoder:
            res = layer(x, key_padding_mask=pad, return_weights=return_weights)
            x = res.output
            weights.append(res.weights)
        memory = self.enc_ln(x)  # (B, S, D)
        return {"memory": memory, "pad": pad}, weights

    def encode(self, src: Tensor) -> dict:
        """Encode ``src (B, S)``; return the decoder state (memory, padding mask, empty caches)."""
        state, _ = self._memory(src, False)
        caches = [layer.attn.new_cache(src.shape[0], self.max_len) for layer in self.decoder]
        return {**state, "caches": caches, "pos": 0}

    def _decode(
        self, y: Tensor, state: dict, start: int, caches: list | None, return_weights: bool
    ) -> tuple[Tensor, list[Tensor | None], list[Tensor | None]]:
        """Logits ``(B, T, V)`` and each layer's self ``(B, H, T, T)`` / cross ``(B, H, T, S)``
        weights (None without ``return_weights``)."""
        h = self._embed(self.tgt_emb, y, start)
        # a single new token behind a cache may see every cached key: no mask needed
        mask = None if caches is not None and y.shape[1] == 1 else masks.causal
        self_w, cross_w = [], []
        for i, layer in enumerate(self.decoder):
            res = layer(
                h,
                mask_mod=mask,
                cache=None if caches is None else caches[i],
                memory=state["memory"],
                memory_padding_mask=state["pad"],
                return_weights=return_weights,
            )
            h = res.output
            self_w.append(res.weights)
            cross_w.append(res.cross_weights)
        return self.out(self.dec_ln(h)), self_w, cross_w

    def step(self, y_prev: Tensor, state: dict) -> tuple[Tensor, dict, Tensor]:
        """Decode one token with the KV caches: ``(logits (B, V), state, weights (B, S))``.

        ``weights``: the last layer's cross-attention, averaged over heads.
        """
        logits, _, cross = self._decode(y_prev[:, None], state, state["pos"], state["caches"], True)
        state = {**state, "pos": state["pos"] + 1}
        return logits[:, 0], state, cross[-1].mean(1)[:, 0]  # (B, V), (B, S)

    def forward(self, src: Tensor, tgt_in: Tensor, *, return_weights: bool = False) -> ModelOutput:
        """Teacher-forced logits ``(B, T, V)`` for ``src (B, S)`` and ``tgt_in (B, T)``.

        With ``return_weights`` also every layer's weights in ``attentions``: ``"encoder"``
        ``(B, H, S, S)``, ``"decoder"`` (causal) ``(B, H, T, T)`` and ``"cross"``
        ``(B, H, T, S)``.
        """
        if not isinstance(tgt_in, Tensor) or tgt_in.dim() != 2 or tgt_in.shape[0] != src.shape[0]:
            raise ValueError(
                f"tgt_in must be (B={src.shape[0]}, T) long, got "
                f"{getattr(tgt_in, 'shape', type(tgt_in))}"
            )
        state, enc_w = self._memory(src, return_weights)
        logits, self_w, cross_w = self._decode(tgt_in, state, 0, None, return_weights)
        attentions = None
        if return_weights:
            attentions = {
                "encoder": tuple(enc_w),
                "decoder": tuple(self_w),
                "cross": tuple(cross_w),
            }
        return ModelOutput(logits, attentions=attentions)
