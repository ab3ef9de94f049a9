"""The conformance matrix of ``tests/test_conformance.py`` for ``backend="flex"``: every shipped
mask_mod and score_mod, forward against the reference in float64 (0-d scalar indices under
FlexAttention's vmap), and a clear ``ValueError`` for the backward pass, which eager
FlexAttention does not have on CPU."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES
from test_conformance import CASES, SHAPES, _assert_same, _reference, _run

from explore_attention.attention import flex

pytestmark = pytest.mark.skipif(
    not flex.available()[0], reason=f"FlexAttention unavailable: {flex.available()[1]}"
)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("Lq", "Lk"), SHAPES, ids=[f"{a}x{b}" for a, b in SHAPES])
@pytest.mark.parametrize(("case", "build"), CASES, ids=[c for c, _ in CASES])
def test_flex_matches_reference_forward_and_refuses_backward(case, build, Lq, Lk, device):
    want = _reference(case, build, Lq, Lk, device)
    _assert_same(_run("flex", build, Lq, Lk, device, grad=False), want[:1], torch.float64)
    with pytest.raises(ValueError, match=r"backend='flex'.*no backward pass"):
        _run("flex", build, Lq, Lk, device, grad=True)
