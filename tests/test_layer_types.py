"""Vaswani et al. 2017 (arXiv:1706.03762) Table 1, measured by tasks.layer_types.

Each count is checked against its closed form, written here independently of the module:
FLOPs of the matmuls each layer performs (2 per multiply–add), the growth of the autograd
graph's depth with n, and the path lengths the paper's §4 states (1, n, ⌈(n−1)/⌊k/2⌋⌉,
⌈log_k n⌉, ⌈(n−1)/⌊r/2⌋⌉).
"""

from __future__ import annotations

import math

import pytest

from explore_attention.tasks import layer_types as lt


@pytest.mark.parametrize("n,d", [(16, 8), (40, 4)])
def test_flops_are_table_1_complexities(n, d):
    k, r = 3, 5
    # self-attention: Q, K, V projections (n·d·3d) + QKᵀ (n·n·d) + AV (n·n·d)
    assert lt.flops("self-attention", n, d) == 2 * (3 * n * d * d + 2 * n * n * d)
    # recurrent: W x_t and U h_{t−1} at each of n steps
    assert lt.flops("recurrent", n, d) == 2 * n * 2 * d * d
    # convolutional: k taps of a d×d map per position
    assert lt.flops("convolutional", n, d, kernel_size=k) == 2 * k * n * d * d
    # restricted self-attention: r keys per query instead of n
    assert lt.flops("restricted", n, d, window=r) == 2 * (3 * n * d * d + 2 * n * r * d)


def test_attention_doubles_n_quadruples_the_pair_term():
    d = 4
    big = [lt.flops("self-attention", n, d) - 2 * 3 * n * d * d for n in (64, 128)]
    assert big[1] == 4 * big[0]
    rnn = [lt.flops("recurrent", n, d) for n in (64, 128)]
    assert rnn[1] == 2 * rnn[0]


def test_sequential_operations_grow_with_n_only_for_the_rnn():
    for kind in ("self-attention", "convolutional", "dilated-convolutional", "restricted"):
        depths = {lt.sequential_operations(kind, n) for n in (4, 16, 64)}
        assert len(depths) == 1, (kind, depths)
    d4, d16, d64 = (lt.sequential_operations("recurrent", n) for n in (4, 16, 64))
    per_step = (d16 - d4) / 12
    assert per_step >= 1 and d64 - d16 == per_step * 48


@pytest.mark.parametrize("n", [8, 17, 30])
def test_max_path_lengths(n):
    k, r = 3, 5
    assert lt.max_path_length("self-attention", n) == 1
    assert lt.max_path_length("recurrent", n) == n  # x_0 → h_0 → … → h_{n−1}
    assert lt.max_path_length("convolutional", n, kernel_size=k) == math.ceil((n - 1) / (k // 2))
    assert lt.max_path_length("restricted", n, window=r) == math.ceil((n - 1) / (r // 2))
    # causal dilations 1, k, k², …: L layers reach k^L − 1 positions back
    dilated = lt.max_path_length("dilated-convolutional", n, kernel_size=k)
    assert dilated == min(L for L in range(1, n) if k**L - 1 >= n - 1)


def test_seconds_is_positive_and_bad_kind_raises():
    assert lt.seconds("self-attention", 8, 4, repeats=1) > 0
    with pytest.raises(ValueError, match="kind"):
        lt.flops("lstm", 8, 4)
    with pytest.raises(ValueError, match="kernel_size"):
        lt.make_layer("convolutional", 4, kernel_size=4)
    with pytest.raises(ValueError, match="window"):
        lt.make_layer("restricted", 4, window=4)


def test_table1_has_a_row_per_kind_and_length():
    rows = lt.table1([8, 16], d=4, repeats=1)
    assert {(r["kind"], r["n"]) for r in rows} == {(k, n) for k in lt.KINDS for n in (8, 16)}
