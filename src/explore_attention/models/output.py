"""The one output contract of the project's models.

Every model's ``forward(..., return_weights=False)`` returns a :class:`ModelOutput`. With
``return_weights=True`` its ``attentions`` maps an attention *site* to a tuple over layers of
per-head weights ``(B, H, Lq, Lk)``; :data:`SITE_KIND` says which kind of attention each site is
(the ``kind`` of an :class:`~explore_attention.inspect.AttentionTrace`), so nothing downstream
guesses causality from a mask or reads tensors by position.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

# site -> AttentionTrace kind. A model uses only the sites it has.
SITE_KIND: dict[str, str] = {
    "encoder": "self",  # bidirectional self-attention: ViT, audio encoder, seq2seq encoders
    "decoder": "causal",  # causal self-attention: GPT, Transformer decoder
    "cross": "cross",  # decoder → encoder (translation), words → patches (image+text)
    "text": "self",  # bidirectional self-attention over the words of the image+text model
}


@dataclass(frozen=True)
class ModelOutput:
    """What every model of the project returns from ``forward``."""

    logits: Tensor  # the prediction: (B, L, V) for sequence models, (B, C) for classifiers
    loss: Tensor | None = None  # mean loss when targets were given
    # site -> per-layer (B, H, Lq, Lk) weights (a one-layer, one-head site is (B, 1, Lq, Lk));
    # None unless forward was called with return_weights=True.
    attentions: dict[str, tuple[Tensor, ...]] | None = None

    def __post_init__(self) -> None:
        if self.attentions is not None:
            unknown = sorted(set(self.attentions) - set(SITE_KIND))
            if unknown:
                raise ValueError(
                    f"attentions has unknown site(s) {unknown}; known: {sorted(SITE_KIND)}"
                )
