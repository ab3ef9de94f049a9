"""viz.heatmap / viz.head_grid draw what they are given, labelled."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from conftest import toy_trace

from explore_attention.viz import clean_token, head_grid, heatmap


def test_heatmap_draws_the_matrix_with_labels():
    w = torch.softmax(torch.randn(1, 1, 3, 4), -1)
    fig = heatmap(w, ["a", "Ġb", "c"], ["w", "x", "y", "z"], title="my title")
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), w[0, 0].numpy())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "␣b", "c"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["w", "x", "y", "z"]
    assert ax.get_title() == "my title" and ax.get_xlabel() and ax.get_ylabel()
    assert len(fig.axes) == 2  # the colour bar
    plt.close(fig)


def test_heatmap_into_given_axes_and_defaults():
    fig, ax = plt.subplots()
    out = heatmap(np.eye(2), ["a", "b"], ax=ax)
    assert out is fig and ax.get_title() == "Attention weights"
    plt.close(fig)


def test_heatmap_bad_input():
    with pytest.raises(ValueError, match="key_tokens has 2 tokens"):
        heatmap(torch.ones(3, 4), ["a", "b", "c"], ["x", "y"])
    with pytest.raises(ValueError, match="query_tokens has 1 tokens"):
        heatmap(torch.ones(3, 3), ["a"])
    with pytest.raises(ValueError, match="shape"):
        heatmap(torch.ones(2, 3, 3), ["a", "b", "c"])
    with pytest.raises(TypeError, match="list of strings"):
        heatmap(torch.ones(3, 3), "abc")


def test_head_grid_one_panel_per_head():
    trace = toy_trace(["q0", "q1", "q2"], ["k0", "k1", "k2", "k3"], heads=5, kind="cross")
    fig = head_grid(trace, 1)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 5
    for h, ax in enumerate(panels):
        np.testing.assert_array_equal(ax.images[0].get_array(), trace.attentions[1, h].numpy())
        assert ax.get_title() == f"head {h}"
    assert "layer 1" in fig._suptitle.get_text() and "cross" in fig._suptitle.get_text()
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["q0", "q1", "q2"]
    assert [t.get_text() for t in panels[-1].get_xticklabels()] == ["k0", "k1", "k2", "k3"]
    plt.close(fig)


def test_head_grid_bad_layer():
    trace = toy_trace(["q0", "q1", "q2", "q3"], heads=5)
    with pytest.raises(ValueError, match="layer must be in \\[0, 2\\)"):
        head_grid(trace, 2)
    with pytest.raises(TypeError, match="layer"):
        head_grid(trace, "0")
    with pytest.raises(TypeError, match="AttentionTrace"):
        head_grid(torch.ones(2, 2), 0)
    plt.close("all")


def test_clean_token():
    assert clean_token("Ġthe") == "␣the" and clean_token("▁x") == "␣x"
    assert clean_token("") == "∅" and clean_token("\n") == "⏎"
