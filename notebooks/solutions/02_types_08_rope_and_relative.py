"""Solutions to the exercises of notebooks/02_types/08_rope_and_relative.ipynb.

Each ``exercise_N`` computes the answer with the library and asserts it (tests/test_solutions.py
calls every one).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch.testing import assert_close

import explore_attention
from explore_attention.attention import attend, masks
from explore_attention.attention.positional import (
    alibi_slopes,
    apply_rope,
    t5_relative_position_bucket,
)


def exercise_1() -> tuple[float, float]:
    """d = 2 has one pair with θ_1 = base^0 = 1: score = cos(i - j): 1 and cos 3."""
    q = k = torch.tensor([[[[1.0, 0.0]]]], dtype=torch.float64)

    def score(i: int, j: int) -> float:
        return float((apply_rope(q, torch.tensor([i])) * apply_rope(k, torch.tensor([j]))).sum())

    same, back = score(5, 5), score(1, 4)
    assert abs(same - 1.0) < 1e-12
    assert abs(back - math.cos(3)) < 1e-12  # cos(-3) = cos 3 = -0.99
    return same, back


def exercise_2() -> list[float]:
    """H = 4: γ_h = 2^(-8h/4) = 1/4, 1/16, 1/64, 1/256; head 1 (slope 1/4) is the most local."""
    slopes = alibi_slopes(4).tolist()
    assert_close(torch.tensor(slopes), torch.tensor([1 / 4, 1 / 16, 1 / 64, 1 / 256]))
    assert max(range(4), key=lambda h: slopes[h]) == 0
    return slopes


def exercise_3() -> int:
    """Offsets below 8 (half of the 16 buckets per direction) each get their own bucket."""
    rel = torch.arange(0, 129)
    b = t5_relative_position_bucket(rel, bidirectional=True).tolist()
    first = next(o for o in range(128) if b[o] == b[o + 1])
    assert first == 8
    assert len(set(b[:8])) == 8  # exact buckets for 0..7
    return first


def _rebuild(layer: int, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """induction-2l's attention of ``layer`` rebuilt with positions shifted by ``shift``."""
    from explore_attention.inspect import capture
    from explore_attention.tasks.induction import repeated_tokens
    from explore_attention.train import load_checkpoint

    path = Path(explore_attention.__file__).parent / "checkpoints" / "induction-2l"
    model, _ = load_checkpoint(path)
    model.eval()
    ids = repeated_tokens(1, 24, 64, generator=torch.Generator().manual_seed(0))
    trace = capture(model, ids, tokens=[str(int(t)) for t in ids[0]])
    attn = model.blocks[layer].attn
    seen = {}
    hook = attn.register_forward_pre_hook(lambda mod, args: seen.update(x=args[0]))
    with torch.no_grad():
        model(ids)
    hook.remove()
    x = seen["x"]
    B, L, _ = x.shape
    H = attn.num_heads
    dh = x.shape[-1] // H

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.view(B, L, H, dh).transpose(1, 2)

    base = model.config.rope_base
    pos = torch.arange(L) + shift
    with torch.no_grad():
        q = apply_rope(heads(attn.q_proj(x)), pos, base=base)
        k = apply_rope(heads(attn.k_proj(x)), pos, base=base)
        w = attend(q, k, heads(attn.v_proj(x)), mask_mod=masks.causal).weights[0]
    return w, trace.attentions[layer]


def exercise_4() -> float:
    """Layer 1 (induction heads): shifting every position by 37 changes nothing."""
    w0, captured = _rebuild(1, 0)
    w37, _ = _rebuild(1, 37)
    assert_close(w0, captured, atol=1e-5, rtol=1e-4)
    assert_close(w37, w0, atol=1e-5, rtol=1e-4)
    return float((w37 - w0).abs().max())


def neighbour_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0):
    """RoPE with the paper's pairing: coordinates (2p-2, 2p-1) turned by i·θ_p."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=x.dtype) / d)  # θ_1..θ_{d/2}
    ang = positions.to(x.dtype)[:, None] * theta  # (L, d/2)
    cos, sin = torch.cos(ang), torch.sin(ang)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def exercise_5() -> torch.Tensor:
    """Neighbour pairing = apply_rope's half-split pairing after permuting coordinates."""
    d, L = 8, 10
    x = torch.randn(1, 2, L, d, dtype=torch.float64)
    perm = torch.stack([torch.arange(d // 2), torch.arange(d // 2) + d // 2], -1).flatten()
    pos = torch.arange(L)
    assert_close(neighbour_rope(x[..., perm], pos), apply_rope(x, pos)[..., perm])
    return perm
