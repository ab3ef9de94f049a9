"""mask_mods evaluated densely against hand-written formulas; composition; bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from explore_attention.attention import masks


def grid(Lq, Lk):
    i = torch.arange(Lq)[:, None] + (Lk - Lq)  # query position on the key axis
    j = torch.arange(Lk)[None, :]
    return i, j


@settings(max_examples=25, deadline=None)
@given(Lq=st.integers(1, 12), Lk=st.integers(1, 12), w=st.integers(1, 6))
def test_masks_match_formulas(Lq, Lk, w):
    i, j = grid(Lq, Lk)
    cases = {
        masks.causal: j <= i,
        masks.full: torch.ones(Lq, Lk, dtype=torch.bool),
        masks.sliding_window(w): (i - j >= 0) & (i - j < w),
        masks.sliding_window(w, causal=False): (i - j).abs() <= w // 2,  # w = whole band
    }
    for mod, expected in cases.items():
        m = masks.materialize(mod, Lq, Lk, B=2, H=3)
        assert m.shape == (2, 3, Lq, Lk) and m.dtype == torch.bool
        assert torch.equal(m, expected.expand(2, 3, Lq, Lk)), getattr(mod, "__name__", mod)


def test_causal_conventions():
    # Lq == Lk: lower triangle, as SDPA's is_causal
    assert torch.equal(
        masks.materialize(masks.causal, 4)[0, 0], torch.ones(4, 4, dtype=torch.bool).tril()
    )
    # Lq < Lk (KV-cached decoding): the last query sees every key
    m = masks.materialize(masks.causal, 2, 5)[0, 0]
    assert m.tolist() == [[True, True, True, True, False], [True] * 5]
    # Lq > Lk: the first Lq - Lk queries see nothing
    m = masks.materialize(masks.causal, 4, 2)[0, 0]
    assert m.tolist() == [[False, False], [False, False], [True, False], [True, True]]


def test_padding_and_key_padding_agree():
    lengths = torch.tensor([3, 0, 5])
    pad = masks.materialize(masks.padding(lengths), 2, 5, B=3)
    kpm = torch.arange(5)[None, :] >= lengths[:, None]  # True = padding (PyTorch convention)
    kp = masks.materialize(masks.key_padding(kpm), 2, 5, B=3)
    assert torch.equal(pad, kp)
    assert torch.equal(pad[:, 0, 0], ~kpm)
    assert masks.padding([3, 0, 5]).__name__ == "padding"


def test_and_or_compose_and_name_themselves():
    w = masks.sliding_window(2)
    both = masks.and_masks(masks.causal, masks.sliding_window(4, causal=False))
    either = masks.or_masks(masks.causal, masks.sliding_window(3, causal=False))
    i, j = grid(6, 6)
    assert torch.equal(masks.materialize(both, 6)[0, 0], (j <= i) & ((i - j).abs() <= 2))
    assert torch.equal(masks.materialize(either, 6)[0, 0], (j <= i) | ((i - j).abs() <= 1))
    assert w.__name__ == "sliding_window_2"
    assert both.__name__ == "causal & bidirectional_window_4"
    assert either.__name__ == "causal | bidirectional_window_3"


@settings(max_examples=15, deadline=None)
@given(B=st.integers(1, 3), H=st.integers(1, 3), Lq=st.integers(1, 6), Lk=st.integers(1, 6),
       seed=st.integers(0, 1000))  # fmt: skip
def test_from_bool_round_trips(B, H, Lq, Lk, seed):
    bm = torch.rand(B, H, Lq, Lk, generator=torch.Generator().manual_seed(seed)) > 0.5
    assert torch.equal(masks.materialize(masks.from_bool(bm), Lq, Lk, B=B, H=H), bm)
    # a 2-D mask broadcasts over batch and heads
    assert torch.equal(masks.materialize(masks.from_bool(bm[0, 0]), Lq, Lk, B=B, H=H),
                       bm[0, 0].expand(B, H, Lq, Lk))  # fmt: skip


def test_bad_mask_arguments():
    for bad in (0, -3):
        with pytest.raises(ValueError, match=f"window must be >= 1, got {bad}"):
            masks.sliding_window(bad)
    with pytest.raises(TypeError, match="window must be an int"):
        masks.sliding_window(2.5)
    with pytest.raises(
        TypeError, match=r"lengths must be an integer tensor, got dtype torch\.float32"
    ):
        masks.padding(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="lengths must be >= 0"):
        masks.padding([2, -1])
    with pytest.raises(ValueError, match=r"lengths must have 1 dimension\(s\), got shape \(1, 2\)"):
        masks.padding(torch.tensor([[1, 2]]))
    with pytest.raises(TypeError, match="key_padding_mask must be a bool tensor"):
        masks.key_padding(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(B, Lk\)"):
        masks.key_padding(torch.zeros(3, dtype=torch.bool))
    with pytest.raises(
        ValueError, match=r"key_padding_mask has shape \(2, 3\), expected \(B, Lk\) = \(2, 4\)"
    ):
        masks.materialize(masks.key_padding(torch.zeros(2, 3, dtype=torch.bool)), 4, 4, B=2)
    with pytest.raises(ValueError, match="mask must have 2 to 4 dims"):
        masks.from_bool(torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="Lq must be a positive int, got 0"):
        masks.materialize(masks.causal, 0)
    with pytest.raises(ValueError, match="at least one"):
        masks.and_masks()
    with pytest.raises(TypeError, match="mask_mod must be callable"):
        masks.materialize("causal", 3)
