"""Tiled (flash-style) attention against SDPA, the float64 formula and the reference backend."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import TOL, qkv
from torch.testing import assert_close
from torch.utils._python_dispatch import TorchDispatchMode

from explore_attention.attention import attend, masks, tiled
from explore_attention.attention.tiled import EMPTY, FULL, PARTIAL, block_map, tiled_attention

pytestmark = pytest.mark.usefixtures("one_thread")


def grads(out, inputs, seed=1):
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad(out, inputs, g)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    ("L", "D", "block"),
    [(1, 3, 16), (2, 1, 16), (3, 21, 2), (15, 3, 4), (113, 21, 16), (200, 64, 64)],
)
def test_matches_sdpa_forward_and_backward(causal, L, D, block):
    q, k, v = qkv(2, 3, 3, L, L, D, grad=True, dtype=torch.float32)
    out = tiled_attention(
        q, k, v, mask_mod=masks.causal if causal else None, block_size=block
    ).output
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert_close(out, ref, **TOL[torch.float32])
    for a, b in zip(grads(out, (q, k, v)), grads(ref, (q, k, v))):
        assert_close(a, b, **TOL[torch.float32])


@pytest.mark.parametrize("causal", [False, True])
def test_relative_error_policy_vs_float64(causal):
    """Re-ordered arithmetic: error vs float64 at most 10× the naive float32 error (DESIGN §6)."""
    q, k, v = qkv(1, 4, 4, 300, 300, 32, dtype=torch.float32)
    mm = masks.causal if causal else None
    exact = attend(*(t.double() for t in (q, k, v)), mask_mod=mm, backend="reference").output
    naive = attend(q, k, v, mask_mod=mm, backend="reference").output
    ours = tiled_attention(q, k, v, mask_mod=masks.causal if causal else None, block_size=32).output
    naive_err = (naive.double() - exact).abs().max().item()
    ours_err = (ours.double() - exact).abs().max().item()
    assert ours_err <= 10 * naive_err, (ours_err, naive_err)


def test_gqa_matches_sdpa():
    q, k, v = qkv(2, 8, 2, 70, 70, 16, grad=True, dtype=torch.float32)
    out = tiled_attention(q, k, v, mask_mod=masks.causal, block_size=16).output
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    assert_close(out, ref, **TOL[torch.float32])
    for a, b in zip(grads(out, (q, k, v)), grads(ref, (q, k, v))):
        assert_close(a, b, **TOL[torch.float32])


@pytest.mark.parametrize(("Lq", "Lk"), [(7, 50), (50, 7), (33, 100)])
def test_lq_ne_lk_bottom_right_causal_float64(Lq, Lk):
    q, k, v = qkv(2, 4, 2, Lq, Lk, 8, Dv=5, dtype=torch.float64, grad=True)
    out = attend(q, k, v, mask_mod=masks.causal, backend="tiled", return_weights=False).output
    ref = attend(q, k, v, mask_mod=masks.causal, backend="reference").output
    assert_close(out, ref, **TOL[torch.float64])
    for a, b in zip(grads(out, (q, k, v)), grads(ref, (q, k, v))):
        assert_close(a, b, **TOL[torch.float64])
    if Lq > Lk:  # first Lq − Lk queries see no key: exact zeros
        assert torch.equal(out[:, :, : Lq - Lk], torch.zeros_like(out[:, :, : Lq - Lk]))


def test_score_mod_and_mask_with_learned_parameter():
    """A score_mod's captured parameter gets the same gradient as through the reference."""
    q, k, v = qkv(2, 4, 4, 45, 45, 8, dtype=torch.float64, grad=True)
    slope = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64, requires_grad=True)

    def alibi_like(score, b, h, q_idx, kv_idx):
        return score - slope[h] * (q_idx - kv_idx).abs()

    mm = masks.sliding_window(9)
    out = attend(q, k, v, mask_mod=mm, score_mod=alibi_like, backend="tiled", return_weights=False)
    ref = attend(q, k, v, mask_mod=mm, score_mod=alibi_like, backend="reference")
    assert_close(out.output, ref.output, **TOL[torch.float64])
    for a, b in zip(grads(out.output, (q, k, v, slope)), grads(ref.output, (q, k, v, slope))):
        assert_close(a, b, **TOL[torch.float64])


