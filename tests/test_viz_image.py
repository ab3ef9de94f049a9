"""Image views: the drawn grids are the attention rows, and every panel is labelled."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from conftest import toy_trace

from explore_attention.inspect.trace import AttentionTrace
from explore_attention.models.vit import patch_token_names
from explore_attention.viz.image import (
    cls_by_layer,
    head_maps,
    overlay,
    patch_layout,
    to_grid,
    word_maps,
)


def _panels(fig) -> list:
    return [ax for ax in fig.axes if ax.images]


def _check_labels(fig) -> None:
    assert fig._suptitle is not None and fig._suptitle.get_text()
    panels = _panels(fig)
    assert panels
    for ax in panels:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert len(fig.axes) == 2 * len(panels)  # one colour bar per panel


def test_patch_layout_and_grid() -> None:
    assert patch_layout(16) == (0, 4)
    assert patch_layout(17) == (1, 4)
    with pytest.raises(ValueError, match="G\\*G"):
        patch_layout(18)
    row = torch.arange(10.0)  # [CLS] + 3x3
    torch.testing.assert_close(to_grid(row), torch.arange(1.0, 10.0).reshape(3, 3))
    with pytest.raises(ValueError, match="square grid"):
        to_grid(torch.zeros(2, 3))


def test_head_maps_draw_the_class_token_rows() -> None:
    tr = toy_trace(patch_token_names(3))
    img = torch.rand(3, 12, 12)
    fig = head_maps(tr, img, layer=1)
    _check_labels(fig)
    panels = _panels(fig)
    assert len(panels) == 3
    for h, ax in enumerate(panels):
        drawn = torch.as_tensor(ax.images[1].get_array().data)
        torch.testing.assert_close(drawn, tr.attentions[1, h, 0, 1:].reshape(3, 3))
    plt.close(fig)
    with pytest.raises(ValueError, match="layer"):
        head_maps(tr, img, layer=5)
    with pytest.raises(TypeError, match="AttentionTrace"):
        head_maps(tr.attentions, img)


def test_cls_by_layer_is_head_mean() -> None:
    tr = toy_trace(patch_token_names(3))
    fig = cls_by_layer(tr, torch.rand(12, 12))
    _check_labels(fig)
    for li, ax in enumerate(_panels(fig)):
        drawn = torch.as_tensor(ax.images[1].get_array().data)
        torch.testing.assert_close(drawn, tr.attentions[li, :, 0, 1:].mean(0).reshape(3, 3))
    plt.close(fig)


def test_word_maps_and_overlay() -> None:
    words = ["is", "the", "red", "circle"]
    keys = patch_token_names(4, cls=False)
    a = torch.rand(2, 2, 4, 16).softmax(-1)
    tr = AttentionTrace(a, words, keys, model_name="qa", kind="cross")
    fig = word_maps(tr, torch.rand(3, 16, 16), words=[2, 3])
    _check_labels(fig)
    drawn = torch.as_tensor(_panels(fig)[1].images[1].get_array().data)
    torch.testing.assert_close(drawn, a.mean(dim=(0, 1))[3].reshape(4, 4))
    assert _panels(fig)[1].get_title() == "'circle'"
    plt.close(fig)
    with pytest.raises(ValueError, match="cross"):
        word_maps(toy_trace(patch_token_names(3)), torch.rand(12, 12))
    with pytest.raises(ValueError, match="words"):
        word_maps(tr, torch.rand(3, 16, 16), words=[7])
    fig = overlay(torch.rand(16, 16), torch.rand(4, 4), title="rollout")
    assert fig.axes[0].get_title() == "rollout"
    plt.close(fig)
    with pytest.raises(ValueError, match="image"):
        overlay(torch.rand(2, 2, 2, 2), torch.rand(4, 4))
