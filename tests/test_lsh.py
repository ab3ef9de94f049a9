"""Reformer LSH attention against exact shared-QK attention."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from conftest import TOL
from torch.testing import assert_close

from explore_attention.attention import masks
from explore_attention.attention.lsh import hash_buckets, lsh_attention, shared_qk_attention

pytestmark = pytest.mark.usefixtures("one_thread")


def data(B=2, H=2, L=50, D=8, dtype=torch.float64, seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    qk = torch.randn(B, H, L, D, generator=g, dtype=torch.float64).to(dtype)
    v = torch.randn(B, H, L, D, generator=g, dtype=torch.float64).to(dtype)
    return qk.requires_grad_(grad), v.requires_grad_(grad)


def reference(qk, v, causal):
    """Shared-QK attention written from the paper: keys normalised, self only as a last resort."""
    keys = qk / qk.norm(dim=-1, keepdim=True)
    s = qk @ keys.transpose(-1, -2) / qk.shape[-1] ** 0.5  # (B, H, L, L)
    L = s.shape[-1]
    s = s.masked_fill(torch.eye(L, dtype=torch.bool), -1e5)
    if causal:
        s = s.masked_fill(torch.ones(L, L, dtype=torch.bool).triu(1), float("-inf"))
    w = torch.softmax(s, -1)
    return w @ v, w


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n_hashes", [1, 3])
def test_exact_when_one_chunk(causal, n_hashes):
    qk, v = data(grad=True)
    mask_mod = masks.causal if causal else None
    res = lsh_attention(qk, v, n_hashes=n_hashes, bucket_size=64, mask_mod=mask_mod)
    ref, ref_w = reference(qk, v, causal)
    assert_close(res.output, ref, **TOL[torch.float64])
    assert_close(res.weights, ref_w, **TOL[torch.float64])
    assert_close(shared_qk_attention(qk, v, mask_mod=mask_mod).output, ref, **TOL[torch.float64])
    g = torch.randn_like(ref)
    for a, b in zip(
        torch.autograd.grad(res.output, (qk, v), g), torch.autograd.grad(ref, (qk, v), g)
    ):
        assert_close(a, b, **TOL[torch.float64])


def recall(n_hashes, seeds=range(3), top=8):
    """Fraction of each query's top-`top` exact keys that LSH lets it attend to."""
    rs = []
    for s in seeds:
        qk, v = data(B=1, H=4, L=512, D=16, dtype=torch.float32, seed=s)
        exact = reference(qk, v, False)[1]
        best = exact.topk(top, -1).indices  # (B, H, L, top)
        w = lsh_attention(
            qk,
            v,
            n_hashes=n_hashes,
            bucket_size=32,
            generator=torch.Generator().manual_seed(s),
        ).weights
        rs.append((w.gather(-1, best) > 0).float().mean().item())
    return sum(rs) / len(rs)


def test_recall_of_top_keys_improves_with_hash_rounds():
    recalls = [recall(n) for n in (1, 2, 4, 8)]
    print("LSH recall of top-8 keys for n_hashes 1, 2, 4, 8:", [f"{r:.3f}" for r in recalls])
    assert all(a < b for a, b in itertools.pairwise(recalls)), recalls
    assert recalls[-1] > 0.8


def test_weights_reproduce_output_and_rows_sum_to_one():
    qk, v = data(L=200)
    res = lsh_attention(
        qk,
        v,
        n_hashes=2,
        bucket_size=16,
        generator=torch.Generator().manual_seed(0),
    )
    assert_close(res.weights @ v, res.output, **TOL[torch.float64])
    assert_close(
        res.weights.sum(-1), torch.ones(2, 2, 200, dtype=torch.float64), **TOL[torch.float64]
    )
    # a token attends to itself only when it sees nothing else
    diag = res.weights.diagonal(dim1=-2, dim2=-1)
    assert diag.max() < 1e-6 or bool((res.weights > 0).sum(-1).eq(1).any())


