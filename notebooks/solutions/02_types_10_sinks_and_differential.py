"""Solutions to the exercises of notebooks/02_types/10_sinks_and_differential.ipynb.

Each ``exercise_N`` computes the answer with the library and asserts it (tests/test_solutions.py
calls every one).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor
from torch.testing import assert_close

import explore_attention
from explore_attention.attention import masks, sinks
from explore_attention.attention.differential import DifferentialAttention, lambda_init

CHECKPOINTS = Path(explore_attention.__file__).parent / "checkpoints"


def exercise_1() -> tuple[float, float]:
    """Sink score 1.0: weight e / (e + e^0.1 + e^0.2 + 1); each content weight grows 1/(1-w)."""
    scores = torch.tensor([1.0, 0.1, 0.2, 0.0])
    w = torch.softmax(scores, 0)
    evicted = torch.softmax(scores[1:], 0)
    growth = evicted / w[1:]
    expected = math.e / (math.e + math.exp(0.1) + math.exp(0.2) + 1)
    assert abs(float(w[0]) - expected) < 1e-6
    assert_close(growth, torch.full((3,), 1 / (1 - expected)))
    return float(w[0]), float(growth[0])  # about 0.45 and 1.8: a weak sink matters less


def exercise_2() -> list[int]:
    """100 tokens through (4 sinks, window 8): positions 0-3 and 92-99; query 99 sees 12 keys."""
    cache = sinks.SinkKVCache(num_sinks=4, window=8)
    for t in range(100):
        k = torch.full((1, 1, 1, 1), float(t))
        cache.append(k, k)
    kept = cache.original_positions().tolist()
    assert kept == [0, 1, 2, 3, *range(92, 100)]
    visible = masks.materialize(sinks.sink_window(4, 8), 100)[0, 0, 99]
    assert int(visible.sum()) == 12
    assert torch.nonzero(visible).flatten().tolist() == kept
    return kept


def exercise_3() -> float:
    """Zero λ vectors: λ = e^0 - e^0 + λ_init(3) = 0.8 - 0.6 e^-0.6; rows sum to 1 - λ."""
    torch.manual_seed(0)
    attn = DifferentialAttention(16, 2, layer_index=3)
    with torch.no_grad():
        for p in (attn.lambda_q1, attn.lambda_k1, attn.lambda_q2, attn.lambda_k2):
            p.zero_()
    lam = float(attn.lam().detach())
    assert abs(lam - (0.8 - 0.6 * math.exp(-0.6))) < 1e-6
    assert abs(lam - lambda_init(3)) < 1e-6
    weights = attn(torch.randn(2, 5, 16)).weights
    assert_close(weights.sum(-1), torch.full((2, 2, 5), 1 - lam))
    return lam


def _share_on_first(attentions: tuple[Tensor, ...], start: int) -> float:
    a = torch.stack(attentions)  # (layers, B, H, L, L)
    return float(a[..., start:, 0].mean())


def exercise_4() -> tuple[float, float]:
    """gpt-pydoc-char puts well under 1 % on token 0; MiniLM puts ~30 % on [CLS]."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from explore_attention.inspect import load_model

    path = CHECKPOINTS / "gpt-pydoc-char"
    gpt = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(path)
    text = "The with statement is used to wrap the execution of a block with methods."
    ids = tok(text, return_tensors="pt")["input_ids"][:, :64]
    with torch.no_grad():
        gpt_share = _share_on_first(gpt(ids, output_attentions=True).attentions, 16)
    bert, btok = load_model(None)
    enc = btok(text, return_tensors="pt")
    with torch.no_grad():
        bert_share = _share_on_first(bert(**enc, output_attentions=True).attentions, 1)
    assert gpt_share < 0.02 < 0.2 < bert_share
    return gpt_share, bert_share  # MiniLM, not the char GPT, would profit from sinks


def bidirectional_sink_window(num_sinks: int, window: int):
    """Keys j < s for every query, plus the band |i - j| <= window // 2 (an encoder's mask)."""

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return (kv_idx < num_sinks) | ((q_idx - kv_idx).abs() <= window // 2)

    return masks.named(mod, f"bidirectional_sinks_{num_sinks}_window_{window}")


def exercise_5() -> Tensor:
    """With s = 1 the mask equals the notebook's 'window + [CLS]' mask."""
    L, w = 20, 5
    ours = masks.materialize(bidirectional_sink_window(1, w), L)[0, 0]
    pos = torch.arange(L)
    notebook = ((pos[:, None] - pos[None]).abs() <= w // 2) | (pos[None] == 0)
    assert torch.equal(ours, notebook)
    return ours