def test_padding_mask_nan_key_and_fully_masked_rows():
    q, k, v = qkv(2, 2, 2, 20, 20, 4, dtype=torch.float64)
    k[1, :, 15:] = float("nan")  # padded keys of item 1 hold NaN: must change nothing
    v[1, :, 15:] = float("nan")
    mm = masks.padding(torch.tensor([20, 15]))
    out = attend(q, k, v, mask_mod=mm, backend="tiled", return_weights=False).output
    ref = attend(q[1:], k[1:, :, :15], v[1:, :, :15], backend="reference").output
    assert_close(out[1:], ref, **TOL[torch.float64])
    assert not out.isnan().any()

    # Rows with no key at all: output exactly 0 and finite gradients.
    none_before_5 = masks.named(lambda b, h, qi, ki: (qi >= 5) & (ki <= qi), "late_causal")
    q, k, v = qkv(1, 2, 2, 20, 20, 4, dtype=torch.float64, grad=True)
    out = attend(q, k, v, mask_mod=none_before_5, backend="tiled", return_weights=False).output
    assert torch.equal(out[:, :, :5], torch.zeros_like(out[:, :, :5]))
    ref = attend(q, k, v, mask_mod=none_before_5, backend="reference").output
    assert_close(out, ref, **TOL[torch.float64])
    for a, b in zip(grads(out, (q, k, v)), grads(ref, (q, k, v))):
        assert torch.isfinite(a).all()
        assert_close(a, b, **TOL[torch.float64])


