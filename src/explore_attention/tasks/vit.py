"""Vision Transformer training tasks: handwritten digits and "what shape is the red object?".

* ``vit-digits`` — scikit-learn's 1,797 real 8×8 digits, 2×2 patches (16 tokens + class token),
  random one-pixel shifts as augmentation, label smoothing 0.1. Metrics: ``val_accuracy`` (used
  for early stopping) and ``test_accuracy`` (held out, reported).
* ``vit-scenes`` — synthetic scenes (:mod:`explore_attention.data.scenes`) with one red object
  and two distractors of other colours; the label is the red object's shape. Because we know
  where the red object is, explanations of this model can be scored (the pointing game).

``EXPLORE_ATTENTION_QUICK=1`` shrinks the default number of steps (tests, notebooks in CI).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.digits import augment_shift, load_digits_splits
from ..data.scenes import SHAPES, SceneConfig, generate_scenes
from ..models.vit import VisionTransformer, ViTConfig
from ..train import Task, TrainConfig
from .common import accuracy, model_config, quick

__all__ = ["SCENES_CANVAS", "SCENES_PATCH", "accuracy", "make_digits", "make_scenes", "quick"]

SCENES_CANVAS = 24  # scenes are 24×24 pixels
SCENES_PATCH = 4  # 4×4 patches → a 6×6 grid of 36 patch tokens


# Each task's ViT; a task option naming a ViTConfig field overrides it.
DIGITS_CONFIG = ViTConfig(image_size=8, patch_size=2, in_channels=1, num_classes=10, num_layers=4)
SCENES_CONFIG = ViTConfig(
    image_size=SCENES_CANVAS,
    patch_size=SCENES_PATCH,
    in_channels=3,
    num_classes=len(SHAPES),
    num_layers=3,
    dropout=0.0,
)


def make_digits(*, split_seed: int = 0, label_smoothing: float = 0.1, **config: Any) -> Task:
    """The ``vit-digits`` task: classify real handwritten digits with a small ViT.

    ``config``: :class:`ViTConfig` fields over :data:`DIGITS_CONFIG`."""
    data = load_digits_splits(seed=split_seed)
    model = VisionTransformer(replace(DIGITS_CONFIG, **config))

    def sample(g: torch.Generator, batch_size: int) -> tuple[Tensor, Tensor]:
        idx = torch.randint(0, len(data.train_y), (batch_size,), generator=g)
        return augment_shift(data.train_x[idx], 1, generator=g), data.train_y[idx]

    def loss(m: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        return F.cross_entropy(m(x).logits, y, label_smoothing=label_smoothing)

    def evaluate(m: nn.Module) -> dict[str, float]:
        return {
            "val_accuracy": accuracy(m, data.val_x, data.val_y),
            "test_accuracy": accuracy(m, data.test_x, data.test_y),
        }

    steps = 300 if quick() else 3000
    defaults = TrainConfig(
        steps=steps,
        batch_size=64,
        lr=2e-3,
        weight_decay=0.05,
        warmup=100,
        eval_every=min(250, steps),
        metric="val_accuracy",
    )
    meta = {"data": "sklearn.datasets.load_digits", "split_seed": split_seed}
    return Task(model, model_config(model), sample, loss, evaluate, defaults, meta)


def make_scenes(
    *, num_train: int = 6000, num_test: int = 1000, data_seed: int = 0, **config: Any
) -> Task:
    """The ``vit-scenes`` task: "what shape is the red object?" on synthetic scenes.

    Every scene has one red object (object 0 of the batch) and two objects of other colours;
    the label is ``SHAPES.index`` of the red object's shape. ``config``: :class:`ViTConfig`
    fields over :data:`SCENES_CONFIG`.
    """
    scene_cfg = SceneConfig(canvas=SCENES_CANVAS, num_objects=3)
    if quick():
        num_train = min(num_train, 1500)
    train = generate_scenes(num_train, seed=data_seed, config=scene_cfg, required_colour=0)
    test = generate_scenes(num_test, seed=data_seed + 1, config=scene_cfg, required_colour=0)
    model = VisionTransformer(replace(SCENES_CONFIG, **config))
    train_y, test_y = train.shapes[:, 0], test.shapes[:, 0]

    def sample(g: torch.Generator, batch_size: int) -> tuple[Tensor, Tensor]:
        idx = torch.randint(0, len(train_y), (batch_size,), generator=g)
        return train.images[idx], train_y[idx]

    def loss(m: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        return F.cross_entropy(m(x).logits, y)

    def evaluate(m: nn.Module) -> dict[str, float]:
        return {"test_accuracy": accuracy(m, test.images, test_y)}

    steps = 400 if quick() else 2500
    defaults = TrainConfig(
        steps=steps,
        batch_size=64,
        lr=2e-3,
        weight_decay=0.01,
        warmup=100,
        eval_every=min(250, steps),
        metric="test_accuracy",
    )
    meta = {
        "data": "explore_attention.data.scenes",
        "data_seed": data_seed,
        "question": "what shape is the red object?",
        "labels": list(SHAPES),
    }
    return Task(model, model_config(model), sample, loss, evaluate, defaults, meta)
