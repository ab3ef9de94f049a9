"""Solutions to the exercises of notebooks/04_applications/02_vision_transformer.ipynb."""

from __future__ import annotations

from importlib.resources import files

import torch

from explore_attention.data.scenes import SceneConfig, generate_scenes
from explore_attention.explain.pointing_game import pointing_game
from explore_attention.models.vit import patchify
from explore_attention.train import load_checkpoint


def exercise_1() -> tuple[int, int]:
    """An 8x8 digit with P = 4: 4 patches of 16 pixels, plus the class token = 5 tokens."""
    x = torch.rand(1, 1, 8, 8)
    patches = patchify(x, 4)  # (1, N, P*P*C)
    assert patches.shape == (1, 4, 16)
    return patches.shape[1] + 1, patches.shape[2]


def exercise_2() -> None:
    """Patches of a 3-channel 24x24 scene by slicing, channel last within a patch."""
    x = torch.rand(1, 3, 24, 24)
    P, G = 4, 6
    by_hand = torch.stack(
        [
            x[0, :, r * P : (r + 1) * P, c * P : (c + 1) * P].permute(1, 2, 0).reshape(-1)
            for r in range(G)
            for c in range(G)
        ]
    )  # (36, 48)
    torch.testing.assert_close(by_hand, patchify(x, P)[0])


def exercise_3() -> float:
    """Chance of the pointing game: mean share of patches that touch the object."""
    model, _ = load_checkpoint(files("explore_attention") / "checkpoints" / "vit-scenes")
    s = generate_scenes(20, seed=2024, config=SceneConfig(canvas=24), required_colour=0)
    masks = s.masks[:, 0]  # (B, 24, 24) the red object's pixels
    P = 4
    touched = masks.reshape(20, 6, P, 6, P).any(-1).any(-2)  # (B, 6, 6)
    chance = float(touched.float().mean(dim=(1, 2)).mean())
    lib = pointing_game(model, s.images, masks, methods=("attention",))["chance"]
    assert abs(chance - lib) < 1e-6, (chance, lib)
    return chance
