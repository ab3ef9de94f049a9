"""viz.knobs: every knob's callback redraws a titled figure that reflects the knob's value."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from explore_attention.attention import masks
from explore_attention.viz import knobs


def _title(fig) -> str:
    parts = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    return " ".join(parts + [ax.get_title() for ax in fig.axes])


@pytest.mark.parametrize("name", sorted(knobs.KNOBS))
def test_every_knob_draws_a_titled_figure_at_its_default(name):
    knob = knobs.KNOBS[name]
    assert knob.default in knob.values
    fig = knob.draw(knob.default)
    assert _title(fig).strip()
    assert any(ax.get_xlabel() for ax in fig.axes)
    plt.close(fig)


def test_slider_callback_redraws_the_temperature_figure():
    control, _, state = knobs.slider("scale")
    assert state["figure"] is None
    control.value = 4.0  # what moving the slider does
    fig = state["figure"]
    assert "scale = 4" in fig.axes[0].get_title()
    heights = [p.get_height() for p in fig.axes[0].patches]
    expected = torch.softmax(4.0 * torch.tensor(knobs.SCORES, dtype=torch.float64), -1)
    np.testing.assert_allclose(heights, expected.numpy(), rtol=1e-12)
    control.value = 0.25
    flatter = [p.get_height() for p in state["figure"].axes[0].patches]
    assert max(flatter) < max(heights)  # a smaller scale flattens the weights
    plt.close("all")


def test_slider_rejects_unknown_knobs_and_values():
    with pytest.raises(ValueError, match="name must be one of"):
        knobs.slider("temperature")
    with pytest.raises(ValueError, match="value must be one of"):
        knobs.slider("window", 100)
    with pytest.raises(ValueError, match="scale must be a finite number > 0"):
        knobs.softmax_temperature(0.0)


def test_window_knob_draws_the_library_mask():
    control, _, state = knobs.slider("window")
    control.value = 3
    fig = state["figure"]
    img = fig.axes[1].images[0].get_array()
    ref = masks.materialize(masks.sliding_window(3), 16)[0, 0].numpy()
    np.testing.assert_array_equal(np.asarray(img, dtype=bool), ref)
    assert "w = 3" in _title(fig)
    plt.close("all")


def test_performer_error_shrinks_with_features():
    errs = [knobs.performer_error(r) for r in (2, 16, 128)]
    assert errs[0] > errs[1] > errs[2]


def test_lsh_error_shrinks_with_rounds():
    assert knobs.lsh_error(8) < knobs.lsh_error(1)


def test_rope_base_knob_decays_slower_with_a_larger_base():
    curves = {}
    for base in (100.0, 10000.0):
        fig = knobs.rope_base(base, dim=16, L=32)
        curves[base] = fig.axes[0].lines[0].get_ydata()
        assert f"base = {base:g}" in fig.axes[0].get_title()
        plt.close(fig)
    for y in curves.values():
        assert y[0] == pytest.approx(16.0)  # ones · ones at distance 0
    assert curves[10000.0][4] > curves[100.0][4]


def test_block_size_knob_changes_the_schedule():
    control, _, state = knobs.slider("block_size")
    control.value = 8
    assert "block_size=8" in state["figure"].axes[0].get_title()
    plt.close("all")


def test_show_is_static_when_asked(monkeypatch):
    monkeypatch.setenv("EXPLORE_ATTENTION_STATIC", "1")
    assert knobs._interactive() is False
    assert knobs.show("scale") is None
    with pytest.raises(ValueError, match="name must be one of"):
        knobs.show("nope")