def test_block_map_skips_empty_tiles_and_is_exact():
    L, bs = 2048, 128
    sw = masks.sliding_window(256)
    bmap = block_map(sw, 1, 8, L, L, bs, bs)
    dense = masks.materialize(sw, L, L)[0, 0]  # (L, L) bool
    tiles = dense.view(L // bs, bs, L // bs, bs)
    assert torch.equal(bmap == EMPTY, ~tiles.any(-1).any(1))
    assert torch.equal(bmap == FULL, tiles.all(-1).all(1))
    # a window of 256 touches at most 3 key tiles per query tile: O(L·w) work, not O(L²)
    assert int((bmap != EMPTY).sum(1).max()) <= 3
    assert int((bmap != EMPTY).sum()) < (L // bs) ** 2 / 4
    assert int((bmap == PARTIAL).sum()) > 0


def test_sliding_window_with_skipping_matches_sdpa():
    q, k, v = qkv(1, 4, 4, 600, 600, 16, dtype=torch.float32)
    sw = masks.sliding_window(100)
    out = attend(q, k, v, mask_mod=sw, backend="tiled", return_weights=False).output
    dense = masks.materialize(sw, 600, 600)[0, 0]  # (L, L)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=dense)
    assert_close(out, ref, **TOL[torch.float32])


def test_block_map_cache_sees_in_place_edit():
    lengths = torch.tensor([40])
    mm = masks.padding(lengths)
    first = block_map(mm, 1, 1, 64, 64, 16, 16).clone()
    lengths[0] = 10  # a mask reading a mutated tensor must not reuse the stale map
    second = block_map(mm, 1, 1, 64, 64, 16, 16)
    assert not torch.equal(first, second)
    assert int((second != EMPTY).sum(1)[0]) == 1


def test_nan_in_a_masked_key_keeps_gradients_clean():
    """A NaN in a padded key must not reach dq (the backward forms dQ = dS·K: 0·NaN = NaN),
    across tiles of 128 with a partial tile holding the padding. Old code: dq was NaN."""
    q, k, v = qkv(2, 4, 2, 300, 300, 8, dtype=torch.float64)
    k[1, :, 250:] = float("nan")  # padded keys of item 1
    v[1, :, 250:] = float("nan")
    mm = masks.padding(torch.tensor([300, 250]))
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    out = attend(q, k, v, mask_mod=mm, backend="tiled", return_weights=False).output
    ref = attend(q, k, v, mask_mod=mm, backend="reference").output
    assert_close(out, ref, **TOL[torch.float64])
    dq, dk, dv = grads(out, (q, k, v))
    dq_ref, dk_ref, dv_ref = grads(ref, (q, k, v))
    assert not dq.isnan().any()
    assert_close(dq, dq_ref, **TOL[torch.float64])
    assert_close(dk[:, :, :250], dk_ref[:, :, :250], **TOL[torch.float64])
    assert_close(dv[:, :, :250], dv_ref[:, :, :250], **TOL[torch.float64])


def test_block_map_cache_sees_in_place_edit_inside_or_masks():
    """and_masks / or_masks hold their parts in a tuple; an in-place edit of a tensor captured
    two closures deep must still invalidate the map. Old code: a stale map, output off."""
    lengths = torch.tensor([300, 300])
    mm = masks.or_masks(masks.sliding_window(16), masks.padding(lengths))
    q, k, v = qkv(2, 2, 2, 300, 300, 8, dtype=torch.float64)
    attend(q, k, v, mask_mod=mm, backend="tiled", return_weights=False)  # caches a map
    lengths[1] = 40  # keys 40.. of item 1 now visible only inside the window
    out = attend(q, k, v, mask_mod=mm, backend="tiled", return_weights=False).output
    ref = attend(q, k, v, mask_mod=mm, backend="reference").output
    assert_close(out, ref, **TOL[torch.float64])


def test_mask_with_state_the_cache_cannot_see_is_not_cached():
    class Upto:  # a callable object: its attribute may change between calls
        def __init__(self, n):
            self.n = n

        def __call__(self, b, h, q_idx, kv_idx):
            return kv_idx < self.n

    mm = Upto(20)
    q, k, v = qkv(1, 2, 2, 300, 300, 8, dtype=torch.float64)
    attend(q, k, v, mask_mod=mm, backend="tiled", return_weights=False)
    mm.n = 280  # the last key tile, empty before, is live now
    out = attend(q, k, v, mask_mod=mm, backend="tiled", return_weights=False).output
    assert_close(
        out, attend(q, k, v, mask_mod=mm, backend="reference").output, **TOL[torch.float64]
    )


def test_multihead_float_key_padding_mask_on_tiles_without_grad():
    """MultiHeadAttention's float (additive) key_padding_mask is a score_mod; ``auto`` runs it
    on tiles. Old code: a size error once a row of tiles is split into runs (L > 1024)."""
    from explore_attention.attention import MultiHeadAttention

    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).double().eval()
    x = torch.randn(2, 1100, 16, dtype=torch.float64)
    bias = torch.zeros(2, 1100, dtype=torch.float64)
    bias[1, 1000:] = -1e9

    def output(res):  # a tuple today, an AttentionOutput once the module returns one
        return res.output if hasattr(res, "output") else res[0]

    with torch.no_grad():
        fast = output(mha(x, key_padding_mask=bias, return_weights=False))
        slow = output(mha(x, key_padding_mask=bias, return_weights=True))
    assert_close(fast, slow, **TOL[torch.float64])


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any aten op produces: a deterministic peak-memory proxy."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_peak_memory_is_order_l_times_block():
    """Largest tensor any op makes: O(L·block) for tiled, H·L² for the reference backend."""
    B, H, L, D, bs = 1, 2, 2048, 16, 64
    q, k, v = qkv(B, H, H, L, L, D, grad=True, dtype=torch.float32)
    with _LargestTensor() as mode:
        out = tiled_attention(q, k, v, mask_mod=masks.causal, block_size=bs).output
        out.sum().backward()
    # inputs/outputs (H·L·D), one step's tile per head (H·bs·RUN_KEYS), one query block's
    # mask row while the block map is built (bs·L)
    assert mode.largest <= max(B * H * L * D, B * H * bs * tiled.RUN_KEYS, bs * L)
    with _LargestTensor() as ref_mode:
        attend(q, k, v, mask_mod=masks.causal, backend="reference").output.sum().backward()
    assert ref_mode.largest >= B * H * L * L
    assert mode.largest * 10 < ref_mode.largest


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_no_nan(dtype):
    q, k, v = qkv(1, 2, 2, 257, 257, 16, dtype=torch.float32)
    ref = tiled_attention(q, k, v, mask_mod=masks.causal, block_size=64).output
    out = tiled_attention(
        q.to(dtype), k.to(dtype), v.to(dtype), mask_mod=masks.causal, block_size=64
    )
    assert out.output.dtype == dtype
    assert_close(out.output.float(), ref, atol=2e-2, rtol=2e-2)


def test_gradcheck_float64():
    q, k, v = qkv(1, 2, 1, 6, 9, 3, dtype=torch.float64, grad=True)

    def f(q, k, v):
        return tiled_attention(q, k, v, mask_mod=masks.causal, block_size=4).output

    assert torch.autograd.gradcheck(f, (q, k, v))


def test_bad_input():
    q, k, v = qkv(1, 1, 1, 4, 4, 2, dtype=torch.float32)
    with pytest.raises(ValueError, match="block_size"):
        tiled_attention(q, k, v, block_size=0)
    with pytest.raises(TypeError, match="block_size"):
        tiled_attention(q, k, v, block_size=True)
    with pytest.raises(TypeError, match="mask_mod"):
        tiled_attention(q, k, v, mask_mod="yes")
    with pytest.raises(ValueError, match="dropout"):
        attend(q, k, v, backend="tiled", dropout_p=0.1, return_weights=False)
    with pytest.raises(TypeError, match="bool"):
        attend(q, k, v, mask_mod=lambda b, h, i, j: i - j, backend="tiled", return_weights=False)
    with pytest.raises(ValueError, match="k's head dim"):
        tiled_attention(q, k[..., :1], v)


def test_default_scale_and_warns_without_weights():
    q, k, v = qkv(1, 2, 2, 10, 10, 7, dtype=torch.float32)
    with pytest.warns(UserWarning, match="cannot return attention weights"):
        res = attend(q, k, v, backend="tiled", scale=-0.3)
    ref = F.scaled_dot_product_attention(q, k, v, scale=-0.3)
    assert res.weights is None
    assert_close(res.output, ref, **TOL[torch.float32])
    assert math.isclose(tiled.DEFAULT_BLOCK_SIZE, 128)


def test_threaded_forward_matches_sdpa():
    """With several threads, query tiles run on parallel Python threads: same numbers."""
    q, k, v = qkv(2, 4, 2, 700, 700, 16, dtype=torch.float32)
    torch.set_num_threads(2)
    try:
        sw = masks.sliding_window(200)
        out = attend(q, k, v, mask_mod=sw, backend="tiled", return_weights=False).output
        causal = tiled_attention(q, k, v, mask_mod=masks.causal).output
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    dense = masks.materialize(sw, 700, 700)[0, 0]  # (L, L)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=dense, enable_gqa=True)
    assert_close(out, ref, **TOL[torch.float32])
    ref_causal = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    assert_close(causal, ref_causal, **TOL[torch.float32])


def test_global_rows_and_columns_take_their_own_steps_and_match_the_reference():
    """Longformer's global keys are gathered into one step per query tile, and a tile in which
    only its global queries see a key tile runs those queries alone (merged by log-sum-exp).
    Each kind of step must exist in the plan and give the reference's answer, with and
    without autograd, at a length that is no multiple of the block."""
    from explore_attention.attention import sparse

    L, bs = 333, 32
    mask = sparse.longformer(40, [0, 150])
    q, k, v = qkv(2, 4, 2, L, L, 8, grad=True)
    plan = tiled._Plan(q, k, v, mask, bs, bs)
    assert any(r.cols is not None for t in plan.steps for r in t.runs), "no gathered step"
    assert any(t.rows is not None for t in plan.steps), "no few-row pass"
    want = attend(q, k, v, mask_mod=mask, backend="reference").output
    with torch.no_grad():
        assert_close(tiled_attention(q, k, v, mask_mod=mask, block_size=bs).output, want)
    out = tiled_attention(q, k, v, mask_mod=mask, block_size=bs).output
    assert_close(out, want)
    cot = torch.randn_like(out)
    got = torch.autograd.grad((out * cot).sum(), (q, k, v))
    ref = torch.autograd.grad((want * cot).sum(), (q, k, v))
    for a, b in zip(got, ref):
        assert_close(a, b)


def test_masks_too_big_to_cache_are_evaluated_per_call(monkeypatch):
    """Over the cache budget the plan keeps no masks and evaluates the mask_mod tile by tile
    on every call: same answer, with and without autograd."""
    monkeypatch.setattr(tiled, "DROP_CACHE_ELEMENTS", 1000)
    tiled.clear_block_map_cache()
    mask = masks.sliding_window(50)
    q, k, v = qkv(2, 4, 2, 300, 300, 8, grad=True)
    plan = tiled._Plan(q, k, v, mask, 64, 64)
    assert all(r.biases is None for t in plan.steps for r in t.runs)
    want = attend(q, k, v, mask_mod=mask, backend="reference").output
    with torch.no_grad():
        assert_close(tiled_attention(q, k, v, mask_mod=mask, block_size=64).output, want)
    out = tiled_attention(q, k, v, mask_mod=mask, block_size=64).output
    cot = torch.randn_like(out)
    for a, b in zip(
        torch.autograd.grad((out * cot).sum(), (q, k, v)),
        torch.autograd.grad((want * cot).sum(), (q, k, v)),
    ):
        assert_close(a, b)
    tiled.clear_block_map_cache()


def test_nan_key_hidden_from_some_heads_of_a_gqa_group():
    """Key 5 holds NaN and is hidden from the even query heads only; heads 0 and 1 share a
    key/value head. The even heads' outputs and gradients must be clean, as on the reference."""
    q, k, v = qkv(1, 4, 2, 300, 300, 8)
    k[:, :, 5] = float("nan")
    v[:, :, 5] = float("nan")
    q, k, v = (t.requires_grad_() for t in (q, k, v))

    def mask(b, h, q_idx, kv_idx):
        return ~((kv_idx == 5) & (h % 2 == 0))

    results = {}
    for backend in ("reference", "tiled"):
        out = attend(q, k, v, mask_mod=mask, backend=backend, return_weights=False).output
        dq = torch.autograd.grad(out[:, 0::2].sum(), q)[0]
        results[backend] = out[:, 0::2].detach(), dq[:, 0::2]
    for got, want in zip(results["tiled"], results["reference"]):
        assert not got.isnan().any()
        assert_close(got, want)
    with torch.no_grad():
        out = attend(q, k, v, mask_mod=mask, backend="tiled", return_weights=False).output
    assert_close(out[:, 0::2], results["reference"][0])


@pytest.mark.parametrize("seed", range(12))
def test_random_masks_with_global_rows_columns_and_bands(seed):
    """The step planner against the reference on random masks: scattered entries, a few global
    query rows and key columns, sometimes a band; per-batch/per-head or shared; GQA; any
    lengths and block size; with and without autograd (float64)."""
    g = torch.Generator().manual_seed(seed)

    def pick(options):
        return options[int(torch.randint(len(options), (1,), generator=g))]

    B, Hkv, G = pick([1, 2]), pick([1, 2]), pick([1, 2])
    H = Hkv * G
    Lq, Lk = (int(torch.randint(1, 400, (1,), generator=g)) for _ in range(2))
    table = torch.rand(pick([1, B]), pick([1, H]), Lq, Lk, generator=g) < pick([0.01, 0.1, 0.5])
    for _ in range(pick([0, 1, 3])):
        table[..., int(torch.randint(Lq, (1,), generator=g)), :] = True
        table[..., int(torch.randint(Lk, (1,), generator=g))] = True
    if pick([False, True]):
        i = torch.arange(Lq).view(-1, 1) + (Lk - Lq)
        table |= (i - torch.arange(Lk).view(1, -1)).abs() < pick([1, 20, 60])
    mask, bs = masks.from_bool(table), pick([16, 32, 64, 128])
    q, k, v = qkv(B, H, Hkv, Lq, Lk, 8, grad=True, seed=seed)
    want = attend(q, k, v, mask_mod=mask, backend="reference").output
    with torch.no_grad():
        assert_close(tiled_attention(q, k, v, mask_mod=mask, block_size=bs).output, want)
    out = tiled_attention(q, k, v, mask_mod=mask, block_size=bs).output
    cot = torch.randn(out.shape, generator=g, dtype=out.dtype)
    got = torch.autograd.grad((out * cot).sum(), (q, k, v))
    for a, b in zip(got, torch.autograd.grad((want * cot).sum(), (q, k, v))):
        assert_close(a, b)
