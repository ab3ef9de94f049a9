"""Solutions to the exercises of notebooks/02_types/04_cross_attention.ipynb.

Each ``exercise_N`` computes the answer with the library and asserts it (tests/test_solutions.py
calls every one).
"""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from explore_attention.attention import MultiHeadAttention, attend
from explore_attention.attention.core import repeat_kv
from explore_attention.tasks.translation import load_translator, translate

K = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
V = torch.tensor([[1.0], [2.0], [3.0]])


def exercise_1() -> float:
    """q2 = (1, 1): scores (1, 1, 2), k3 wins; output (e + 2e + 3e²) / (2e + e²)."""
    q = torch.tensor([[1.0, 1.0]])
    res = attend(q[None, None], K[None, None], V[None, None], scale=1.0)
    e, e2 = math.e, math.e**2
    expected = (e + 2 * e + 3 * e2) / (2 * e + e2)
    assert int(res.weights[0, 0, 0].argmax()) == 2
    assert abs(float(res.output[0, 0, 0, 0]) - expected) < 1e-5
    return expected


def exercise_2() -> float:
    """Padding the first two keys = attending over the three real ones only."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2).eval()
    y, x = torch.randn(1, 3, 16), torch.randn(1, 5, 16)
    pad = torch.tensor([[True, True, False, False, False]])
    padded = mha(y, x, key_padding_mask=pad).output
    alone = mha(y, x[:, 2:]).output
    assert_close(padded, alone)
    return float((padded - alone).abs().max().detach())


def exercise_3() -> tuple[str, str]:
    """'acht' comes first in German (achtundfünfzig); its 'a' attends to 'eight'."""
    model, sv, tv, _ = load_translator("numbers-de-transformer")
    sentence = "seven thousand four hundred and fifty eight"
    out, w = translate(model, sv, tv, [sentence])
    words = sv.pieces(sentence)
    text = out[0]
    assert text == "siebentausendvierhundertachtundfünfzig"
    a = text.index("acht")
    looked_at = words[int(w[0, a, : len(words)].argmax())]
    assert looked_at == "eight"
    return text, looked_at


def exercise_4() -> float:
    """Ten queries at once = ten one-query attentions: rows are independent."""
    torch.manual_seed(1)
    q, k, v = torch.randn(1, 2, 10, 8), torch.randn(1, 2, 7, 8), torch.randn(1, 2, 7, 8)
    together = attend(q, k, v).output
    apart = torch.cat([attend(q[:, :, i : i + 1], k, v).output for i in range(10)], dim=2)
    assert_close(together, apart)
    return float((together - apart).abs().max())


def exercise_5() -> torch.Tensor:
    """Multi-query cross-attention by hand (one K/V head repeated) equals num_kv_heads=1."""
    torch.manual_seed(2)
    d_model, H = 16, 4
    mqa = MultiHeadAttention(d_model, H, num_kv_heads=1).eval()
    y, x = torch.randn(2, 3, d_model), torch.randn(2, 6, d_model)
    dh = d_model // H
    q = mqa.q_proj(y).view(2, 3, H, dh).transpose(1, 2)  # (B, H, Lq, dh)
    k = mqa.k_proj(x).view(2, 6, 1, dh).transpose(1, 2)  # (B, 1, Lk, dh)
    v = mqa.v_proj(x).view(2, 6, 1, dh).transpose(1, 2)
    k, v = repeat_kv(k, H), repeat_kv(v, H)  # every query head reads the one K/V head
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dh), -1)
    by_hand = mqa.out_proj((w @ v).transpose(1, 2).reshape(2, 3, d_model))
    out = mqa(y, x).output
    assert_close(by_hand, out)
    return by_hand
