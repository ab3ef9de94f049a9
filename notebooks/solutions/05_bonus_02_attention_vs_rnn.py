"""Solutions to the exercises of notebooks/05_bonus/02_attention_vs_rnn.ipynb."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from explore_attention.attention import attend
from explore_attention.data import synthetic
from explore_attention.tasks import compare

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"
NAMES = ["k1", "v1", "k2", "v2", "k3", "v3", "?"]


def exercise_1() -> dict[int, tuple[float, float]]:
    """Uniform guess vs majority vote over the input's values, against the table's Transformer."""
    s = compare.Setting()
    table = json.loads((RESULTS / "attention_vs_rnn.json").read_text())["records"]
    transformer = next(r for r in table if r["task"] == "recall" and r["model"] == "transformer")
    out = {}
    for n in range(2, 7):
        g = torch.Generator().manual_seed(1000 + n)  # the table's test set of this length
        src, tgt = synthetic.sample(
            "recall", s.per_length, min_len=n, max_len=n, num_symbols=2 * s.max_len, generator=g
        )
        uniform = majority = 0.0
        for vals, answer in zip(src[:, 1 : 2 * n : 2].tolist(), tgt[:, 1].tolist()):
            uniform += vals.count(answer) / n
            top = max(vals.count(v) for v in vals)
            commonest = {v for v in vals if vals.count(v) == top}
            majority += (answer in commonest) / len(commonest)
        out[n] = (uniform / s.per_length, majority / s.per_length)
    measured = {n: transformer["accuracy_by_length"][str(n)] for n in out}
    assert all(abs(measured[n] - out[n][1]) < 0.06 for n in out), (measured, out)
    far_uniform = sum(abs(measured[n] - out[n][0]) for n in out)
    far_majority = sum(abs(measured[n] - out[n][1]) for n in out)
    assert far_majority < far_uniform
    return out


def _lookup(query: str, names: list[str]) -> str:
    vocab = sorted(set(names) | {query})
    onehot = torch.eye(len(vocab))[[vocab.index(t) for t in names]]  # (L, |V|)
    q = 4.0 * torch.eye(len(vocab))[vocab.index(query)][None]  # (1, |V|)
    prev = torch.cat([torch.zeros(1, len(vocab)), onehot[:-1]])  # key_p = token p - 1
    out = attend(q[None, None], prev[None, None], onehot[None, None]).output[0, 0, 0]
    return vocab[int(out.argmax())]


def exercise_2() -> tuple[str, str]:
    """k3 reads v3; an absent key matches nothing and reads an even mix (argmax: a tie)."""
    got = _lookup("k3", [*NAMES, "k3"])
    assert got == "v3"
    vocab = sorted(set(NAMES) | {"k4"})
    names = [*NAMES, "k4"]
    onehot = torch.eye(len(vocab))[[vocab.index(t) for t in names]]
    q = 4.0 * torch.eye(len(vocab))[vocab.index("k4")][None]
    prev = torch.cat([torch.zeros(1, len(vocab)), onehot[:-1]])
    w = attend(q[None, None], prev[None, None], onehot[None, None]).weights[0, 0, 0]
    torch.testing.assert_close(w, torch.full_like(w, 1 / len(names)))  # no key matches
    return got, "uniform"


def exercise_3() -> float:
    """Fused pairs: one hop with keys = key halves reads the right value for every query."""
    n, d = 6, 6
    keys, values = torch.eye(d)[:n], torch.eye(d)[torch.randperm(n, generator=None)]
    x = torch.cat([keys, values], dim=-1)  # (n, 2d): one position per pair
    q = 8.0 * keys  # every key asked once, (n, d)
    out = attend(q[None, None], x[None, None, :, :d], x[None, None, :, d:]).output[0, 0]
    assert (out.argmax(-1) == values.argmax(-1)).all()
    return float((out.argmax(-1) == values.argmax(-1)).float().mean())
