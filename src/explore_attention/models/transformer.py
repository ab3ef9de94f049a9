r"""A small Transformer encoder-decoder (Vaswani et al. 2017, arXiv:1706.03762) on our attention.

Every attention is :class:`~explore_attention.attention.MultiHeadAttention`:

* encoder self-attention, padding keys masked;
* decoder causal self-attention (``masks.causal``), with a :class:`KVCache` per layer when
  decoding one token at a time (each new token attends to the cached keys/values: O(L) per
  token instead of recomputing the prefix);
* decoder cross-attention to the encoder output.

Layers are pre-LN, :math:`x + \mathrm{Sublayer}(\mathrm{LN}(x))` (Xiong et al. 2020,
arXiv:2002.04745), which trains without warmup tricks at this size; positions are the sinusoids
of §3.5, added to the :math:`\sqrt{d}`-scaled embeddings (§3.4). Token ids 0 / 1 / 2 are
PAD / BOS / EOS, as in :class:`~explore_attention.models.seq2seq.Seq2Seq`, whose decoding
interface (``encode`` / ``step``) this model shares.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..attention import KVCache, MultiHeadAttention, masks
from ..attention.positional import sinusoidal_positions

__all__ = ["Transformer"]

PAD = 0


class _FeedForward(nn.Sequential):
    def __init__(self, d: int, d_ff: int, dropout: float) -> None:
        super().__init__(nn.Linear(d, d_ff), nn.GELU(), nn.Linear(d_ff, d), nn.Dropout(dropout))


class _EncoderLayer(nn.Module):
    def __init__(self, d: int, h: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = MultiHeadAttention(d, h, dropout=dropout)
        self.ff = _FeedForward(d, d_ff, dropout)

    def forward(self, x: Tensor, pad: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x), key_padding_mask=pad, return_weights=False)[0]
        return x + self.ff(self.ln2(x))


class _DecoderLayer(nn.Module):
    def __init__(self, d: int, h: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = MultiHeadAttention(d, h, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d, h, dropout=dropout)
        self.ff = _FeedForward(d, d_ff, dropout)

    def forward(
        self, y: Tensor, memory: Tensor, pad: Tensor, cache: KVCache | None, weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        # a single new token behind a cache may see every cached key: no mask needed
        mask = None if cache is not None and y.shape[1] == 1 else masks.causal
        y = y + self.self_attn(self.ln1(y), mask_mod=mask, cache=cache, return_weights=False)[0]
        out, w = self.cross_attn(self.ln2(y), memory, key_padding_mask=pad, return_weights=weights)
        y = y + out
        return y + self.ff(self.ln3(y)), w


class Transformer(nn.Module):
    """Encoder-decoder Transformer.

    Args:
        src_vocab: source vocabulary size (0 = PAD, 1 = BOS, 2 = EOS).
        tgt_vocab: target vocabulary size (same special ids).
        d_model: model width.
        num_heads: attention heads.
        num_layers: encoder = decoder depth.
        d_ff: feed-forward width (default ``4 * d_model``).
        max_len: longest sequence.
        dropout: dropout on attention weights and feed-forward outputs.
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        d_ff: int | None = None,
        max_len: int = 256,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for n, v in (
            ("src_vocab", src_vocab),
            ("tgt_vocab", tgt_vocab),
            ("d_model", d_model),
            ("num_layers", num_layers),
            ("max_len", max_len),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{n} must be a positive int, got {v!r}")
        d_ff = 4 * d_model if d_ff is None else d_ff
        self.d_model, self.max_len = d_model, max_len
        self.src_emb = nn.Embedding(src_vocab, d_model, padding_idx=PAD)
        self.tgt_emb = nn.Embedding(tgt_vocab, d_model, padding_idx=PAD)
        for emb in (self.src_emb, self.tgt_emb):  # std d^-1/2, so √d·E is unit-scale like PE
            nn.init.normal_(emb.weight, std=d_model**-0.5)
            emb.weight.data[PAD] = 0.0
        self.register_buffer("pe", sinusoidal_positions(max_len, d_model), persistent=False)
        self.encoder = nn.ModuleList(
            _EncoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)
        )
        self.decoder = nn.ModuleList(
            _DecoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)
        )
        self.enc_ln, self.dec_ln = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, tgt_vocab)

    def _embed(self, emb: nn.Embedding, ids: Tensor, start: int = 0) -> Tensor:
        L = ids.shape[1]
        if start + L > self.max_len:
            raise ValueError(f"sequence of length {start + L} exceeds max_len={self.max_len}")
        # x = √d · E[ids] + PE[pos]                                        (B, L, D)
        return emb(ids) * math.sqrt(self.d_model) + self.pe[start : start + L]

    def _memory(self, src: Tensor) -> dict:
        if not isinstance(src, Tensor) or src.dim() != 2 or src.dtype != torch.long:
            raise ValueError(
                f"src must be a (B, S) long tensor, got "
                f"{getattr(src, 'shape', type(src))} {getattr(src, 'dtype', '')}"
            )
        pad = src == PAD  # (B, S), True = padding (PyTorch's convention)
        x = self._embed(self.src_emb, src)
        for layer in self.encoder:
            x = layer(x, pad)
        memory = self.enc_ln(x)  # (B, S, D)
        return {"memory": memory, "pad": pad}

    def encode(self, src: Tensor) -> dict:
        """Encode ``src (B, S)``; return the decoder state (memory, padding mask, empty caches)."""
        state = self._memory(src)
        caches = [layer.self_attn.new_cache(src.shape[0], self.max_len) for layer in self.decoder]
        return {**state, "caches": caches, "pos": 0}

    def _decode(
        self, y: Tensor, state: dict, start: int, caches: list | None, weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        h = self._embed(self.tgt_emb, y, start)
        w = None
        for i, layer in enumerate(self.decoder):
            last = i == len(self.decoder) - 1
            h, w_i = layer(
                h,
                state["memory"],
                state["pad"],
                None if caches is None else caches[i],
                weights and last,
            )
            w = w_i if last else w
        return self.out(self.dec_ln(h)), w  # (B, T, V), (B, H, T, S) or None

    def step(self, y_prev: Tensor, state: dict) -> tuple[Tensor, dict, Tensor]:
        """Decode one token with the KV caches: ``(logits (B, V), state, weights (B, S))``.

        ``weights``: the last layer's cross-attention, averaged over heads.
        """
        logits, w = self._decode(y_prev[:, None], state, state["pos"], state["caches"], True)
        state = {**state, "pos": state["pos"] + 1}
        return logits[:, 0], state, w.mean(1)[:, 0]  # (B, V), (B, S)

    def forward(
        self, src: Tensor, tgt_in: Tensor, *, return_weights: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Teacher-forced logits ``(B, T, V)``; with ``return_weights`` also the last layer's
        head-averaged cross-attention ``(B, T, S)``."""
        if not isinstance(tgt_in, Tensor) or tgt_in.dim() != 2 or tgt_in.shape[0] != src.shape[0]:
            raise ValueError(
                f"tgt_in must be (B={src.shape[0]}, T) long, got "
                f"{getattr(tgt_in, 'shape', type(tgt_in))}"
            )
        state = self._memory(src)
        logits, w = self._decode(tgt_in, state, 0, None, return_weights)
        return logits if not return_weights else (logits, w.mean(1))
