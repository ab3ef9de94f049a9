"""scikit-learn's handwritten digits (1,797 real 8×8 images) as seeded train/val/test tensors.

The images ship with scikit-learn (``sklearn.datasets.load_digits``), so the Vision Transformer
trains offline. Pixels are 0..16 in the source; we scale them to ``[0, 1]`` and keep the
``(N, 1, 8, 8)`` layout of a one-channel image batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["DigitsSplits", "augment_shift", "load_digits_splits"]


@dataclass(frozen=True)
class DigitsSplits:
    """Seeded, stratification-free random splits of the digits."""

    train_x: Tensor  # (N_train, 1, 8, 8) float32 in [0, 1]
    train_y: Tensor  # (N_train,) int64 class 0..9
    val_x: Tensor  # (N_val, 1, 8, 8)
    val_y: Tensor  # (N_val,)
    test_x: Tensor  # (N_test, 1, 8, 8)
    test_y: Tensor  # (N_test,)


def load_digits_splits(
    seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2
) -> DigitsSplits:
    """Load the digits and split them with a seeded permutation.

    Args:
        seed: seed of the permutation (same seed → same splits).
        val_fraction: share of the images kept for validation (early stopping).
        test_fraction: share held out for the reported test accuracy.
    """
    for name, val in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not isinstance(val, (int, float)) or not 0.0 < val < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {val!r}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}"
        )
    from sklearn.datasets import load_digits  # heavy import, only when asked

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    y = torch.tensor(d.target, dtype=torch.int64)  # (N,)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=g)
    n_test = round(len(y) * test_fraction)
    n_val = round(len(y) * val_fraction)
    te, va, tr = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
    return DigitsSplits(x[tr], y[tr], x[va], y[va], x[te], y[te])


def augment_shift(
    x: Tensor, max_shift: int = 1, generator: torch.Generator | None = None
) -> Tensor:
    """Translate each image by a random integer offset in ``[-max_shift, max_shift]`` (zero fill).

    A small translation is the augmentation a patch-based model needs most on 8×8 digits: it
    has no convolutional prior, so it must see that a stroke one pixel to the left is the same.
    """
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    B, _, H, W = x.shape
    p = max_shift
    padded = torch.nn.functional.pad(x, (p, p, p, p))  # (B, C, H + 2p, W + 2p)
    dy = torch.randint(0, 2 * p + 1, (B,), generator=generator)
    dx = torch.randint(0, 2 * p + 1, (B,), generator=generator)
    rows = (dy[:, None] + torch.arange(H)[None, :])[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(W)[None, :])[:, None, None, :]  # (B, 1, 1, W)
    b = torch.arange(B)[:, None, None, None]  # (B, 1, 1, 1)
    c = torch.arange(x.shape[1])[None, :, None, None]  # (1, C, 1, 1)
    return padded[b, c, rows, cols]  # (B, C, H, W)
