"""The "flex" backend (FlexAttention, eager on CPU) against our reference backend."""

from __future__ import annotations

import pytest
import torch
from conftest import TOL, qkv
from torch.testing import assert_close

from explore_attention.attention import attend, core, flex, masks

pytestmark = pytest.mark.skipif(
    not flex.available()[0], reason=f"FlexAttention unavailable: {flex.available()[1]}"
)


def test_registered_when_available():
    assert "flex" in core.BACKENDS


def rel_bias(score, b, h, q_idx, kv_idx):
    return score - 0.1 * (h + 1) * (q_idx - kv_idx).abs()


@pytest.mark.parametrize(("Lq", "Lk"), [(40, 40), (17, 40), (40, 17)])
@pytest.mark.parametrize(
    "mask", [None, masks.causal, masks.sliding_window(6)], ids=["full", "causal", "window6"]
)
@pytest.mark.parametrize("score_mod", [None, rel_bias])
def test_matches_reference(Lq, Lk, mask, score_mod):
    q, k, v = qkv(2, 4, 2, Lq, Lk)
    out = attend(q, k, v, mask_mod=mask, score_mod=score_mod, backend="flex", return_weights=False)
    ref = attend(q, k, v, mask_mod=mask, score_mod=score_mod, backend="reference")
    assert_close(out.output, ref.output, **TOL[torch.float64])


def test_fully_masked_rows_are_zero():
    q, k, v = qkv(2, 2, 2, 30, 10)  # Lq > Lk with causal: the first 20 rows see no key
    out = attend(q, k, v, mask_mod=masks.causal, backend="flex", return_weights=False).output
    assert torch.equal(out[:, :, :20], torch.zeros_like(out[:, :, :20]))


def test_gradients_refused_clearly_in_eager_mode():
    q, k, v = (t.requires_grad_(True) for t in qkv(2, 2, 2, 8, 8))
    with pytest.raises(ValueError, match="backward"):
        attend(q, k, v, backend="flex", return_weights=False)
