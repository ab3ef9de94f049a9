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
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import synthetic
from ..train import TrainConfig, train
from .common import exact_match_batches, quick
from .synthetic import make_task

__all__ = ["MODELS", "Setting", "count_parameters", "match_sizes", "run_comparison", "saved_bytes"]

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


def match_sizes(task: str, model: str, setting: Setting) -> dict:
    """Model sizes whose parameter count comes closest to ``setting.budget``.

    RNNs: the hidden width (even), embeddings half as wide. Transformer (one encoder and one
    decoder layer): the largest width (a multiple of 4, for 4 heads) under the budget, then
    the feed-forward width that fills the rest (parameters are linear in ``d_ff``).
    """
    if model == "transformer":
        one = {"num_layers": 1}  # one encoder + one decoder layer, like the one-layer RNNs
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
        opts = _options(task, setting)
        lengths = range(1, opts["max_len"] + 1)
        for model in models:
            sizes = match_sizes(task, model, setting)
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
            for L in lengths:
                g = torch.Generator().manual_seed(1000 + L)
                kw = {k: v for k, v in opts.items() if k != "task"}
                kw.update(min_len=L, max_len=L)
                src, tgt = synthetic.sample(task, setting.per_length, generator=g, **kw)
                hits = exact_match_batches(res.model, src, tgt)
                acc[L] = sum(hits) / len(hits)
            batch = t.sample(torch.Generator().manual_seed(7), setting.batch_size)
            records.append(
                {
                    "task": task,
                    "model": model,
                    "sizes": sizes,
                    "parameters": count_parameters(res.model),
                    "seconds_per_step": per_step,
                    "activation_bytes": saved_bytes(res.model, batch),
                    "final_loss": res.history[-1]["loss"],
                    "accuracy_by_length": acc,
                }
            )
    return records


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
    args = p.parse_args(argv)
    setting = QUICK if quick() else Setting()
    if args.steps:
        setting = Setting(**{**setting.__dict__, "steps": args.steps})
    records = run_comparison(setting)
    write_report(records, setting, Path(args.out))
    print((Path(args.out) / "attention_vs_rnn.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
