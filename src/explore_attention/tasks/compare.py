"""Attention vs RNN, controlled: the same tasks, the same parameter budget, the same training.

For each synthetic task (copy, reverse, associative recall) and each model — an LSTM and a GRU
encoder-decoder without attention, the GRU with Bahdanau attention, and a Transformer — the
hidden width is chosen so that every model has about the same number of parameters; all train
with the same steps, batch, learning rate and seed. Measured: exact-match accuracy per sequence
length, wall-clock per training step, and training memory (the bytes of activations autograd
keeps for the backward pass, counted with ``torch.autograd.graph.saved_tensors_hooks``, the same
on every machine).

Run ``python -m explore_attention.tasks.compare --out docs/results/`` (a few minutes on a laptop
CPU; ``EXPLORE_ATTENTION_QUICK=1`` for a smoke run); it writes ``attention_vs_rnn.json``,
``attention_vs_rnn.md`` and ``attention_vs_rnn.png``.

``--recall-controls`` runs the controlled experiments on associative recall instead (why the
one-layer Transformer fails it: :data:`RECALL_CONTROLS` changes one thing at a time — parameters
or depth) and writes ``recall_controls.json`` / ``recall_controls.md``; each record also
holds :func:`recall_attention`, where the trained decoder's cross-attention goes.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..data import synthetic
from ..decoding import greedy
from ..train import TrainConfig, train
from .common import exact_match_batches, quick
from .synthetic import make_task

__all__ = [
    "MODELS",
    "RECALL_CONTROLS",
    "Setting",
    "count_parameters",
    "match_sizes",
    "recall_attention",
    "recall_controls",
    "run_comparison",
    "saved_bytes",
]

MODELS = ("lstm", "gru", "bahdanau", "transformer")


@dataclass(frozen=True)
class Setting:
    budget: int = 25_000  # target parameter count of every model
    max_len: int = 12  # training lengths 1..max_len (recall: pairs 1..max_len // 2)
    steps: int = 1200  # optimiser steps per model
    batch_size: int = 64  # examples per step
    lr: float = 3e-3  # peak learning rate
    per_length: int = 100  # evaluation examples per length
    seed: int = 0  # one seed for data, init and batches


QUICK = Setting(budget=8_000, max_len=8, steps=60, batch_size=32, per_length=20)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _options(task: str, s: Setting) -> dict:
    if task == "recall":
        return {"task": task, "num_symbols": 2 * s.max_len, "max_len": s.max_len // 2}
    return {"task": task, "max_len": s.max_len}


def _count(task: str, model: str, setting: Setting, sizes: dict) -> int:
    return count_parameters(
        make_task(model=model, **sizes, **_options(task, setting), eval_size=1).model
    )


def match_sizes(task: str, model: str, setting: Setting, num_layers: int = 1) -> dict:
    """Model sizes whose parameter count comes closest to ``setting.budget``.

    RNNs: the hidden width (even), embeddings half as wide. Transformer (``num_layers`` encoder
    and decoder layers; 1 by default, like the one-layer RNNs): the largest width (a multiple of
    4, for 4 heads) under the budget, then the feed-forward width that fills the rest
    (parameters are linear in ``d_ff``).
    """
    if model == "transformer":
        one = {"num_layers": num_layers}
        width = 4
        while _count(task, model, setting, {"hidden": width + 4, **one}) <= setting.budget:
            width += 4
        n1 = _count(task, model, setting, {"hidden": width, "d_ff": 1, **one})
        n2 = _count(task, model, setting, {"hidden": width, "d_ff": 2, **one})
        d_ff = max(1, round(1 + (setting.budget - n1) / (n2 - n1)))
        return {"hidden": width, "d_ff": d_ff, **one}
    best, best_gap = {}, float("inf")
    for width in range(4, 1025, 2):
        sizes = {"hidden": width, "emb_dim": max(4, width // 2)}
        n = _count(task, model, setting, sizes)
        if abs(n - setting.budget) < best_gap:
            best, best_gap = sizes, abs(n - setting.budget)
        if n > setting.budget:
            break
    return best


def saved_bytes(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
    """Bytes of tensors autograd saves for backward in one training step (activation memory)."""
    from .common import seq2seq_loss

    total, seen = 0, set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in seen and not isinstance(t, torch.nn.Parameter):
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t

    device = next(model.parameters()).device
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        seq2seq_loss(model, tuple(t.to(device) for t in batch))
    return total


def run_comparison(
    setting: Setting, tasks=("copy", "reverse", "recall"), models=MODELS, progress: bool = True
) -> list[dict]:
    """Train every (task, model) pair and measure it; return one record per pair."""
    records = []
    for task in tasks:
        for model in models:
            sizes = match_sizes(task, model, setting)
            records.append(_train_and_measure(task, model, sizes, setting, progress)[0])
    return records


def _test_set(task: str, setting: Setting, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed evaluation examples of one length (recall: ``length`` pairs)."""
    kw = {k: v for k, v in _options(task, setting).items() if k != "task"}
    kw.update(min_len=length, max_len=length)
    g = torch.Generator().manual_seed(1000 + length)
    return synthetic.sample(task, setting.per_length, generator=g, **kw)


