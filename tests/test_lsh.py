"""Reformer LSH attention against exact shared-QK attention."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import TOL
from torch.testing import assert_close

from explore_attention.attention.lsh import lsh_attention, shared_qk_attention

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
    res = lsh_attention(
        qk, v, n_hashes=n_hashes, bucket_size=64, causal=causal, return_weights=True
    )
    ref, ref_w = reference(qk, v, causal)
    assert_close(res.output, ref, **TOL[torch.float64])
    assert_close(res.weights, ref_w, **TOL[torch.float64])
    assert_close(shared_qk_attention(qk, v, causal=causal).output, ref, **TOL[torch.float64])
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
            return_weights=True,
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
        return_weights=True,
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
        causal=True,
        return_weights=True,
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


def test_threaded_heads_match_single_pass():
    """Without autograd on several threads, head groups run in parallel: same numbers."""
    qk, v = data(B=1, H=4, L=300)
    ref = lsh_attention(
        qk,
        v,
        n_hashes=2,
        bucket_size=16,
        causal=True,
        return_weights=True,
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
                causal=True,
                generator=torch.Generator().manual_seed(5),
            ).output
    finally:
        torch.set_num_threads(1)
    assert_close(out, ref, **TOL[torch.float64])
