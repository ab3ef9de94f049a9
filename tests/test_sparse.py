"""Sparse patterns: the masks equal the papers' set definitions, attention with them equals dense
SDPA with the materialized mask (forward and backward), and the work-saved counts are exact."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import TOL
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from explore_attention.attention import attend, masks, sparse

# --------------------------------------------------------------------------- set definitions


def sets_strided(
    L, l
):  # Child et al. 2019 §4.2: A1 = {t..i}, t = max(0, i-l); A2 = {(i-j) % l == 0}
    return [
        {j for j in range(max(0, i - l), i + 1)} | {j for j in range(i + 1) if (i - j) % l == 0}
        for i in range(L)
    ]


def sets_fixed(L, l, c):  # A1 = same block; A2 = j mod l in {l-c, ..., l-1}; causal
    return [{j for j in range(i + 1) if j // l == i // l or j % l >= l - c} for i in range(L)]


def sets_longformer(L, w, g):  # |i - j| <= w // 2 (w the whole window), symmetric globals
    return [
        set(range(L)) if i in g else {j for j in range(L) if abs(i - j) <= w // 2 or j in g}
        for i in range(L)
    ]


def to_matrix(sets, L):
    m = torch.zeros(L, L, dtype=torch.bool)
    for i, s in enumerate(sets):
        m[i, sorted(s)] = True
    return m


@pytest.mark.parametrize("L,l", [(1, 1), (17, 4), (33, 5), (64, 8)])
def test_strided_matches_definition(L, l):
    assert torch.equal(
        masks.materialize(sparse.strided(l), L)[0, 0], to_matrix(sets_strided(L, l), L)
    )


@pytest.mark.parametrize("L,l,c", [(17, 4, 1), (33, 8, 2), (20, 5, 5), (3, 4, 1)])
def test_fixed_matches_definition(L, l, c):
    assert torch.equal(
        masks.materialize(sparse.fixed(l, c), L)[0, 0], to_matrix(sets_fixed(L, l, c), L)
    )


@pytest.mark.parametrize("L,w,g", [(16, 2, 2), (31, 3, [0, 7, 30]), (9, 1, 1), (12, 5, 0)])
def test_longformer_matches_definition(L, w, g):
    gs = set(range(g)) if isinstance(g, int) else set(g)
    assert torch.equal(
        masks.materialize(sparse.longformer(w, g), L)[0, 0], to_matrix(sets_longformer(L, w, gs), L)
    )


def test_block_and_global_tokens():
    L = 10
    blk = masks.materialize(sparse.block(3), L)[0, 0]
    assert torch.equal(
        blk, to_matrix([{j for j in range(L) if j // 3 == i // 3} for i in range(L)], L)
    )
    g = masks.materialize(sparse.global_tokens([2, 5]), L)[0, 0]
    assert torch.equal(
        g, to_matrix([set(range(L)) if i in (2, 5) else {2, 5} for i in range(L)], L)
    )


def test_bigbird_structure_and_determinism():
    L, w, ng, r = 40, 2, 2, 3
    m = masks.materialize(sparse.bigbird(w, ng, r, seed=7, length=L), L)[0, 0]
    assert torch.equal(m, masks.materialize(sparse.bigbird(w, ng, r, seed=7, length=L), L)[0, 0])
    other = masks.materialize(sparse.bigbird(w, ng, r, seed=8, length=L), L)[0, 0]
    assert not torch.equal(m, other)
    base = to_matrix(sets_longformer(L, w, set(range(ng))), L)
    assert bool((m | ~base).all()), "window and global keys must all be kept"
    extra = (m & ~base).sum(-1)
    # Every non-global query gets exactly r random keys outside its window and the globals.
    assert torch.equal(extra[ng:], torch.full((L - ng,), r))
    assert bool((extra[:ng] == 0).all())
    # A KV-cached query (Lq < Lk) sees the same random keys as in the full mask.
    tail = masks.materialize(sparse.bigbird(w, ng, r, seed=7, length=L), 5, L)[0, 0]
    assert torch.equal(tail, m[-5:])
    # More random keys than are left: every key is kept, nothing breaks.
    assert bool(masks.materialize(sparse.bigbird(1, 0, 100, length=6), 6)[0, 0].all())
    # Keys and queries past `length` get no random keys; the window and globals still hold.
    longer = masks.materialize(sparse.bigbird(w, ng, r, seed=7, length=L), L + 8)[0, 0]
    assert torch.equal(longer[:L, :L], m)
    assert torch.equal(longer[L:], to_matrix(sets_longformer(L + 8, w, set(range(ng))), L + 8)[L:])
    assert not bool(
        longer[:, L:][~to_matrix(sets_longformer(L + 8, w, set(range(ng))), L + 8)[:, L:]].any()
    )


def test_bigbird_random_keys_do_not_depend_on_the_tile():
    """The index contract: evaluated on any slice of keys, a query's random keys are the same
    (the old draw ranked keys within the slice it was given, so a tiled backward pass that
    evaluated 128-key tiles saw other keys than the forward pass)."""
    L = 300
    mod = sparse.bigbird(16, 2, 3, seed=1, length=L)
    full = masks.materialize(mod, L)[0, 0]
    z = torch.zeros((), dtype=torch.long)
    q = torch.arange(L).view(-1, 1)
    for k0, k1 in ((0, 128), (128, 256), (256, 300), (17, 40)):
        tile = mod(z, z, q, torch.arange(k0, k1).view(1, -1))
        assert torch.equal(tile, full[:, k0:k1]), (k0, k1)


# ------------------------------------------------------------------ attention vs dense SDPA

PATTERNS = [
    sparse.strided(4),
    sparse.fixed(5, 2),
    sparse.longformer(3, [0, 9]),
    sparse.bigbird(2, 1, 3, seed=1, length=40),
    sparse.block(6),
]


def naive64(q, k, v, m):
    """Softmax over the kept keys only, written from the definition, float64."""
    s = (q.double() @ k.double().transpose(-2, -1)) / q.shape[-1] ** 0.5
    s = s.masked_fill(~m, float("-inf"))
    return torch.softmax(s, -1) @ v.double()


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("backend", ["reference", "sdpa"])
def test_attend_with_pattern_matches_dense_sdpa(pattern, backend):
    torch.manual_seed(0)
    B, H, L, D = 2, 3, 37, 16
    q, k, v = (torch.randn(B, H, L, D, requires_grad=True) for _ in range(3))
    m = masks.materialize(pattern, L)  # (1, 1, L, L)
    out = attend(q, k, v, mask_mod=pattern, backend=backend, return_weights=False).output
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
    assert_close(out, ref, **TOL[torch.float32])
    assert_close(out.double(), naive64(q, k, v, m), **TOL[torch.float32])
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), g)
    grads_ref = torch.autograd.grad(ref, (q, k, v), g)
    for a, b in zip(grads, grads_ref, strict=True):
        assert_close(a, b, **TOL[torch.float32])


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.__name__)
def test_float64_weights_are_zero_outside_pattern(pattern):
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, 2, 23, 8, dtype=torch.float64) for _ in range(3))
    res = attend(q, k, v, mask_mod=pattern, backend="reference")
    m = masks.materialize(pattern, 23)
    assert_close(res.output, naive64(q, k, v, m), **TOL[torch.float64])
    assert bool((res.weights[~m.expand_as(res.weights)] == 0).all())
    assert_close(
        res.weights.sum(-1), torch.ones(1, 2, 23, dtype=torch.float64), **TOL[torch.float64]
    )


# --------------------------------------------------------------------------- work saved


@pytest.mark.parametrize(
    "pattern,L", [(sparse.strided(8), 64), (sparse.fixed(8, 1), 64), (masks.causal, 50)]
)
def test_work_saved_counts_entries(pattern, L):
    m = masks.materialize(pattern, L)[0, 0]
    kept = sum(int(m[i, j]) for i in range(L) for j in range(L))
    assert sparse.density(pattern, L) == pytest.approx(kept / L**2, abs=1e-12)
    assert sparse.work_saved(pattern, L) == pytest.approx(1 - kept / L**2, abs=1e-12)


def test_work_saved_in_tiles():
    L = 100
    # Causal with 10×10 tiles: the 45 strictly-upper tiles are empty.
    assert sparse.work_saved(masks.causal, L, block_size=10) == pytest.approx(45 / 100)
    # Block-diagonal with matching tiles: only the diagonal tiles are live.
    assert sparse.work_saved(sparse.block(10), L, block_size=10) == pytest.approx(0.9)
    # Ragged edge tiles count by their real size: 7 live entries of 7×7 → 3 tiles of 3,3,1.
    saved = sparse.work_saved(sparse.block(3), 7, block_size=3)
    assert saved == pytest.approx(1 - (9 + 9 + 1) / 49)
    # Sliding window saves ~ 1 - w/L of the entries at long lengths.
    w, L = 64, 2048
    saved = sparse.work_saved(masks.sliding_window(w), L)
    exact = 1 - (w * L - w * (w - 1) / 2) / L**2
    assert saved == pytest.approx(exact, abs=1e-9)


# --------------------------------------------------------------------------- bad input


def test_errors():
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        sparse.strided(0)
    with pytest.raises(TypeError, match="stride must be an int"):
        sparse.strided(2.0)
    with pytest.raises(ValueError, match="summary must be <= block_size"):
        sparse.fixed(4, 5)
    with pytest.raises(ValueError, match="window must be >= 1"):
        sparse.longformer(0, 1)
    with pytest.raises(ValueError, match="pass length="):
        sparse.bigbird(4, 1, 2)
    with pytest.raises(ValueError, match="global token positions"):
        sparse.global_tokens([-1, 2])
    with pytest.raises(TypeError, match="tokens must be"):
        sparse.global_tokens("cls")
    with pytest.raises(ValueError, match="num_random must be >= 0"):
        sparse.bigbird(2, 1, -3)
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        sparse.work_saved(masks.causal, 8, block_size=0)


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.__name__)
def test_cached_queries_see_the_rows_of_the_full_mask(pattern):
    """With Lq < Lk (a KV cache) query i sits at position i + Lk - Lq: its row equals the full
    mask's row there, and attention over the cache equals the last rows of full attention."""
    L, n = 29, 4
    full = masks.materialize(pattern, L)[0, 0]
    assert torch.equal(masks.materialize(pattern, n, L)[0, 0], full[-n:])
    torch.manual_seed(2)
    q, k, v = (torch.randn(1, 2, L, 8, dtype=torch.float64) for _ in range(3))
    out_full = attend(q, k, v, mask_mod=pattern).output
    out_tail = attend(q[:, :, -n:], k, v, mask_mod=pattern).output
    assert_close(out_tail, out_full[:, :, -n:], **TOL[torch.float64])


@settings(max_examples=25, deadline=None)
@given(L=st.integers(1, 40), l=st.integers(1, 12), c=st.integers(1, 12), w=st.integers(1, 12))
def test_patterns_match_definitions_property(L, l, c, w):
    assert torch.equal(
        masks.materialize(sparse.strided(l), L)[0, 0], to_matrix(sets_strided(L, l), L)
    )
    c = min(c, l)
    assert torch.equal(
        masks.materialize(sparse.fixed(l, c), L)[0, 0], to_matrix(sets_fixed(L, l, c), L)
    )
    g = {0, L - 1}
    assert torch.equal(
        masks.materialize(sparse.longformer(w, sorted(g)), L)[0, 0],
        to_matrix(sets_longformer(L, w, g), L),
    )