def _train_and_measure(
    task: str, model: str, sizes: dict, setting: Setting, progress: bool
) -> tuple[dict, torch.nn.Module]:
    """Train one model with ``setting`` and measure it: ``(record, trained model)``."""
    opts = _options(task, setting)
    torch.manual_seed(setting.seed)
    t = make_task(model=model, **sizes, eval_size=64, **opts)
    cfg = TrainConfig(
        steps=setting.steps,
        batch_size=setting.batch_size,
        lr=setting.lr,
        eval_every=setting.steps,
        seed=setting.seed,
        warmup=50,
    )
    start = time.perf_counter()
    res = train(t, cfg, progress=progress, name=f"{task}/{model}")
    per_step = (time.perf_counter() - start) / setting.steps
    acc = {}
    for L in range(1, opts["max_len"] + 1):
        hits = exact_match_batches(res.model, *_test_set(task, setting, L))
        acc[L] = sum(hits) / len(hits)
    batch = t.sample(torch.Generator().manual_seed(7), setting.batch_size)
    record = {
        "task": task,
        "model": model,
        "sizes": sizes,
        "parameters": count_parameters(res.model),
        "seconds_per_step": per_step,
        "activation_bytes": saved_bytes(res.model, batch),
        "final_loss": res.history[-1]["loss"],
        "accuracy_by_length": acc,
    }
    return record, res.model


# Controlled experiments on recall, one change at a time from the table's one-layer Transformer:
# (name, encoder = decoder layers, parameter budget x, training steps x).
RECALL_CONTROLS = (
    ("1 layer (the table's model)", 1, 1, 1),
    ("1 layer, 4x parameters", 1, 4, 1),
    ("2 layers", 2, 1, 1),
)


@torch.no_grad()
def recall_attention(model: torch.nn.Module, setting: Setting, pairs: int) -> dict[str, float]:
    """Where a trained recall model's decoder looks when it writes the answer.

    On the fixed test set with ``pairs`` key/value pairs, greedy-decode and take the first
    output step's cross-attention (last layer, mean over heads). Returns the exact-match
    ``accuracy``; ``answer_in_input``: how often the answer is one of the input's values;
    ``on_values``: the weight on the value positions; ``on_right_value``: the weight on the
    value that answers the query (first pair holding it); ``chance``: ``on_values / pairs``,
    what ``on_right_value`` would be if the weight on the values ignored the query.
    """
    src, tgt = _test_set("recall", setting, pairs)
    hyp, w = greedy(model, src, max_len=3)  # w: (B, T, S)
    w0 = w[:, 0, : 2 * pairs]  # (B, 2n): the answer step over the pairs
    values = src[:, 1 : 2 * pairs : 2]  # (B, n) value tokens
    right = tgt[:, 1]  # (B,) the answer
    which = (values == right[:, None]).float().argmax(-1)  # (B,) its pair
    on_values = w0[:, 1::2]  # (B, n)
    answer = torch.tensor([h[0] if h else -1 for h in hyp])
    total = on_values.sum(-1).mean().item()
    return {
        "accuracy": (answer == right).float().mean().item(),
        "answer_in_input": (answer[:, None] == values).any(-1).float().mean().item(),
        "on_values": total,
        "on_right_value": on_values.gather(1, which[:, None]).mean().item(),
        "chance": total / pairs,
    }


