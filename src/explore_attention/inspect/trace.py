"""The inspection data contract: one input's attention from every layer and head."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ..checks import check_tokens

__all__ = ["KINDS", "AttentionTrace"]

KINDS = ("self", "cross", "causal")


@dataclass
class AttentionTrace:
    """Attention captured from a model for one input (the BertViz-style contract).

    ``attentions[l, h, i, j]`` is how much query token ``i`` attends to key token ``j`` in head
    ``h`` of layer ``l``.
    """

    attentions: Tensor  # (layers, heads, Lq, Lk) for one input, float32 on CPU
    tokens: list[str]  # query-side tokens (len == Lq)
    key_tokens: list[str]  # key-side tokens (== tokens for self-attention)
    model_name: str  # where it came from, for titles
    kind: str  # "self" | "cross" | "causal"
    meta: dict = field(default_factory=dict)  # free-form extras (layer names, source, ...)

    def __post_init__(self) -> None:
        a = self.attentions
        if not isinstance(a, Tensor):
            raise TypeError(f"attentions must be a torch.Tensor, got {type(a).__name__}")
        if a.dim() != 4:
            raise ValueError(
                f"attentions must have shape (layers, heads, Lq, Lk), got {tuple(a.shape)}"
            )
        self.attentions = a.detach().to("cpu", torch.float32)
        self.tokens = check_tokens("tokens", [str(t) for t in self.tokens], a.shape[2])
        self.key_tokens = check_tokens("key_tokens", [str(t) for t in self.key_tokens], a.shape[3])
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def num_layers(self) -> int:
        return self.attentions.shape[0]

    @property
    def num_heads(self) -> int:
        return self.attentions.shape[1]

    def to_dict(self) -> dict:
        return {
            "model_name": self.model_name,
            "kind": self.kind,
            "tokens": self.tokens,
            "key_tokens": self.key_tokens,
            "shape": list(self.attentions.shape),
            "attentions": self.attentions.tolist(),
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict) -> AttentionTrace:
        return cls(
            attentions=torch.tensor(d["attentions"], dtype=torch.float32),
            tokens=d["tokens"],
            key_tokens=d["key_tokens"],
            model_name=d["model_name"],
            kind=d["kind"],
            meta=d.get("meta", {}),
        )

    def save_json(self, path: str | Path) -> Path:
        """Write the trace as JSON atomically (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict()), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load_json(cls, path: str | Path) -> AttentionTrace:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def self_attention_weights(trace: AttentionTrace, what: str) -> torch.Tensor:
    """``trace.attentions`` ``(layers, heads, L, L)`` of a self- or causal-attention trace;
    ``what`` names the analysis in the error a cross-attention trace gets."""
    if not isinstance(trace, AttentionTrace):
        raise TypeError(f"trace must be an AttentionTrace, got {type(trace).__name__}")
    if trace.kind == "cross":
        raise ValueError(
            f"trace.kind is 'cross': {what} compare query and key positions of one sequence; "
            "pass a self- or causal-attention trace"
        )
    return trace.attentions
