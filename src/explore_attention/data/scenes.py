"""Synthetic scenes: coloured shapes on a dark canvas, with every object's box and mask known.

Made by the project so that explanations have a ground truth: when a model answers "what shape
is the red object?", we know exactly which pixels (and so which patches) hold the answer. Every
scene is drawn from a seeded ``torch.Generator``, so the same seed gives the same pictures.

A scene holds ``num_objects`` shapes, each a distinct (shape, colour) pair, placed so that their
bounding boxes do not touch. Shapes are drawn as pixel masks:

* square — the whole box;
* circle — pixels whose centre lies within ``s/2`` of the box centre;
* triangle — an upward isosceles triangle, apex at the top middle, base along the bottom.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "COLOURS",
    "SHAPES",
    "SceneBatch",
    "SceneConfig",
    "generate_scenes",
    "patch_masks",
    "shape_mask",
]

SHAPES = ("circle", "square", "triangle")
# name -> RGB in [0, 1]
COLOURS = {
    "red": (0.95, 0.15, 0.1),
    "green": (0.1, 0.75, 0.2),
    "blue": (0.15, 0.35, 1.0),
    "yellow": (0.95, 0.85, 0.1),
}


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn."""

    canvas: int = 24  # image height = width, pixels
    num_objects: int = 3  # shapes per scene (each a distinct shape/colour pair)
    min_size: int = 6  # smallest box side, pixels
    max_size: int = 9  # largest box side, pixels
    noise: float = 0.03  # std of Gaussian pixel noise added to the image (0 = clean)
    gap: int = 1  # minimum empty pixels between two boxes

    def __post_init__(self) -> None:
        for name in ("canvas", "num_objects", "min_size", "max_size"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{name} must be an int >= 1, got {val!r}")
        if self.min_size > self.max_size or self.max_size > self.canvas:
            raise ValueError(
                f"need min_size <= max_size <= canvas, got {self.min_size}, {self.max_size}, "
                f"{self.canvas}"
            )
        if self.num_objects > len(SHAPES) * len(COLOURS):
            raise ValueError(
                f"num_objects must be <= {len(SHAPES) * len(COLOURS)} (distinct shape/colour "
                f"pairs), got {self.num_objects}"
            )
        if self.noise < 0 or self.gap < 0:
            raise ValueError(f"noise and gap must be >= 0, got {self.noise}, {self.gap}")


@dataclass(frozen=True)
class SceneBatch:
    """``N`` scenes with ``K`` objects each, and everything known about the objects."""

    images: Tensor  # (N, 3, S, S) float32 in [0, 1]
    masks: Tensor  # (N, K, S, S) bool: pixels of each object
    boxes: Tensor  # (N, K, 4) int64: x0, y0, x1, y1 (x1, y1 exclusive)
    shapes: Tensor  # (N, K) int64: index into SHAPES
    colours: Tensor  # (N, K) int64: index into list(COLOURS)

    def __len__(self) -> int:
        return self.images.shape[0]

    def describe(self, i: int) -> list[str]:
        """Human-readable objects of scene ``i``, e.g. ``["red circle at (3, 4)–(11, 12)"]``."""
        names = list(COLOURS)
        out = []
        for k in range(self.shapes.shape[1]):
            x0, y0, x1, y1 = self.boxes[i, k].tolist()
            c, s = names[self.colours[i, k]], SHAPES[self.shapes[i, k]]
            out.append(f"{c} {s} at ({x0}, {y0})–({x1}, {y1})")
        return out


def shape_mask(shape: str, size: int, canvas: int, x0: int, y0: int) -> Tensor:
    """Bool mask ``(canvas, canvas)`` of a shape in the ``size × size`` box at ``(x0, y0)``."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    ys = torch.arange(canvas, dtype=torch.float32)[:, None] + 0.5  # (S, 1) pixel centres
    xs = torch.arange(canvas, dtype=torch.float32)[None, :] + 0.5  # (1, S)
    inside = (xs >= x0) & (xs < x0 + size) & (ys >= y0) & (ys < y0 + size)  # (S, S) the box
    cx, cy = x0 + size / 2, y0 + size / 2
    if shape == "square":
        return inside
    if shape == "circle":
        return inside & ((xs - cx) ** 2 + (ys - cy) ** 2 <= (size / 2) ** 2)
    # triangle: half-width grows linearly from 0 at the top to size/2 at the bottom row
    half = (ys - y0) / size * (size / 2)
    return inside & ((xs - cx).abs() <= half + 0.25)


def _place(cfg: SceneConfig, sizes: list[int], g: torch.Generator) -> list[tuple[int, int]]:
    """Top-left corners for boxes of the given sides that keep ``gap`` pixels apart."""
    for _ in range(200):
        corners: list[tuple[int, int]] = []
        for s in sizes:
            for _ in range(50):
                x, y = (int(v) for v in torch.randint(0, cfg.canvas - s + 1, (2,), generator=g))
                if all(
                    x + s + cfg.gap <= px
                    or px + ps + cfg.gap <= x
                    or y + s + cfg.gap <= py
                    or py + ps + cfg.gap <= y
                    for (px, py), ps in zip(corners, sizes)
                ):
                    corners.append((x, y))
                    break
            else:
                break
        if len(corners) == len(sizes):
            return corners
    raise ValueError(
        f"could not place {len(sizes)} objects of sizes {sizes} on a {cfg.canvas}px canvas; "
        "use a larger canvas or fewer/smaller objects"
    )


def generate_scenes(
    n: int, seed: int = 0, config: SceneConfig | None = None, *, required_colour: int | None = None
) -> SceneBatch:
    """Draw ``n`` seeded scenes.

    Args:
        n: number of scenes.
        seed: seed of the generator (same seed and config → identical scenes).
        config: canvas and object settings (:class:`SceneConfig`).
        required_colour: if given, object 0 of every scene has this colour index and no other
            object does (the "what shape is the red object?" task).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    cfg = config or SceneConfig()
    if not isinstance(cfg, SceneConfig):
        raise TypeError(f"config must be a SceneConfig, got {type(cfg).__name__}")
    nc, ns, K, S = len(COLOURS), len(SHAPES), cfg.num_objects, cfg.canvas
    if required_colour is not None and not 0 <= required_colour < nc:
        raise ValueError(f"required_colour must be in [0, {nc}), got {required_colour}")
    g = torch.Generator().manual_seed(seed)
    rgb = torch.tensor(list(COLOURS.values()), dtype=torch.float32)  # (colours, 3)
    images = torch.zeros(n, 3, S, S)
    masks = torch.zeros(n, K, S, S, dtype=torch.bool)
    boxes = torch.zeros(n, K, 4, dtype=torch.int64)
    shapes = torch.zeros(n, K, dtype=torch.int64)
    colours = torch.zeros(n, K, dtype=torch.int64)
    for i in range(n):
        if required_colour is None:
            pairs = torch.randperm(nc * ns, generator=g)[:K]  # distinct shape/colour pairs
            cols, shps = pairs // ns, pairs % ns
        else:
            others = [c for c in range(nc) if c != required_colour]
            pick = torch.randperm(len(others) * ns, generator=g)[: K - 1]
            cols = torch.tensor([required_colour] + [others[int(p) // ns] for p in pick])
            shps = torch.cat([torch.randint(0, ns, (1,), generator=g), pick % ns])
        sizes = torch.randint(cfg.min_size, cfg.max_size + 1, (K,), generator=g).tolist()
        for k, (x, y) in enumerate(_place(cfg, sizes, g)):
            m = shape_mask(SHAPES[int(shps[k])], sizes[k], S, x, y)
            masks[i, k] = m
            images[i, :, m] = rgb[cols[k]][:, None]
            boxes[i, k] = torch.tensor([x, y, x + sizes[k], y + sizes[k]])
        shapes[i], colours[i] = shps, cols
    if cfg.noise > 0:
        images = (images + cfg.noise * torch.randn(images.shape, generator=g)).clamp(0, 1)
    return SceneBatch(images, masks, boxes, shapes, colours)


def patch_masks(masks: Tensor, patch_size: int) -> Tensor:
    """Which patches hold at least one pixel of each object: ``(..., S, S)`` → ``(..., N)``.

    Patches are numbered row by row over the ``(S/P) × (S/P)`` grid, like ViT tokens.
    """
    *lead, S, S2 = masks.shape
    if S != S2 or S % patch_size:
        raise ValueError(
            f"masks must be square with side divisible by patch_size={patch_size}, got "
            f"{tuple(masks.shape)}"
        )
    G = S // patch_size
    m = masks.reshape(*lead, G, patch_size, G, patch_size)  # (..., G, P, G, P)
    return m.any(dim=-1).any(dim=-2).reshape(*lead, G * G)  # (..., G·G)
