"""Solutions to the exercises of notebooks/04_applications/04_multimodal_cross_attention.ipynb."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

import torch

from explore_attention.models.vit import patchify
from explore_attention.tasks.multimodal import grounding, make_questions
from explore_attention.train import load_checkpoint


@lru_cache(maxsize=1)
def _model():
    return load_checkpoint(files("explore_attention") / "checkpoints" / "multimodal-scenes")[0]


def exercise_1() -> int:
    """(24 / 4)^2 = 36 patches: 36 keys per cross-attention row."""
    model = _model()
    assert len(model.patch_tokens) == 36
    assert patchify(torch.rand(1, 3, 24, 24), 4).shape[1] == 36
    return 36


def exercise_2() -> float:
    """'Where' questions answered far above the 1/4 of guessing a quadrant."""
    g = grounding(_model(), make_questions(200, seed=5))
    assert g["where_accuracy"] > 0.25 + 0.3, g
    return g["where_accuracy"]


def exercise_3() -> dict[str, float]:
    """Grounding per cross-attention layer and averaged over all layers."""
    model = _model()
    batch = make_questions(200, seed=6)
    n_layers = len(model.text_blocks)
    out = {f"layer {i}": grounding(model, batch, layers=[i])["grounding"] for i in range(n_layers)}
    g = grounding(model, batch)
    out["all layers"], out["chance"] = g["grounding"], g["grounding_chance"]
    assert out["all layers"] > 2 * out["chance"], out
    return out
