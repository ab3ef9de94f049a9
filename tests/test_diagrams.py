"""viz.diagrams: each diagram is titled, shows the library's own numbers, and rejects bad input.

References are computed independently here (plain torch / numpy formulas), not by the code that
draws the diagram.
"""

from __future__ import annotations

import math
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from explore_attention.attention import masks, sparse, tiled
from explore_attention.viz import diagrams


def _title(fig) -> str:
    parts = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    parts += [ax.get_title() for ax in fig.axes]
    return " ".join(p for p in parts if p)


def _numbers(ax) -> list[float]:
    return [float(t.get_text()) for t in ax.texts if re.fullmatch(r"-?\d+\.\d\d", t.get_text())]


def test_qkv_flow_prints_attends_weights_and_output():
    fig = diagrams.qkv_flow(("a", "b", "c"), d_model=3, d_k=2, seed=1)
    assert "Q/K/V data flow" in _title(fig)
    ex = diagrams.qkv_example(("a", "b", "c"), d_model=3, d_k=2, seed=1)
    # independent reference: Vaswani et al. Eq. 1 by hand from x and the W's
    q, k, v = ex["x"] @ ex["w_q"], ex["x"] @ ex["w_k"], ex["x"] @ ex["w_v"]
    a = torch.softmax(q @ k.T / math.sqrt(2), dim=-1)
    torch.testing.assert_close(ex["a"], a)
    torch.testing.assert_close(ex["o"], a @ v)
    by_title = {ax.get_title(): ax for ax in fig.axes}
    a_ax = next(ax for t, ax in by_title.items() if t.startswith("A = softmax"))
    o_ax = next(ax for t, ax in by_title.items() if t.startswith("O = A V"))
    np.testing.assert_allclose(_numbers(a_ax), a.flatten().numpy(), atol=0.006)
    np.testing.assert_allclose(_numbers(o_ax), (a @ v).flatten().numpy(), atol=0.006)
    assert a_ax.get_xlabel() and a_ax.get_ylabel()
    assert [t.get_text() for t in a_ax.get_xticklabels()] == ["a", "b", "c"]
    plt.close(fig)
    fig = diagrams.qkv_flow(numbers=False)
    assert len(fig.axes) == 1 and "Q/K/V" in _title(fig)
    plt.close(fig)


def test_qkv_flow_bad_input():
    with pytest.raises(TypeError, match="tokens must be a list of strings"):
        diagrams.qkv_flow("abc")
    with pytest.raises(ValueError, match="d_k must be >= 1"):
        diagrams.qkv_flow(d_k=0)
    with pytest.raises(TypeError, match="numbers must be a bool"):
        diagrams.qkv_flow(numbers="yes")


@pytest.mark.parametrize(("H", "H_kv", "kind"), [(4, None, "MHA"), (4, 2, "GQA"), (8, 1, "MQA")])
def test_multihead_split_groups_and_cache(H, H_kv, kind):
    fig = diagrams.multihead_split(16, H, H_kv)
    title = _title(fig)
    kv = H if H_kv is None else H_kv
    d_h = 16 // H
    assert title.startswith(kind) and f"H={H} heads of d_h={d_h}" in title
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert f"2·H_kv·d_h = {2 * kv * d_h} numbers" in texts
    assert f"{H // kv}× smaller" in texts
    # one box per query head and per kv head
    assert sum(t.get_text().startswith("head ") for t in fig.axes[0].texts) == H
    assert sum(t.get_text().startswith("K,V head") for t in fig.axes[0].texts) == kv
    plt.close(fig)


def test_multihead_split_bad_input():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        diagrams.multihead_split(10, 4)
    with pytest.raises(ValueError, match="divisible by num_kv_heads"):
        diagrams.multihead_split(8, 4, 3)


def test_cross_attention_draws_given_weights():
    w = torch.softmax(torch.randn(2, 3, generator=torch.Generator().manual_seed(0)), -1)
    fig = diagrams.cross_attention(["x", "y", "z"], ["p", "q"], w)
    assert "Cross-attention" in _title(fig) and "given weights" in _title(fig)
    hm = fig.axes[1]
    np.testing.assert_allclose(hm.images[0].get_array(), w.numpy())
    assert hm.get_xlabel() and hm.get_ylabel()
    plt.close(fig)
    fig = diagrams.cross_attention()
    assert "random vectors" in _title(fig)
    np.testing.assert_allclose(fig.axes[1].images[0].get_array().sum(1), 1.0, atol=1e-6)
    plt.close(fig)
    with pytest.raises(ValueError, match=r"weights must have shape .* \(2, 3\)"):
        diagrams.cross_attention(["x", "y", "z"], ["p", "q"], torch.ones(3, 2))


@pytest.mark.parametrize(
    "mask_mod",
    [masks.causal, masks.sliding_window(5), sparse.bigbird(3, 1, 2, length=24)],
    ids=["causal", "window", "bigbird"],
)
def test_tile_states_agree_with_the_tiled_kernels_block_map(mask_mod):
    L, b = 24, 4
    m = masks.materialize(mask_mod, L)[0, 0]
    states = diagrams.tile_states(m, b)
    bm = tiled.block_map(mask_mod, 1, 1, L, L, b, b)
    code = {"empty": tiled.EMPTY, "partial": tiled.PARTIAL, "full": tiled.FULL}
    np.testing.assert_array_equal(np.vectorize(code.get)(states), bm.numpy())


