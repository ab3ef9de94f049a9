"""Solutions to the exercises of notebooks/04_applications/04_multimodal_cross_attention.ipynb."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

import torch

from explore_attention.models.vit import patchify
from explore_attention.tasks.multimodal import grounding, make_questions, word_centres
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


def exercise_2() -> dict[str, float]:
    """'Where' questions far above the 1/4 of guessing a quadrant; relation questions far above
    the 1/2 of guessing yes or no (the previous, 2-hop model without locate sat at 1/2)."""
    g = grounding(_model(), make_questions(200, seed=5))
    assert g["where_accuracy"] > 0.25 + 0.5, g
    assert g["relation_accuracy"] > 0.5 + 0.3, g
    return {"where": g["where_accuracy"], "relation": g["relation_accuracy"]}


def exercise_3() -> dict[str, float]:
    """Relation-noun grounding per hop and averaged over all hops: every hop is several times
    above chance, and the mean of the hops grounds best on these questions."""
    model = _model()
    batch = make_questions(200, seed=6)
    hops = model.config.text_layers
    out = {
        f"hop {k + 1}": grounding(model, batch, layers=[k])["grounding_relation"]
        for k in range(hops)
    }
    g = grounding(model, batch)
    out["all hops"], out["chance"] = g["grounding_relation"], g["grounding_chance"]
    assert all(out[f"hop {k + 1}"] > 3 * out["chance"] for k in range(hops)), out
    assert out["all hops"] >= max(out[f"hop {k + 1}"] for k in range(hops)), out
    return out


def exercise_4() -> dict[str, float]:
    """Mean distance (pixels) between the locate head's centre and the true centre, over the
    shape words of 200 fresh questions, vs always guessing the canvas centre."""
    model = _model()
    batch = make_questions(200, seed=9)
    states = {}
    hook = model.norm.register_forward_hook(lambda m, inp, o: states.update(t=inp[0]))
    with torch.no_grad():
        model(batch.scenes.images, batch.ids)
        hook.remove()
        truth = word_centres(batch)  # (N, L, 2) in [0, 1], NaN at other words
        named = ~truth.isnan().any(-1)  # (N, L) shape words
        guess = model.locator(states["t"][named])  # (W, 2)
    canvas = batch.scenes.images.shape[-1]
    err = ((guess - truth[named]).norm(dim=-1) * canvas).mean().item()
    centre = ((truth[named] - 0.5).norm(dim=-1) * canvas).mean().item()
    assert err < centre / 3, (err, centre)
    return {"locate error px": err, "canvas-centre guess px": centre}
