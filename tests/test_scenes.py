"""Synthetic scenes and the digits loader: seeded, exact masks/boxes, and clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from explore_attention.data.digits import augment_shift, load_digits_splits
from explore_attention.data.scenes import (
    COLOURS,
    SHAPES,
    SceneConfig,
    generate_scenes,
    patch_masks,
    shape_mask,
)

CLEAN = SceneConfig(canvas=24, num_objects=3, noise=0.0)


def test_same_seed_same_scenes_other_seed_differs() -> None:
    a, b, c = (generate_scenes(20, seed=s) for s in (3, 3, 4))
    torch.testing.assert_close(a.images, b.images, atol=0, rtol=0)
    assert torch.equal(a.boxes, b.boxes)
    assert not torch.equal(a.boxes, c.boxes)


def test_pixels_match_objects_and_boxes() -> None:
    s = generate_scenes(50, seed=1, config=CLEAN)
    rgb = torch.tensor(list(COLOURS.values()))
    for i in range(len(s)):
        covered = torch.zeros(24, 24, dtype=torch.bool)
        for k in range(3):
            m = s.masks[i, k]
            assert m.sum() > 10
            assert not (covered & m).any()  # objects never overlap
            covered |= m
            ys, xs = torch.nonzero(m, as_tuple=True)
            x0, y0, x1, y1 = s.boxes[i, k].tolist()
            assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
            want = rgb[s.colours[i, k]][:, None].expand(3, int(m.sum()))
            torch.testing.assert_close(s.images[i][:, m], want, atol=0, rtol=0)
        assert (s.images[i][:, ~covered] == 0).all()
        pairs = {(int(c), int(h)) for c, h in zip(s.colours[i], s.shapes[i])}
        assert len(pairs) == 3  # distinct colour/shape pairs


def test_boxes_keep_the_gap() -> None:
    s = generate_scenes(100, seed=2, config=SceneConfig(gap=1))
    for i in range(len(s)):
        b = s.boxes[i].tolist()
        for p in range(3):
            for q in range(p + 1, 3):
                (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = b[p], b[q]
                apart_x = ax1 + 1 <= bx0 or bx1 + 1 <= ax0
                apart_y = ay1 + 1 <= by0 or by1 + 1 <= ay0
                assert apart_x or apart_y


def test_shape_masks_against_float64_geometry() -> None:
    size, x0, y0 = 9, 5, 7
    sq = shape_mask("square", size, 24, x0, y0)
    assert sq.sum() == size * size
    circle = shape_mask("circle", size, 24, x0, y0)
    want = torch.zeros(24, 24, dtype=torch.bool)
    for y in range(24):
        for x in range(24):
            dx, dy = x + 0.5 - (x0 + size / 2), y + 0.5 - (y0 + size / 2)
            want[y, x] = math.hypot(dx, dy) <= size / 2
    assert torch.equal(circle, want)
    tri = shape_mask("triangle", size, 24, x0, y0)
    assert tri[y0 + size - 1].sum() > tri[y0].sum()  # wide base, narrow apex
    assert abs(tri.sum().item() - size * size / 2) < size * 1.5


def test_required_colour() -> None:
    s = generate_scenes(40, seed=5, required_colour=0)
    assert (s.colours[:, 0] == 0).all()
    assert (s.colours[:, 1:] != 0).all()
    assert set(s.shapes[:, 0].tolist()) == set(range(len(SHAPES)))


def test_patch_masks_against_loop() -> None:
    s = generate_scenes(5, seed=6)
    pm = patch_masks(s.masks, 4)  # (5, 3, 36)
    for i in range(5):
        for k in range(3):
            for r in range(6):
                for c in range(6):
                    want = s.masks[i, k, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4].any()
                    assert pm[i, k, 6 * r + c] == want


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="n must be"):
        generate_scenes(0)
    with pytest.raises(ValueError, match="num_objects"):
        SceneConfig(num_objects=50)
    with pytest.raises(ValueError, match="min_size"):
        SceneConfig(min_size=10, max_size=5)
    with pytest.raises(ValueError, match="could not place"):
        generate_scenes(1, config=SceneConfig(canvas=10, num_objects=4, min_size=6, max_size=6))
    with pytest.raises(ValueError, match="shape must be"):
        shape_mask("hexagon", 5, 24, 0, 0)
    with pytest.raises(ValueError, match="patch_size"):
        patch_masks(torch.zeros(2, 10, 10, dtype=torch.bool), 4)
    with pytest.raises(TypeError, match="SceneConfig"):
        generate_scenes(2, config={"canvas": 24})


def test_digits_splits() -> None:
    d = load_digits_splits(seed=0)
    n = len(d.train_y) + len(d.val_y) + len(d.test_y)
    assert n == 1797
    assert d.train_x.shape[1:] == (1, 8, 8) and d.train_x.min() >= 0 and d.train_x.max() <= 1
    again = load_digits_splits(seed=0)
    assert torch.equal(d.test_x, again.test_x)
    flat = lambda x: {tuple(r) for r in x.flatten(1).tolist()}  # noqa: E731
    assert len(flat(d.test_x) & flat(d.train_x)) < 5  # a few duplicates exist in the source
    with pytest.raises(ValueError, match="val_fraction"):
        load_digits_splits(val_fraction=0.5, test_fraction=0.6)


def test_augment_shift_against_slicing() -> None:
    x = torch.rand(6, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    out = augment_shift(x, 1, generator=g)
    g = torch.Generator().manual_seed(0)
    dy, dx = torch.randint(0, 3, (6,), generator=g), torch.randint(0, 3, (6,), generator=g)
    for i in range(6):
        padded = torch.zeros(1, 10, 10)
        padded[:, 1:9, 1:9] = x[i]
        want = padded[:, dy[i] : dy[i] + 8, dx[i] : dx[i] + 8]
        torch.testing.assert_close(out[i], want, atol=0, rtol=0)
    torch.testing.assert_close(augment_shift(x, 0), x, atol=0, rtol=0)
