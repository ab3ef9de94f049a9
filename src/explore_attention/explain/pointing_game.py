r"""The pointing game: does an explanation's most relevant patch land on the object?

Zhang et al. 2016, "Top-down Neural Attention by Excitation Backprop" (arXiv:1608.00507) score a
saliency map by whether its maximum falls inside the annotated object. On the synthetic scenes
(:mod:`explore_attention.data.scenes`) we know every object's pixels, so for a ViT's class token
we can score, per method, the fraction of images whose most relevant patch holds a pixel of the
object the answer is about — and compare it with a uniformly random patch.

Methods (all return one score per patch, for the class token's prediction):

* ``"attention"`` — the last layer's class-token attention, averaged over heads.
* ``"rollout"`` — attention rollout (Abnar & Zuidema 2020, arXiv:2005.00928), Eq. (1):
  :math:`\tilde A_\ell = \tfrac12 \bar A_\ell + \tfrac12 I` (rows renormalised),
  :math:`R = \tilde A_L \cdots \tilde A_1`, read at the class token's row.
* ``"gradient"`` — gradient-weighted relevance (Chefer, Gur & Wolf 2021, "Generic
  Attention-model Explainability", arXiv:2103.15679), Eqs. (5)–(6):
  :math:`\bar A_\ell = \mathbb{E}_h\big[(\nabla A_\ell \odot A_\ell)^+\big]`,
  :math:`R \leftarrow R + \bar A_\ell R` from :math:`R = I`, with :math:`\nabla A_\ell` the
  gradient of the predicted class's logit.
* ``"random"`` — uniform noise (the baseline, drawn from a seeded generator).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..data.scenes import patch_masks
from ..models.vit import VisionTransformer

__all__ = ["METHODS", "patch_relevance", "pointing_game", "rollout_batch"]

METHODS = ("attention", "rollout", "gradient", "random")


def rollout_batch(weights: list[Tensor], residual: float = 0.5) -> Tensor:
    """Attention rollout of a batch: each layer's ``(B, H, L, L)`` → ``(B, L, L)``."""
    if not weights:
        raise ValueError("weights must hold at least one layer, got an empty list")
    B, _, L, _ = weights[0].shape
    eye = torch.eye(L, dtype=weights[0].dtype).expand(B, L, L)  # (B, L, L)
    r = eye
    for w in weights:
        a = residual * w.mean(1) + (1 - residual) * eye  # (B, L, L) heads fused by mean
        a = a / a.sum(-1, keepdim=True)
        r = a @ r
    return r


def patch_relevance(
    model: VisionTransformer,
    images: Tensor,
    method: str,
    *,
    target: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Relevance of each patch for the class token's prediction, ``(B, N)``.

    ``target (B,)``: the class to explain (default: the predicted one; only ``"gradient"`` uses
    it).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(model, VisionTransformer):
        raise TypeError(f"model must be a VisionTransformer, got {type(model).__name__}")
    N = model.config.num_patches
    if method == "random":
        return torch.rand(images.shape[0], N, generator=generator)
    was = model.training
    model.eval()
    try:
        if method == "gradient":
            with torch.enable_grad():
                out = model(images, return_weights=True)
                logits, weights = out.logits, out.attentions["encoder"]
                for w in weights:
                    w.retain_grad()
                cls = logits.argmax(-1) if target is None else target
                logits.gather(1, cls[:, None]).sum().backward()
            B, _, L, _ = weights[0].shape
            r = torch.eye(L).expand(B, L, L).clone()  # (B, L, L)
            for w in weights:
                a = (w.grad * w).clamp_min(0).mean(1).detach()  # (B, L, L) Eq. (5)
                r = r + a @ r  # Eq. (6)
            model.zero_grad(set_to_none=True)
            return r[:, 0, 1:]  # (B, N) the class token's row, patches only
        with torch.no_grad():
            weights = model(images, return_weights=True).attentions["encoder"]
        if method == "attention":
            return weights[-1].mean(1)[:, 0, 1:]  # (B, N)
        return rollout_batch(weights)[:, 0, 1:]  # (B, N)
    finally:
        model.train(was)


def pointing_game(
    model: VisionTransformer,
    images: Tensor,
    object_masks: Tensor,
    *,
    methods: tuple[str, ...] = METHODS,
    seed: int = 0,
) -> dict[str, float]:
    """Fraction of images whose most relevant patch holds a pixel of the object, per method.

    Args:
        images: ``(B, C, S, S)`` scenes.
        object_masks: ``(B, S, S)`` bool pixels of the object the answer is about.

    Returns ``{method: hit rate}`` plus ``"chance"``: the expected hit rate of a uniformly
    random patch (the mean fraction of patches that touch the object).
    """
    if object_masks.shape != (images.shape[0], images.shape[2], images.shape[3]):
        raise ValueError(
            f"object_masks must have shape (B, S, S) = "
            f"{(images.shape[0], images.shape[2], images.shape[3])}, got "
            f"{tuple(object_masks.shape)}"
        )
    inside = patch_masks(object_masks, model.config.patch_size)  # (B, N) bool
    g = torch.Generator().manual_seed(seed)
    scores = {}
    for m in methods:
        rel = patch_relevance(model, images, m, generator=g)  # (B, N)
        best = rel.argmax(-1, keepdim=True)  # (B, 1)
        scores[m] = inside.gather(1, best).float().mean().item()
    scores["chance"] = inside.float().mean().item()
    return scores


def main(argv: list[str] | None = None) -> int:
    """Print the pointing game of the shipped ``vit-scenes`` checkpoint on fresh scenes."""
    import argparse
    import json
    from pathlib import Path

    from ..data.scenes import SceneConfig, generate_scenes
    from ..train import load_checkpoint

    p = argparse.ArgumentParser(prog="python -m explore_attention.explain.pointing_game")
    default = Path(__file__).resolve().parents[1] / "checkpoints" / "vit-scenes"
    p.add_argument("--checkpoint", default=str(default), help="a vit-scenes checkpoint folder")
    p.add_argument("--scenes", type=int, default=1000, help="number of fresh scenes")
    p.add_argument("--seed", type=int, default=2024, help="seed of the scenes")
    args = p.parse_args(argv)
    model, _ = load_checkpoint(args.checkpoint)
    s = generate_scenes(
        args.scenes, seed=args.seed, config=SceneConfig(canvas=24), required_colour=0
    )
    from ..tasks.common import accuracy

    out = {
        "scenes": args.scenes,
        "seed": args.seed,
        "accuracy": accuracy(model, s.images, s.shapes[:, 0]),
        "pointing_game": pointing_game(model, s.images, s.masks[:, 0]),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
