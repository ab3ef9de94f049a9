r"""A decoder-only Transformer language model (GPT), pre-LN, small enough to train on a CPU.

Radford et al. 2018/2019 (GPT, GPT-2): a stack of causal self-attention blocks predicting the
next token. Each block is pre-LayerNorm (Xiong et al. 2020, arXiv:2002.04745):

.. math::

    h \leftarrow h + \mathrm{Attn}(\mathrm{LN}_1(h)), \qquad
    h \leftarrow h + \mathrm{MLP}(\mathrm{LN}_2(h)), \qquad
    p(x_{t+1} \mid x_{\le t}) = \mathrm{softmax}(\mathrm{LN}_f(h_t) W_{\text{out}})

Attention is :class:`~explore_attention.attention.MultiHeadAttention` with the causal mask
(``masks.causal``); positions are either a learned table added to the token embeddings (GPT-2)
or rotary embeddings applied to queries and keys (RoPE, Su et al. 2021, arXiv:2104.09864).
With ``mlp_ratio=0`` the blocks are attention-only, the models Olsson et al. 2022
(arXiv:2209.11895) use to study induction heads.

Generation keeps a :class:`~explore_attention.attention.KVCache` per layer, so each new token
costs one query against the cached keys instead of re-running the prefix.

Shapes: ``idx (B, L)`` token ids; ``logits (B, L, V)``; attention weights ``(B, H, L, L)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import KVCache, MultiHeadAttention, masks
from ..attention.core import AttentionOutput
from ..attention.positional import apply_rope
from ..checks import check_int, check_probability
from .config import resolve_config
from .output import ModelOutput

__all__ = ["GPT", "GPTConfig"]

POSITIONS = ("learned", "rope")


@dataclass(frozen=True)
class GPTConfig:
    """Hyper-parameters of :class:`GPT` (the defaults are nanoGPT's CPU char-level recipe)."""

    vocab_size: int = 128  # number of token ids
    max_len: int = 64  # longest context the model sees (size of the learned position table)
    num_layers: int = 4  # Transformer blocks
    num_heads: int = 4  # attention heads per block
    d_model: int = 128  # residual stream width (n_embd in GPT-2)
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * d_model; 0 = attention-only blocks
    dropout: float = 0.0  # dropout on embeddings, attention weights and residual branches
    bias: bool = True  # biases in linear layers and LayerNorms (GPT-2 has them)
    positions: str = "learned"  # "learned" (GPT-2 table) or "rope" (rotary, on q and k)
    rope_base: float = 10000.0  # RoPE frequency base (used only with positions="rope")
    tie_weights: bool = True  # share the token embedding with the output projection (GPT-2)
    layer_norm_eps: float = 1e-5  # LayerNorm epsilon (GPT-2's value)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_len", "num_layers", "num_heads", "d_model"):
            check_int(name, getattr(self, name))
        check_int("mlp_ratio", self.mlp_ratio, minimum=0)
        check_probability("dropout", self.dropout)
        if self.d_model % self.num_heads != 0:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
        if self.positions == "rope" and (self.d_model // self.num_heads) % 2:
            raise ValueError(
                "RoPE needs an even head dim, got d_model/num_heads = "
                f"{self.d_model // self.num_heads}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


class CausalSelfAttention(MultiHeadAttention):
    """Multi-head self-attention (the block passes ``masks.causal``), with optional RoPE.

    Only the positions differ from :class:`MultiHeadAttention`: with ``positions="rope"``
    :meth:`position_qk` rotates the new queries and keys by their absolute positions before they
    enter the KV cache.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config.d_model, config.num_heads, bias=config.bias, dropout=config.dropout)
        self.rope_base = config.rope_base if config.positions == "rope" else None

    def position_qk(self, q: Tensor, k: Tensor, start: int) -> tuple[Tensor, Tensor]:
        """RoPE (Su et al. 2021, arXiv:2104.09864) on ``q, k (B, H, L, Dh)`` at ``start..``."""
        if self.rope_base is None:
            return q, k
        pos = torch.arange(start, start + q.shape[2], device=q.device)  # (L,)
        return apply_rope(q, pos, base=self.rope_base), apply_rope(k, pos, base=self.rope_base)


class MLP(nn.Module):
    r"""Position-wise feed-forward net, :math:`\mathrm{GELU}(x W_1 + b_1) W_2 + b_2`."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        c = config
        hidden = c.mlp_ratio * c.d_model
        self.fc = nn.Linear(c.d_model, hidden, bias=c.bias)
        self.proj = nn.Linear(hidden, c.d_model, bias=c.bias)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: Tensor) -> Tensor:
        # GPT-2's tanh approximation of GELU (Hendrycks & Gimpel 2016, arXiv:1606.08415)
        return self.drop(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class Block(nn.Module):
    """One pre-LN Transformer block (attention, then MLP unless ``mlp_ratio == 0``)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        c = config
        self.ln_1 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps, bias=c.bias)
        self.attn = CausalSelfAttention(c)
        self.drop = nn.Dropout(c.dropout)
        self.has_mlp = c.mlp_ratio > 0
        if self.has_mlp:
            self.ln_2 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps, bias=c.bias)
            self.mlp = MLP(c)

    def forward(
        self, h: Tensor, *, cache: KVCache | None = None, return_weights: bool = False
    ) -> AttentionOutput:
        """``h (B, L, d)`` → ``AttentionOutput(h (B, L, d), weights (B, H, L, Lk) or None)``."""
        a = self.attn(
            self.ln_1(h), mask_mod=masks.causal, cache=cache, return_weights=return_weights
        )
        # h ← h + Attn(LN₁(h))
        h = h + self.drop(a.output)
        if self.has_mlp:
            # h ← h + MLP(LN₂(h))
            h = h + self.mlp(self.ln_2(h))
        return AttentionOutput(h, a.weights)


class GPT(nn.Module):
    """Decoder-only Transformer language model; see the module docstring for the equations."""

    def __init__(self, config: GPTConfig | dict | None = None, **fields: Any) -> None:
        """``config``: a :class:`GPTConfig`, its ``to_dict()`` (as checkpoints store it), or
        its fields as keywords (``GPT(num_layers=2)``)."""
        super().__init__()
        self.config = c = resolve_config(GPTConfig, config, fields)
        self.wte = nn.Embedding(c.vocab_size, c.d_model)
        self.wpe = nn.Embedding(c.max_len, c.d_model) if c.positions == "learned" else None
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.num_layers))
        self.ln_f = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps, bias=c.bias)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_weights:
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        # GPT-2: residual projections scaled by 1/sqrt(2 · num_layers) at init.
        for name, p in self.named_parameters():
            if name.endswith(("out_proj.weight", "mlp.proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.num_layers))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Distinct parameters (a tied embedding is counted once)."""
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size: int, capacity: int | None = None) -> list[KVCache]:
        """One empty KV cache per layer, ``capacity`` positions (default ``max_len``)."""
        cap = self.config.max_len if capacity is None else capacity
        return [b.attn.new_cache(batch_size, cap) for b in self.blocks]

    def _check_idx(self, idx: Tensor, start: int) -> None:
        if not isinstance(idx, Tensor):
            raise TypeError(f"idx must be a torch.Tensor of token ids, got {type(idx).__name__}")
        if idx.dim() != 2 or idx.dtype not in (torch.long, torch.int, torch.int16, torch.uint8):
            raise ValueError(
                f"idx must be integer token ids of shape (B, L), got shape {tuple(idx.shape)} "
                f"dtype {idx.dtype}"
            )
        if idx.shape[1] < 1:
            raise ValueError("idx must hold at least one token per row")
        if self.wpe is not None and start + idx.shape[1] > self.config.max_len:
            raise ValueError(
                f"sequence of {start + idx.shape[1]} positions exceeds max_len "
                f"{self.config.max_len} (learned positions)"
            )

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        *,
        cache: list[KVCache] | None = None,
        return_weights: bool = False,
    ) -> ModelOutput:
        """Next-token logits ``(B, L, V)`` for ``idx (B, L)``; mean cross-entropy against
        ``targets (B, L)`` as ``loss`` if given.

        With ``cache`` (from :meth:`new_cache`), ``idx`` continues the cached tokens.
        ``return_weights=True`` fills ``attentions["decoder"]``: each layer's causal attention
        ``(B, H, L, Lk)`` (slower: the eager path instead of the fused kernel).
        """
        start = 0 if cache is None else cache[0].length
        self._check_idx(idx, start)
        if cache is not None and len(cache) != len(self.blocks):
            raise ValueError(f"cache must hold {len(self.blocks)} layers, got {len(cache)}")
        B, L = idx.shape
        h = self.wte(idx)  # (B, L, d_model)
        if self.wpe is not None:
            pos = torch.arange(start, start + L, device=idx.device)
            h = h + self.wpe(pos)  # (B, L, d_model)
        h = self.drop(h)
        weights = []
        for i, block in enumerate(self.blocks):
            res = block(h, cache=None if cache is None else cache[i], return_weights=return_weights)
            h = res.output
            weights.append(res.weights)
        logits = self.lm_head(self.ln_f(h))  # (B, L, V)
        loss = None
        if targets is not None:
            if targets.shape != idx.shape:
                raise ValueError(
                    f"targets must have idx's shape {tuple(idx.shape)}, got {tuple(targets.shape)}"
                )
            loss = F.cross_entropy(logits.reshape(B * L, -1), targets.reshape(B * L))
        return ModelOutput(logits, loss, {"decoder": tuple(weights)} if return_weights else None)

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        r"""Sample ``max_new_tokens`` continuations of ``idx (B, L)``; returns ``(B, L + new)``.

        Each step samples from :math:`\mathrm{softmax}(z / T)` restricted to the ``top_k``
        largest logits; ``temperature=0`` is greedy (argmax). With ``use_cache`` the prefix is
        run once and each new token attends to the cached keys; when the context reaches
        ``max_len`` it is cropped to the last ``max_len`` tokens and the cache rebuilt.
        """
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise TypeError(f"max_new_tokens must be an int, got {max_new_tokens!r}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
        self._check_idx(idx[:, -self.config.max_len :], 0)
        was_training = self.training
        self.eval()
        out = idx
        cache: list[KVCache] | None = None
        step_in = out[:, -self.config.max_len :]
        for _ in range(max_new_tokens):
            if use_cache:
                if cache is None or cache[0].length + step_in.shape[1] > self.config.max_len:
                    cache = self.new_cache(out.shape[0])
                    step_in = out[:, -self.config.max_len :]
                logits = self(step_in, cache=cache).logits[:, -1]  # (B, V)
            else:
                logits = self(out[:, -self.config.max_len :]).logits[:, -1]  # (B, V)
            nxt = _sample(logits, temperature, top_k, generator)  # (B, 1)
            out = torch.cat([out, nxt], dim=1)
            step_in = nxt
        self.train(was_training)
        return out


def _sample(
    logits: Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
) -> Tensor:
    """One token per row from ``logits (B, V)``: greedy at T=0, else top-k softmax sampling."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    z = logits.float() / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = torch.topk(z, top_k, dim=-1).values[:, -1:]  # (B, 1)
        z = z.masked_fill(z < kth, float("-inf"))
    probs = torch.softmax(z, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)  # (B, 1)
