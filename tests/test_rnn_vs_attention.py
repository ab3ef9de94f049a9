"""The controlled attention-vs-RNN comparison: matched sizes, a learned gap, honest measurements."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from explore_attention.data import synthetic
from explore_attention.models.output import ModelOutput
from explore_attention.tasks import compare
from explore_attention.tasks.synthetic import make_task

pytestmark = pytest.mark.usefixtures("one_thread")


def test_synthetic_tasks() -> None:
    g = torch.Generator().manual_seed(0)
    src, tgt = synthetic.sample("reverse", 8, min_len=2, max_len=6, generator=g)
    for s, t in zip(src.tolist(), tgt.tolist()):
        s = [x for x in s if x]
        assert t[0] == synthetic.BOS and t[len(s) + 1] == synthetic.EOS
        assert t[1 : len(s) + 1] == s[::-1]
    src, tgt = synthetic.sample("recall", 16, min_len=2, max_len=5, num_symbols=10, generator=g)
    for s, t in zip(src.tolist(), tgt.tolist()):
        s = [x for x in s if x]
        keys, vals = s[:-2:2], s[1:-2:2]
        assert s[-2] == synthetic.FIRST_SYMBOL + 10 and len(set(keys)) == len(keys)
        assert t[1] == vals[keys.index(s[-1])]
    with pytest.raises(ValueError, match="task must be one of"):
        synthetic.sample("sort", 1, min_len=1, max_len=2)
    with pytest.raises(ValueError, match="min_len"):
        synthetic.sample("copy", 1, min_len=3, max_len=2)
    with pytest.raises(ValueError, match="distinct keys"):
        synthetic.sample("recall", 1, min_len=1, max_len=9, num_symbols=10)


def test_sizes_match_the_budget() -> None:
    s = compare.Setting(budget=20_000, max_len=8)
    counts = {}
    for m in compare.MODELS:
        sizes = compare.match_sizes("copy", m, s)
        counts[m] = compare.count_parameters(
            make_task(model=m, **sizes, max_len=8, eval_size=1).model
        )
    assert all(abs(n - 20_000) / 20_000 < 0.05 for n in counts.values()), counts


def test_activation_bytes_count_what_autograd_saves() -> None:
    """A bias-free linear layer saves exactly its input for backward: B·D·4 bytes."""

    class Probe(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(10, 6)
            self.lin = torch.nn.Linear(6, 10, bias=False)

        def forward(self, src, tgt_in):
            return ModelOutput(self.lin(self.emb(tgt_in).detach()))

    batch = (torch.ones(3, 2, dtype=torch.long), torch.ones(3, 5, dtype=torch.long))
    n = compare.saved_bytes(Probe(), batch)
    # the detached input (3·4·6 floats) + cross-entropy's saved log-softmax and target indices
    assert n >= 3 * 4 * 6 * 4
    t = make_task(model="bahdanau", hidden=16, emb_dim=8, max_len=12, eval_size=1)
    short = t.sample(torch.Generator().manual_seed(0), 8)
    long_ = synthetic.sample("copy", 8, min_len=12, max_len=12)
    assert compare.saved_bytes(t.model, long_) > compare.saved_bytes(t.model, short) > 0


@pytest.mark.slow
def test_attention_beats_the_bottleneck(tmp_path: Path) -> None:
    """Same parameters, same 300 steps: the GRU with attention copies long sequences, the GRU
    without attention cannot (its accuracy collapses with length)."""
    s = compare.Setting(budget=12_000, max_len=10, steps=300, batch_size=32, per_length=40)
    records = compare.run_comparison(s, tasks=("copy",), models=("gru", "bahdanau"), progress=False)
    acc = {r["model"]: r["accuracy_by_length"] for r in records}
    long_ = {m: sum(a[L] for L in range(6, 11)) / 5 for m, a in acc.items()}
    assert long_["bahdanau"] >= 0.6, acc
    assert long_["gru"] <= 0.3, acc
    assert long_["bahdanau"] - long_["gru"] >= 0.4, acc
    p = [r["parameters"] for r in records]
    assert max(p) / min(p) < 1.3, p
    assert all(r["seconds_per_step"] > 0 and r["activation_bytes"] > 0 for r in records)
    compare.write_report(records, s, tmp_path)
    saved = json.loads((tmp_path / "attention_vs_rnn.json").read_text())
    assert len(saved["records"]) == 2
    assert (tmp_path / "attention_vs_rnn.png").stat().st_size > 10_000
    assert "| copy | bahdanau |" in (tmp_path / "attention_vs_rnn.md").read_text()


def test_two_layer_transformer_sizes_match_the_budget() -> None:
    s = compare.Setting(budget=20_000, max_len=8)
    sizes = compare.match_sizes("recall", "transformer", s, num_layers=2)
    assert sizes["num_layers"] == 2
    opts = {"task": "recall", "num_symbols": 16, "max_len": 4}
    n = compare.count_parameters(make_task(model="transformer", **sizes, **opts, eval_size=1).model)
    assert abs(n - 20_000) / 20_000 < 0.05, n


def test_recall_attention_reads_the_answer_step_per_example() -> None:
    """recall_attention's shares equal a per-example loop over greedy's cross-attention."""
    from explore_attention.decoding import greedy

    s = compare.Setting(max_len=8, per_length=12)
    torch.manual_seed(0)
    model = make_task(
        model="transformer",
        hidden=16,
        num_layers=1,
        task="recall",
        num_symbols=16,
        max_len=4,
        eval_size=1,
    ).model.eval()
    pairs = 3
    got = compare.recall_attention(model, s, pairs)
    src, tgt = synthetic.sample(
        "recall",
        12,
        min_len=pairs,
        max_len=pairs,
        num_symbols=16,
        generator=torch.Generator().manual_seed(1000 + pairs),
    )
    hyp, w = greedy(model, src, max_len=3)
    right, on_vals, hits = [], [], []
    for b in range(12):
        values = src[b, 1 : 2 * pairs : 2].tolist()
        answer = int(tgt[b, 1])
        j = values.index(answer)
        right.append(float(w[b, 0, 2 * j + 1]))
        on_vals.append(sum(float(w[b, 0, 2 * i + 1]) for i in range(pairs)))
        hits.append(bool(hyp[b]) and hyp[b][0] == answer)
    assert got["on_right_value"] == pytest.approx(sum(right) / 12, abs=1e-6)
    assert got["on_values"] == pytest.approx(sum(on_vals) / 12, abs=1e-6)
    assert got["chance"] == pytest.approx(got["on_values"] / pairs)
    assert got["accuracy"] == pytest.approx(sum(hits) / 12)
    assert 0.0 <= got["answer_in_input"] <= 1.0