def recall_controls(
    setting: Setting, progress: bool = True, controls: tuple = RECALL_CONTROLS
) -> list[dict]:
    """Train the Transformer of each control (default :data:`RECALL_CONTROLS`) on recall; one
    record per control. Each control seeds its own run, so any subset gives the same records."""
    records = []
    pairs = _options("recall", setting)["max_len"]
    for name, layers, budget_x, steps_x in controls:
        s = replace(setting, budget=setting.budget * budget_x, steps=setting.steps * steps_x)
        sizes = match_sizes("recall", "transformer", s, num_layers=layers)
        record, model = _train_and_measure("recall", "transformer", sizes, s, progress)
        record.update(
            control=name,
            steps=s.steps,
            attention={n: recall_attention(model, setting, n) for n in (2, pairs)},
        )
        records.append(record)
    return records


def write_controls(records: list[dict], setting: Setting, out: Path) -> None:
    """Write ``recall_controls.json`` and a markdown table of :func:`recall_controls`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "recall_controls.json").write_text(
        json.dumps({"setting": setting.__dict__, "records": records}, indent=2) + "\n"
    )
    n = _options("recall", setting)["max_len"]
    lines = [
        f"| control | params | steps | acc. (all) | acc. ({n} pairs) | "
        f"weight on right value / chance ({n} pairs) |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        accs = list(r["accuracy_by_length"].values())
        a = r["attention"][n]
        lines.append(
            f"| {r['control']} | {r['parameters']:,} | {r['steps']} | "
            f"{sum(accs) / len(accs):.3f} | {accs[-1]:.3f} | "
            f"{a['on_right_value']:.2f} / {a['chance']:.2f} |"
        )
    (out / "recall_controls.md").write_text(f"Setting: {setting}\n\n" + "\n".join(lines) + "\n")


def write_report(records: list[dict], setting: Setting, out: Path) -> None:
    """Write the JSON, a markdown table and one plot per task (accuracy vs length)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "attention_vs_rnn.json").write_text(
        json.dumps({"setting": setting.__dict__, "records": records}, indent=2) + "\n"
    )
    lines = [
        "| task | model | params | acc. (all lengths) | acc. (longest) | ms / step | "
        "activations (KiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        accs = list(r["accuracy_by_length"].values())
        lines.append(
            f"| {r['task']} | {r['model']} | {r['parameters']:,} | "
            f"{sum(accs) / len(accs):.3f} | {accs[-1]:.3f} | "
            f"{1000 * r['seconds_per_step']:.1f} | {r['activation_bytes'] / 1024:.0f} |"
        )
    (out / "attention_vs_rnn.md").write_text(f"Setting: {setting}\n\n" + "\n".join(lines) + "\n")
    tasks = list(dict.fromkeys(r["task"] for r in records))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for r in (r for r in records if r["task"] == task):
            xs = [int(k) for k in r["accuracy_by_length"]]
            ax.plot(
                xs,
                list(r["accuracy_by_length"].values()),
                marker="o",
                ms=3,
                label=f"{r['model']} ({r['parameters'] / 1000:.0f}k)",
            )
        ax.set(
            title=f"{task}",
            xlabel="sequence length (recall: pairs)",
            ylabel="exact match",
            ylim=(-0.02, 1.02),
        )
        ax.legend(fontsize=8)
    fig.suptitle("Attention vs RNN at matched parameter counts")
    fig.tight_layout()
    fig.savefig(out / "attention_vs_rnn.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m explore_attention.tasks.compare", description=__doc__.splitlines()[0]
    )
    p.add_argument("--out", default="docs/results", help="folder for JSON, markdown and PNG")
    p.add_argument("--steps", type=int, help="override the steps per model")
    p.add_argument(
        "--recall-controls",
        action="store_true",
        help="run the controlled recall experiments (RECALL_CONTROLS) instead",
    )
    args = p.parse_args(argv)
    setting = QUICK if quick() else Setting()
    if args.steps:
        setting = Setting(**{**setting.__dict__, "steps": args.steps})
    if args.recall_controls:
        write_controls(recall_controls(setting), setting, Path(args.out))
        print((Path(args.out) / "recall_controls.md").read_text())
        return 0
    records = run_comparison(setting)
    write_report(records, setting, Path(args.out))
    print((Path(args.out) / "attention_vs_rnn.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
