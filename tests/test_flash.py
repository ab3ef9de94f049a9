"""The line-by-line FlashAttention (``flash``) against the reference backend, and the engineered
tiled backend against it: output and gradients, float64, masks, GQA, ragged blocks."""

from __future__ import annotations

import pytest
import torch
from conftest import TOL
from torch.testing import assert_close

from explore_attention.attention import attend, masks, sparse
from explore_attention.attention.flash import flash_attention, flash_backward, flash_forward

F64 = TOL[torch.float64]
MASKS = {
    "none": None,
    "causal": masks.causal,
    "window": masks.sliding_window(7),
    "longformer": sparse.longformer(6, [0]),
}


def qkv(B, H, Hkv, Lq, Lk, D, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()
        for shape in ((B, H, Lq, D), (B, Hkv, Lk, D), (B, Hkv, Lk, D))
    ]


def out_and_grads(fn, q, k, v):
    out = fn(q, k, v)
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    return [out, *torch.autograd.grad(out, (q, k, v), cot)]


@pytest.mark.parametrize("mask", list(MASKS), ids=list(MASKS))
@pytest.mark.parametrize(("Lq", "Lk", "block"), [(37, 37, 8), (5, 40, 16), (40, 23, 7), (1, 1, 4)])
def test_flash_matches_reference_and_tiled(mask, Lq, Lk, block):
    q, k, v = qkv(2, 4, 2, Lq, Lk, 8)
    mm = MASKS[mask]
    flash = out_and_grads(lambda a, b, c: flash_attention(a, b, c, mm, None, block), q, k, v)
    ref = out_and_grads(lambda a, b, c: attend(a, b, c, mask_mod=mm).output, q, k, v)
    tiled = out_and_grads(
        lambda a, b, c: attend(a, b, c, mask_mod=mm, backend="tiled", return_weights=False).output,
        q,
        k,
        v,
    )
    for name, a, b, c in zip(("out", "dq", "dk", "dv"), flash, ref, tiled):
        assert_close(a, b, **F64, msg=lambda m, n=name: f"flash vs reference {n}: {m}")
        assert_close(c, a, **F64, msg=lambda m, n=name: f"tiled vs flash {n}: {m}")


def test_log_sum_exp_and_empty_rows():
    """L_i = log Σ_j exp(S_ij) on live rows; a row with no key has output 0 and L = −inf, and
    its gradients are 0, not NaN."""
    q, k, v = qkv(1, 2, 2, 12, 6, 4)
    with torch.no_grad():
        O, L = flash_forward(q, k, v, masks.causal, None, 4)  # Lq > Lk: 6 rows see no key
        s = (q @ k.transpose(-2, -1)) / 2.0
        s = s.masked_fill(~masks.materialize(masks.causal, 12, 6), float("-inf"))
        assert_close(L[:, :, 6:], torch.logsumexp(s, -1, keepdim=True)[:, :, 6:], **F64)
        assert torch.equal(L[:, :, :6], torch.full_like(L[:, :, :6], float("-inf")))
        assert torch.equal(O[:, :, :6], torch.zeros_like(O[:, :, :6]))
        dq, dk, dv = flash_backward(q, k, v, O, L, torch.ones_like(O), masks.causal, None, 4)
    assert all(torch.isfinite(g).all() for g in (dq, dk, dv))
    assert torch.equal(dq[:, :, :6], torch.zeros_like(dq[:, :, :6]))


def test_bad_block_size():
    q, k, v = qkv(1, 1, 1, 4, 4, 2)
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        flash_forward(q, k, v, block_size=0)
