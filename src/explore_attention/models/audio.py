r"""A small audio transformer: convolutional front end + pre-LN encoder over time.

The shape follows Whisper's encoder (Radford et al. 2022, arXiv:2212.04356, §2.2) at toy size:
a log-mel spectrogram ``(B, n_mels, F)`` passes two 1-D convolutions (kernel 3, GELU; the second
with stride 2, so one token covers 20 ms), gets fixed sinusoidal positions (Vaswani et al. 2017,
arXiv:1706.03762, §3.5; :func:`~explore_attention.attention.positional.sinusoidal_positions`)
and a learned class token, then pre-LN encoder blocks

.. math::

    z'_\ell = z_{\ell-1} + \operatorname{MHA}(\operatorname{LN}(z_{\ell-1})), \qquad
    z_\ell = z'_\ell + \operatorname{MLP}(\operatorname{LN}(z'_\ell))

(:class:`~explore_attention.models.blocks.PreLNBlock`); the class token's
final state is classified. Its self-attention is attention *over time*: which 20 ms slices of the
word each token (and the class token) reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..attention.positional import sinusoidal_positions
from ..checks import check_int, check_probability
from ..inspect.trace import AttentionTrace
from .blocks import PreLNBlock
from .config import resolve_config
from .output import ModelOutput

__all__ = ["AudioTransformer", "AudioTransformerConfig", "token_times"]

TOKEN_SECONDS = 0.02  # one token after the stride-2 convolution over 10 ms frames


@dataclass(frozen=True)
class AudioTransformerConfig:
    """Hyper-parameters of :class:`AudioTransformer`."""

    n_mels: int = 40  # mel bins of the input spectrogram
    max_frames: int = 100  # longest input in 10 ms frames (positions are made for it)
    num_classes: int = 10  # classifier outputs
    d_model: int = 64  # token width
    num_heads: int = 4  # attention heads per layer
    num_layers: int = 2  # encoder blocks
    mlp_ratio: int = 2  # MLP hidden width = mlp_ratio * d_model
    dropout: float = 0.1  # dropout on residual branches and the MLP (training only)

    def __post_init__(self) -> None:
        for name in ("n_mels", "max_frames", "num_classes", "d_model", "num_heads",
                     "num_layers", "mlp_ratio"):  # fmt: skip
            check_int(name, getattr(self, name))
        check_probability("dropout", self.dropout)
        if self.d_model % self.num_heads or self.d_model % 2:
            raise ValueError(
                f"d_model ({self.d_model}) must be even and divisible by num_heads "
                f"({self.num_heads})"
            )

    @property
    def max_tokens(self) -> int:
        """Time tokens after the stride-2 convolution: ``ceil(max_frames / 2)``."""
        return (self.max_frames + 1) // 2


def token_times(num_tokens: int, cls: bool = True) -> list[str]:
    """Token labels ``["[CLS]", "0.00s", "0.02s", …]`` (start time of each time token)."""
    return (["[CLS]"] if cls else []) + [f"{t * TOKEN_SECONDS:.2f}s" for t in range(num_tokens)]


class AudioTransformer(nn.Module):
    """Classify a log-mel spectrogram ``(B, n_mels, frames)``; ``forward`` returns ModelOutput.

    Build from an :class:`AudioTransformerConfig`, its ``asdict`` (how
    :func:`explore_attention.train.load_checkpoint` rebuilds it from ``config.json``) or its
    fields as keywords.
    """

    def __init__(self, config: AudioTransformerConfig | dict | None = None, **fields: Any) -> None:
        super().__init__()
        self.config = c = resolve_config(AudioTransformerConfig, config, fields)
        self.conv1 = nn.Conv1d(c.n_mels, c.d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(c.d_model, c.d_model, kernel_size=3, stride=2, padding=1)
        self.act = nn.GELU()
        pe = sinusoidal_positions(c.max_tokens, c.d_model)  # (T, d)
        self.register_buffer("positions", pe, persistent=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.blocks = nn.ModuleList(
            PreLNBlock(c.d_model, c.num_heads, c.mlp_ratio * c.d_model, c.dropout)
            for _ in range(c.num_layers)
        )
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.num_classes)

    def _check(self, mel: Tensor) -> None:
        c = self.config
        if not isinstance(mel, Tensor):
            raise TypeError(f"mel must be a torch.Tensor, got {type(mel).__name__}")
        if mel.dim() != 3 or mel.shape[1] != c.n_mels or not 3 <= mel.shape[2] <= c.max_frames:
            raise ValueError(
                f"mel must have shape (B, n_mels={c.n_mels}, frames in [3, {c.max_frames}]), "
                f"got {tuple(mel.shape)}"
            )

    def embed(self, mel: Tensor) -> Tensor:
        """Spectrogram ``(B, n_mels, F)`` → tokens ``(B, 1 + ceil(F/2), d)``, class token first."""
        self._check(mel)
        x = self.act(self.conv2(self.act(self.conv1(mel))))  # (B, d, T)
        x = x.transpose(1, 2)  # (B, T, d)
        x = x + self.positions[: x.shape[1]]
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, d)
        return torch.cat([cls, x], dim=1)  # (B, 1 + T, d)

    def forward(self, mel: Tensor, *, return_weights: bool = False) -> ModelOutput:
        """Logits ``(B, classes)``; with ``return_weights`` also ``attentions["encoder"]``, each
        layer's weights ``(B, H, 1 + T, 1 + T)`` over time."""
        x, weights = self.embed(mel), []
        for block in self.blocks:
            res = block(x, return_weights=return_weights)
            x = res.output
            weights.append(res.weights)
        logits = self.head(self.norm(x[:, 0]))
        return ModelOutput(
            logits, attentions={"encoder": tuple(weights)} if return_weights else None
        )

    @torch.no_grad()
    def trace(self, mel: Tensor, model_name: str = "audio-digits") -> AttentionTrace:
        """Self-attention over time of one spectrogram ``(n_mels, F)`` as an AttentionTrace."""
        if isinstance(mel, Tensor) and mel.dim() == 2:
            mel = mel[None]  # (1, n_mels, F)
        if not isinstance(mel, Tensor) or mel.shape[0] != 1:
            raise ValueError(
                f"mel must be one spectrogram (n_mels, F) or (1, n_mels, F), got "
                f"{getattr(mel, 'shape', type(mel).__name__)}"
            )
        was = self.training
        self.eval()
        out = self(mel, return_weights=True)
        self.train(was)
        logits = out.logits
        att = torch.stack([w[0] for w in out.attentions["encoder"]])  # (layers, H, 1+T, 1+T)
        names = token_times(att.shape[-1] - 1)
        probs = logits.softmax(-1)[0]
        meta = {"prediction": int(probs.argmax()), "probabilities": probs.tolist()}
        return AttentionTrace(att, names, names, model_name, "self", meta)
