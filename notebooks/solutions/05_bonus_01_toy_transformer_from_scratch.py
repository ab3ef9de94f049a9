"""Solutions to the exercises of notebooks/05_bonus/01_toy_transformer_from_scratch.ipynb."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from explore_attention.attention import MultiHeadAttention, masks
from explore_attention.attention.positional import sinusoidal_positions
from explore_attention.data import synthetic
from explore_attention.decoding import greedy
from explore_attention.tasks.synthetic import make_task
from explore_attention.train import TrainConfig, train


def exercise_1() -> list[int]:
    """Causal rows: row t sees keys 0..t, so t + 1 non-zero weights."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4)
    w = mha(torch.randn(1, 5, 16), mask_mod=masks.causal, return_weights=True).weights
    nonzero = (w[0] > 0).sum(-1)  # (H, T)
    assert (nonzero == torch.arange(1, 6)).all()
    return nonzero[0].tolist()


def exercise_2() -> float:
    """PE(pos + k) = R_k PE(pos): one 2x2 rotation per frequency pair."""
    d, k = 16, 3
    pe = sinusoidal_positions(50, d, dtype=torch.float64)  # (50, d)
    i = torch.arange(d // 2, dtype=torch.float64)
    omega = 10000.0 ** (-2 * i / d)  # frequency of pair i
    c, s = torch.cos(k * omega), torch.sin(k * omega)
    sin_p, cos_p = pe[:-k, 0::2], pe[:-k, 1::2]  # (50 - k, d/2)
    # sin(a + b) = sin a cos b + cos a sin b;  cos(a + b) = cos a cos b - sin a sin b
    shifted = torch.stack([sin_p * c + cos_p * s, cos_p * c - sin_p * s], -1).flatten(1)
    torch.testing.assert_close(shifted, pe[k:])
    return float((shifted - pe[k:]).abs().max())


def exercise_3() -> float:
    """A model trained on copy looks along the diagonal."""
    torch.set_num_threads(1)
    task = make_task(
        "copy",
        model="transformer",
        hidden=32,
        num_heads=4,
        num_layers=2,
        d_ff=64,
        max_len=8,
        eval_size=100,
    )
    cfg = TrainConfig(steps=300, batch_size=64, lr=3e-3, eval_every=300, warmup=30, seed=0)
    model = train(task, cfg, progress=False).model.eval()
    g = torch.Generator().manual_seed(3)
    src, _ = synthetic.sample("copy", 50, min_len=6, max_len=6, generator=g)
    _, w = greedy(model, src, max_len=8)  # w: (B, T, S)
    steps = w[:, :6].argmax(-1)  # (B, 6): where output step t looks
    on_diagonal = float((steps == torch.arange(6)).float().mean())
    assert on_diagonal > 0.8, on_diagonal
    return on_diagonal


def exercise_4() -> float:
    """Label smoothing (Vaswani et al. 2017, §5.4) by hand equals PyTorch's."""
    torch.manual_seed(0)
    eps, V = 0.1, 11
    logits, y = torch.randn(20, V), torch.randint(0, V, (20,))
    target = torch.full((20, V), eps / V)
    target[torch.arange(20), y] += 1 - eps
    ours = -(target * logits.log_softmax(-1)).sum(-1).mean()
    torch.testing.assert_close(ours, F.cross_entropy(logits, y, label_smoothing=eps))
    return float(ours)
