"""viz.patterns: every panel shows the materialized mask, is titled and labelled, and reports
the same density / work saved as attention.sparse."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from explore_attention.attention import masks, sparse
from explore_attention.viz.patterns import draw_mask, draw_masks, draw_weights_grid
from explore_attention.viz.static import heatmap


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def legend_text(ax):
    return ax.get_legend().get_texts()[0].get_text()


def test_draw_masks_side_by_side():
    mods = [
        masks.causal,
        sparse.strided(4),
        sparse.fixed(4),
        sparse.longformer(2, 1),
        sparse.bigbird(1, 1, 2, length=32),
    ]
    fig = draw_masks(mods, 32, block_size=8)
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 5
    assert "L = 32" in fig._suptitle.get_text()
    for ax, mod in zip(axes, mods, strict=True):
        img = np.asarray(ax.images[0].get_array())
        assert np.array_equal(img, masks.materialize(mod, 32)[0, 0].numpy())
        assert ax.get_title() == mod.__name__
        assert ax.get_xlabel() == "key position j" and ax.get_ylabel() == "query position i"
        text = legend_text(ax)
        assert f"work saved {sparse.work_saved(mod, 32):.1%}" in text
        assert f"density {sparse.density(mod, 32):.1%}" in text
        assert f"tiles skipped {sparse.work_saved(mod, 32, block_size=8):.1%}" in text


def test_draw_mask_tokens_and_rectangular():
    fig = draw_mask(
        masks.causal, 3, 5, tokens=["a", "b", "c"], key_tokens=list("vwxyz"), title="cached"
    )
    ax = fig.axes[0]
    assert ax.get_title() == "cached"
    assert [t.get_text() for t in ax.get_xticklabels()] == list("vwxyz")
    assert np.array_equal(
        np.asarray(ax.images[0].get_array()), masks.materialize(masks.causal, 3, 5)[0, 0].numpy()
    )
    with pytest.raises(ValueError, match="tokens has 2 tokens but the attention has length 3"):
        draw_mask(masks.causal, 3, tokens=["a", "b"])


def test_heatmap_signed_and_grid():
    w = torch.softmax(torch.randn(1, 1, 6, 6), -1)
    fig = heatmap(w, list("abcdef"), title="softmax")
    ax = fig.axes[0]
    assert ax.get_title() == "softmax" and ax.get_xlabel() and ax.get_ylabel()
    assert ax.images[0].get_cmap().name == "viridis"
    assert np.allclose(np.asarray(ax.images[0].get_array()), w[0, 0].numpy())
    signed = w[0, 0] - 0.5 * torch.softmax(torch.randn(6, 6), -1)
    fig = heatmap(signed, title="differential")
    assert fig.axes[0].images[0].get_cmap().name == "RdBu_r"
    assert fig.axes[0].get_xlabel() == "key j"  # no tokens: positions
    fig = draw_weights_grid([w, signed], ["exact", "diff"], suptitle="compare")
    assert [a.get_title() for a in fig.axes if a.images] == ["exact", "diff"]
    with pytest.raises(ValueError, match=r"\(Lq, Lk\) matrix"):
        heatmap(torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match="titles has 1 entries for 2"):
        draw_weights_grid([w, w], ["one"])
    with pytest.raises(ValueError, match="at least one"):
        draw_masks([], 8)