def test_tile_schedule_counts_and_order():
    fig = diagrams.tile_schedule(masks.causal, 16, 4)
    ax = fig.axes[0]
    assert "computed 6 full + 4 partial" in ax.get_title() and "skipped 6" in ax.get_title()
    steps = [int(t.get_text()) for t in ax.texts]
    assert steps == list(range(1, 11))
    assert ax.get_xlabel() and ax.get_ylabel()
    # q_outer visits row 0 first; kv_outer visits column 0 (all four row tiles) first
    pos_q = {int(t.get_text()): t.get_position() for t in ax.texts}
    plt.close(fig)
    fig = diagrams.tile_schedule(masks.causal, 16, 4, order="kv_outer")
    ax = fig.axes[0]
    pos_k = {int(t.get_text()): t.get_position() for t in ax.texts}
    assert (
        pos_q[2][0] == pos_q[1][0] and pos_q[2][1] > pos_q[1][1]
    )  # next query tile, same key tile
    assert [pos_k[s][0] for s in (1, 2, 3, 4)] == [pos_k[1][0]] * 4  # column 0 first
    plt.close(fig)
    with pytest.raises(ValueError, match="order must be"):
        diagrams.tile_schedule(order="diagonal")
    with pytest.raises(TypeError, match="mask_mod must be a callable"):
        diagrams.tile_schedule("causal")


def test_lsh_example_matches_an_independent_hash_and_sort():
    ex = diagrams.lsh_example(12, 4, 3, seed=2)
    x, rot = ex["x"].numpy(), ex["rot"].numpy()
    proj = x @ rot  # (L, n_buckets / 2)
    expected = np.concatenate([proj, -proj], axis=1).argmax(1)
    np.testing.assert_array_equal(ex["buckets"].numpy(), expected)
    order = sorted(range(12), key=lambda p: (expected[p], p))
    np.testing.assert_array_equal(ex["order"].numpy(), order)
    fig = diagrams.lsh_buckets(12, 4, 3, seed=2)
    assert "LSH attention" in _title(fig)
    assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()
    chunks = [t.get_text() for t in fig.axes[1].texts if t.get_text().startswith("chunk")]
    assert chunks == ["chunk 0", "chunk 1", "chunk 2", "chunk 3"]
    plt.close(fig)
    with pytest.raises(ValueError, match="n_buckets must be even"):
        diagrams.lsh_buckets(n_buckets=3)


def test_rope_scores_depend_only_on_distance_and_match_complex_rotation():
    g = torch.Generator().manual_seed(0)
    d, L, base = 8, 10, 100.0
    q, k = (
        torch.randn(d, generator=g, dtype=torch.float64),
        torch.randn(d, generator=g, dtype=torch.float64),
    )
    s = diagrams.rope_scores(q, k, L, base=base)
    # reference: pair p is the complex number x_p + i x_{p+d/2}, rotated by e^{i·pos·θ_p}
    theta = base ** (-2 * torch.arange(d // 2, dtype=torch.float64) / d)
    qc = torch.complex(q[: d // 2], q[d // 2 :])
    kc = torch.complex(k[: d // 2], k[d // 2 :])
    pos = torch.arange(L, dtype=torch.float64)
    ref = torch.stack(
        [(qc * kc.conj() * torch.exp(1j * (i - pos)[:, None] * theta)).real.sum(-1) for i in pos]
    )
    torch.testing.assert_close(s, ref)
    for off in range(-L + 1, L):
        diag = torch.diagonal(s, offset=off)
        torch.testing.assert_close(diag, diag[:1].expand_as(diag))


def test_rope_rotation_figure_and_bad_input():
    fig = diagrams.rope_rotation(3, 1, dim=8, pair=1)
    assert "RoPE" in _title(fig)
    assert "θ_p = 1 rad" in fig.axes[0].get_title()
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes[:2])
    plt.close(fig)
    with pytest.raises(ValueError, match="dim must be even"):
        diagrams.rope_rotation(dim=7)
    with pytest.raises(ValueError, match=r"pair must be in 1\.\.dim/2"):
        diagrams.rope_rotation(dim=8, pair=5)
    with pytest.raises(ValueError, match="must be < L"):
        diagrams.rope_rotation(20, 1, L=12)


@pytest.mark.parametrize("variant", ["bahdanau", "luong"])
def test_seq2seq_attention_prints_the_modules_weights(variant):
    from explore_attention.attention.rnn import BahdanauAttention, LuongAttention

    fig = diagrams.seq2seq_attention(variant, ["a", "b", "c", "d"], seed=3)
    title = _title(fig)
    assert ("s_{i−1}" in title) == (variant == "bahdanau")
    assert ("h_t" in title) == (variant == "luong")
    shown = [
        float(t.get_text().split("= ")[-1])
        for t in fig.axes[0].texts
        if t.get_text().startswith("a_")
    ]
    torch.manual_seed(3)
    g = torch.Generator().manual_seed(3)
    keys, state = torch.randn(1, 4, 6, generator=g), torch.randn(1, 4, generator=g)
    mod = BahdanauAttention(4, 6, 5) if variant == "bahdanau" else LuongAttention(4, 6, "general")
    with torch.no_grad():
        w = mod(state, keys).weights
    np.testing.assert_allclose(shown, w[0].numpy(), atol=0.006)
    assert abs(sum(shown) - 1) < 0.03
    plt.close(fig)


def test_seq2seq_attention_bad_input():
    with pytest.raises(ValueError, match="variant must be 'bahdanau' or 'luong'"):
        diagrams.seq2seq_attention("dot")
    with pytest.raises(ValueError, match="source_tokens needs at least 1"):
        diagrams.seq2seq_attention("luong", [])
