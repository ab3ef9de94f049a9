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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import KVCache, MultiHeadAttention, attend, masks
from ..attention.core import MaskMod

__all__ = ["GPT", "GPTConfig", "GPTOutput"]

POSITIONS = ("learned", "rope")


@dataclass(frozen=True)
class GPTConfig:
    """Hyper-parameters of :class:`GPT` (the defaults are nanoGPT's CPU char-level recipe)."""

    vocab_size: int = 128  # number of token ids
    block_size: int = 64  # longest context the model sees (size of the learned position table)
    n_layer: int = 4  # Transformer blocks
    n_head: int = 4  # attention heads per block
    d_model: int = 128  # residual stream width (n_embd in GPT-2)
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * d_model; 0 = attention-only blocks
    dropout: float = 0.0  # dropout on embeddings, attention weights and residual branches
    bias: bool = True  # biases in linear layers and LayerNorms (GPT-2 has them)
    positions: str = "learned"  # "learned" (GPT-2 table) or "rope" (rotary, on q and k)
    rope_base: float = 10000.0  # RoPE frequency base (used only with positions="rope")
    tie_weights: bool = True  # share the token embedding with the output projection (GPT-2)
    layer_norm_eps: float = 1e-5  # LayerNorm epsilon (GPT-2's value)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "d_model"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{name} must be an int >= 1, got {val!r}")
        if isinstance(self.mlp_ratio, bool) or not isinstance(self.mlp_ratio, int):
            raise ValueError(f"mlp_ratio must be an int >= 0, got {self.mlp_ratio!r}")
        if self.mlp_ratio < 0:
            raise ValueError(f"mlp_ratio must be an int >= 0, got {self.mlp_ratio!r}")
        if self.d_model % self.n_head != 0:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
            )
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
        if self.positions == "rope" and (self.d_model // self.n_head) % 2:
            raise ValueError(
                f"RoPE needs an even head dim, got d_model/n_head = {self.d_model // self.n_head}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GPTOutput:
    """What :meth:`GPT.forward` returns."""

    logits: Tensor  # (B, L, V)
    loss: Tensor | None  # mean next-token cross-entropy when targets were given
    attentions: tuple[Tensor, ...] | None  # per layer (B, H, L, Lk) when asked for


class CausalSelfAttention(MultiHeadAttention):
    """Multi-head self-attention under the causal mask, with optional RoPE on q and k."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__(cfg.d_model, cfg.n_head, bias=cfg.bias, dropout=cfg.dropout)
        self.rope_base = cfg.rope_base if cfg.positions == "rope" else None

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        *,
        mask_mod: MaskMod = masks.causal,
        cache: KVCache | None = None,
        return_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """``x (B, L, d_model)`` → ``(output (B, L, d_model), weights (B, H, L, Lk) or None)``.

        ``mask_mod`` is passed explicitly by :class:`Block` so hooks (``inspect.capture``) can
        see that the attention is causal.
        """
        B, L, _ = x.shape
        q = self._split(self.q_proj(x), self.num_heads)  # (B, H, L, Dh)
        k = self._split(self.k_proj(x), self.num_kv_heads)  # (B, H, L, Dh)
        v = self._split(self.v_proj(x), self.num_kv_heads)  # (B, H, L, Dh)
        if self.rope_base is not None:
            from ..attention.positional import apply_rope

            start = 0 if cache is None else cache.length
            pos = torch.arange(start, start + L, device=x.device)
            q = apply_rope(q, pos, base=self.rope_base)  # (B, H, L, Dh)
            k = apply_rope(k, pos, base=self.rope_base)  # (B, H, L, Dh)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, H, cached + L, Dh)
        res = attend(
            q,
            k,
            v,
            mask_mod=mask_mod,
            dropout_p=self.dropout if self.training else 0.0,
            return_weights=return_weights,
        )
        out = res.output.transpose(1, 2).reshape(B, L, self.d_model)  # (B, L, d_model)
        return self.out_proj(out), res.weights


class MLP(nn.Module):
    r"""Position-wise feed-forward net, :math:`\mathrm{GELU}(x W_1 + b_1) W_2 + b_2`."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        hidden = cfg.mlp_ratio * cfg.d_model
        self.fc = nn.Linear(cfg.d_model, hidden, bias=cfg.bias)
        self.proj = nn.Linear(hidden, cfg.d_model, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        # GPT-2's tanh approximation of GELU (Hendrycks & Gimpel 2016, arXiv:1606.08415)
        return self.drop(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class Block(nn.Module):
    """One pre-LN Transformer block (attention, then MLP unless ``mlp_ratio == 0``)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.has_mlp = cfg.mlp_ratio > 0
        if self.has_mlp:
            self.ln_2 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, bias=cfg.bias)
            self.mlp = MLP(cfg)

    def forward(
        self, h: Tensor, *, cache: KVCache | None = None, return_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        a, w = self.attn(
            self.ln_1(h), mask_mod=masks.causal, cache=cache, return_weights=return_weights
        )
        # h ← h + Attn(LN₁(h))
        h = h + self.drop(a)
        if self.has_mlp:
            # h ← h + MLP(LN₂(h))
            h = h + self.mlp(self.ln_2(h))
        return h, w


class GPT(nn.Module):
    """Decoder-only Transformer language model; see the module docstring for the equations."""

    def __init__(self, cfg: GPTConfig | dict) -> None:
        """``cfg``: a :class:`GPTConfig`, or its ``to_dict()`` (as checkpoints store it)."""
        super().__init__()
        if isinstance(cfg, dict):
            cfg = GPTConfig(**cfg)
        if not isinstance(cfg, GPTConfig):
            raise TypeError(
                f"cfg must be a GPTConfig or a dict of its fields, got {type(cfg).__name__}"
            )
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.block_size, cfg.d_model) if cfg.positions == "learned" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        # GPT-2: residual projections scaled by 1/sqrt(2 · n_layer) at init.
        for name, p in self.named_parameters():
            if name.endswith(("out_proj.weight", "mlp.proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

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
        """One empty KV cache per layer, ``capacity`` positions (default ``block_size``)."""
        cap = self.cfg.block_size if capacity is None else capacity
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
        if self.wpe is not None and start + idx.shape[1] > self.cfg.block_size:
            raise ValueError(
                f"sequence of {start + idx.shape[1]} positions exceeds block_size "
                f"{self.cfg.block_size} (learned positions)"
            )

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        *,
        cache: list[KVCache] | None = None,
        return_weights: bool = False,
    ) -> GPTOutput:
        """Next-token logits for ``idx (B, L)``; cross-entropy against ``targets (B, L)`` if given.

        With ``cache`` (from :meth:`new_cache`), ``idx`` continues the cached tokens.
        ``return_weights=True`` also returns each layer's attention ``(B, H, L, Lk)`` (slower:
        the eager path instead of the fused kernel).
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
            h, w = block(
                h, cache=None if cache is None else cache[i], return_weights=return_weights
            )
            weights.append(w)
        logits = self.lm_head(self.ln_f(h))  # (B, L, V)
        loss = None
        if targets is not None:
            if targets.shape != idx.shape:
                raise ValueError(
                    f"targets must have idx's shape {tuple(idx.shape)}, got {tuple(targets.shape)}"
                )
            loss = F.cross_entropy(logits.reshape(B * L, -1), targets.reshape(B * L))
        return GPTOutput(logits, loss, tuple(weights) if return_weights else None)

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
        ``block_size`` it is cropped to the last ``block_size`` tokens and the cache rebuilt.
        """
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise TypeError(f"max_new_tokens must be an int, got {max_new_tokens!r}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
        self._check_idx(idx[:, -self.cfg.block_size :], 0)
        was_training = self.training
        self.eval()
        out = idx
        cache: list[KVCache] | None = None
        step_in = out[:, -self.cfg.block_size :]
        for _ in range(max_new_tokens):
            if use_cache:
                if cache is None or cache[0].length + step_in.shape[1] > self.cfg.block_size:
                    cache = self.new_cache(out.shape[0])
                    step_in = out[:, -self.cfg.block_size :]
                logits = self(step_in, cache=cache).logits[:, -1]  # (B, V)
            else:
                logits = self(out[:, -self.cfg.block_size :]).logits[:, -1]  # (B, V)
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