def test_causal_no_leak():
    qk, v = data(L=200, grad=True)
    res = lsh_attention(
        qk,
        v,
        n_hashes=3,
        bucket_size=16,
        mask_mod=masks.causal,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.all(res.weights.triu(1) == 0)
    (gv,) = torch.autograd.grad(res.output[:, :, 100].sum(), (v,))
    assert torch.all(gv[:, :, 101:] == 0) and gv[:, :, :101].abs().sum() > 0
    # the first token has nothing but itself
    assert_close(res.output[:, :, 0], v[:, :, 0], **TOL[torch.float64])


def test_bad_input():
    qk, v = data(L=8)
    with pytest.raises(ValueError, match="n_hashes"):
        lsh_attention(qk, v, n_hashes=0, bucket_size=4)
    with pytest.raises(TypeError, match="bucket_size"):
        lsh_attention(qk, v, n_hashes=1, bucket_size=4.0)
    with pytest.raises(ValueError, match=r"\(B, H, L\)"):
        lsh_attention(qk, v[:, :, :4], n_hashes=1, bucket_size=4)
    with pytest.raises(TypeError, match="dtype"):
        lsh_attention(qk, v.float(), n_hashes=1, bucket_size=4)
    with pytest.raises(NotImplementedError, match=r"LSH attention supports .*masks\.causal"):
        lsh_attention(qk, v, n_hashes=1, bucket_size=4, mask_mod=masks.sliding_window(3))
    with pytest.raises(NotImplementedError, match="shared-QK attention"):
        shared_qk_attention(qk, v, mask_mod=masks.full)
    with pytest.raises(TypeError, match="return_weights must be a bool"):
        lsh_attention(qk, v, n_hashes=1, bucket_size=4, return_weights=None)


def test_threaded_heads_match_single_pass():
    """Without autograd on several threads, head groups run in parallel: same numbers."""
    qk, v = data(B=1, H=4, L=300)
    ref = lsh_attention(
        qk,
        v,
        n_hashes=2,
        bucket_size=16,
        mask_mod=masks.causal,
        generator=torch.Generator().manual_seed(5),
    ).output
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            out = lsh_attention(
                qk,
                v,
                n_hashes=2,
                bucket_size=16,
                mask_mod=masks.causal,
                generator=torch.Generator().manual_seed(5),
                return_weights=False,
            ).output
    finally:
        torch.set_num_threads(1)
    assert_close(out, ref, **TOL[torch.float64])


def union_reference(qk, v, n_hashes, bucket_size, seed, causal):
    """The paper's multi-round attention written from its definition, float64, in Python loops.

    Round r sorts positions by (bucket, position) and cuts chunks of ``bucket_size``; query i
    may look at its own chunk and the previous one, P_i^(r). App. A Eqs. 14 and 16 mix the
    rounds with the duplicate-count correction s_ij - log N_ij, N_ij = #{r : j ∈ P_i^(r)};
    summed over rounds that is exactly softmax attention over the union ∪_r P_i^(r), each key
    counted once. Also
    returns the same mix *without* the correction (keys found twice counted twice)."""
    B, H, L, D = qk.shape
    n_buckets = max(2, 2 * math.ceil(math.ceil(L / bucket_size) / 2))
    keys = qk / qk.norm(dim=-1, keepdim=True)
    buckets = hash_buckets(keys, n_buckets, n_hashes, generator=torch.Generator().manual_seed(seed))
    out, counted = torch.zeros_like(v), torch.zeros_like(v)
    multiplicities = set()
    for b, h in itertools.product(range(B), range(H)):
        chunk = []
        for r in range(n_hashes):
            order = sorted(range(L), key=lambda j: (int(buckets[r, b, h, j]), j))
            rank = {j: t for t, j in enumerate(order)}
            chunk.append([rank[j] // bucket_size for j in range(L)])
        for i in range(L):
            found = {}
            for r in range(n_hashes):
                for j in range(L):
                    if chunk[r][j] in (chunk[r][i], chunk[r][i] - 1) and not (causal and j > i):
                        found[j] = found.get(j, 0) + 1
            multiplicities.update(found.values())
            js = sorted(found)
            s = torch.stack([qk[b, h, i] @ keys[b, h, j] / math.sqrt(D) for j in js])
            s = torch.where(torch.tensor(js) == i, torch.full_like(s, -1e5), s)
            n = torch.tensor([found[j] for j in js], dtype=s.dtype)
            out[b, h, i] = torch.softmax(s, 0) @ v[b, h, js]
            counted[b, h, i] = torch.softmax(s + n.log(), 0) @ v[b, h, js]
    return out, counted, multiplicities


@pytest.mark.parametrize("causal", [False, True])
def test_duplicate_count_correction_matches_the_papers_formula(causal):
    """Several chunks and rounds, so keys are found in 1, 2 or 3 rounds: LSH equals softmax over
    the union of the rounds' windows. Without the ``- log N_ij`` correction it would equal
    ``counted`` instead, which this setting tells apart (keys found a different number of times)."""
    qk, v = data(B=1, H=2, L=40, D=8, seed=4, grad=True)
    mask_mod = masks.causal if causal else None
    res = lsh_attention(
        qk,
        v,
        n_hashes=3,
        bucket_size=8,
        mask_mod=mask_mod,
        generator=torch.Generator().manual_seed(11),
    )
    ref, counted, multiplicities = union_reference(qk, v, 3, 8, 11, causal)
    assert {1, 2, 3} <= multiplicities
    assert (counted - ref).abs().max() > 1e-2  # the correction matters here
    assert_close(res.output, ref, **TOL[torch.float64])
    assert_close(res.weights @ v, ref, **TOL[torch.float64])
    g = torch.randn_like(ref)
    for a, b in zip(
        torch.autograd.grad(res.output, (qk, v), g),
        torch.autograd.grad(ref, (qk, v), g),
        strict=True,
    ):
        assert_close(a, b, **TOL[torch.float64])


def test_error_shrinks_as_hash_rounds_grow():
    """DESIGN §6: the output error against exact shared-QK attention shrinks with n_hashes
    (relative to the exact output, whose norm is small: it averages many random values)."""
    errors = []
    for n_hashes in (1, 2, 4, 8):
        e = []
        for s in range(3):
            qk, v = data(B=1, H=4, L=256, D=16, seed=s)
            exact = shared_qk_attention(qk, v, return_weights=False).output
            out = lsh_attention(
                qk,
                v,
                n_hashes=n_hashes,
                bucket_size=16,
                generator=torch.Generator().manual_seed(s),
                return_weights=False,
            ).output
            e.append(((out - exact).norm() / exact.norm()).item())
        errors.append(sum(e) / len(e))
    print("LSH relative error for n_hashes 1, 2, 4, 8:", [f"{e:.3f}" for e in errors])
    assert all(a > b for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] < 0.6 * errors[0]
