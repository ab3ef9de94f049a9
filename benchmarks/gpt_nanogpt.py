"""Our GPT side by side with a minimal PyTorch GPT on nanoGPT's documented CPU recipe.

nanoGPT's README gives a CPU run for character-level language modelling: 4 layers, 4 heads,
128 dims, context 64, batch 12, dropout 0. This script trains, in one process and on the same
batches, (a) ``explore_attention.models.gpt.GPT`` and (b) ``MinimalGPT`` below — the same
architecture written the compact way (one fused q/k/v projection, PyTorch's
``scaled_dot_product_attention`` with ``is_causal=True``), our own code, the reference for
"nanoGPT-class" speed. Both start from the same weights (copied from (a) into (b)), so their
validation losses should agree closely, and the throughput ratio isolates the implementation.

Steps are interleaved in chunks so that load from other processes affects both models alike.

Run: ``python -m benchmarks.gpt_nanogpt [--steps 2000] [--threads 2]``. Writes
``benchmarks/results/gpt_nanogpt.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from explore_attention.data.text import CharTokenizer, pydoc_text, random_batch, split_ids
from explore_attention.models.gpt import GPT, GPTConfig

RESULTS = Path(__file__).parent / "results"


class MinimalBlock(nn.Module):
    """Pre-LN block with a fused q/k/v projection and SDPA (the compact reference form)."""

    def __init__(self, d: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.o = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.proj = nn.Linear(4 * d, d)

    def forward(self, x: Tensor) -> Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(D, dim=2)  # 3 × (B, L, D)
        q = q.view(B, L, self.n_head, D // self.n_head).transpose(1, 2)  # (B, H, L, Dh)
        k = k.view(B, L, self.n_head, D // self.n_head).transpose(1, 2)  # (B, H, L, Dh)
        v = v.view(B, L, self.n_head, D // self.n_head).transpose(1, 2)  # (B, H, L, Dh)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, L, Dh)
        x = x + self.o(a.transpose(1, 2).reshape(B, L, D))  # (B, L, D)
        return x + self.proj(F.gelu(self.fc(self.ln_2(x)), approximate="tanh"))


class MinimalGPT(nn.Module):
    """Token + learned position embeddings, blocks, final LayerNorm, tied output head."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.max_len, cfg.d_model)
        self.blocks = nn.ModuleList(
            MinimalBlock(cfg.d_model, cfg.num_heads) for _ in range(cfg.num_layers)
        )
        self.ln_f = nn.LayerNorm(cfg.d_model)

    def forward(self, idx: Tensor, targets: Tensor) -> Tensor:
        L = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(L, device=idx.device))  # (B, L, D)
        for b in self.blocks:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.T  # (B, L, V)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    @torch.no_grad()
    def copy_from(self, ours: GPT) -> None:
        """Load ``ours``'s weights (concatenating its q, k, v projections)."""
        self.wte.weight.copy_(ours.wte.weight)
        self.wpe.weight.copy_(ours.wpe.weight)
        self.ln_f.load_state_dict(ours.ln_f.state_dict())
        for mine, theirs in zip(self.blocks, ours.blocks):
            a = theirs.attn
            mine.ln_1.load_state_dict(theirs.ln_1.state_dict())
            mine.ln_2.load_state_dict(theirs.ln_2.state_dict())
            mine.qkv.weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))
            mine.qkv.bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
            mine.o.load_state_dict(a.out_proj.state_dict())
            mine.fc.load_state_dict(theirs.mlp.fc.state_dict())
            mine.proj.load_state_dict(theirs.mlp.proj.state_dict())


def lr_at(
    step: int, total: int, lr: float = 1e-3, min_lr: float = 1e-4, warmup: int = 100
) -> float:
    """Linear warm-up then cosine decay to ``min_lr`` (nanoGPT's schedule shape)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr + 0.5 * (1 + math.cos(math.pi * t)) * (lr - min_lr)


@torch.no_grad()
def val_loss(loss_fn, val: Tensor, batches: list[tuple[Tensor, Tensor]]) -> float:
    return float(sum(loss_fn(x, y) for x, y in batches) / len(batches))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--chunk", type=int, default=50, help="steps per model before switching")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = GPTConfig()  # 4 layers, 4 heads, 128 dims, context 64, dropout 0
    batch = 12
    text = pydoc_text()
    tok = CharTokenizer.from_text(text)
    cfg = GPTConfig(vocab_size=tok.vocab_size)
    train, val = split_ids(tok.encode(text))
    g = torch.Generator().manual_seed(args.seed)
    val_batches = [random_batch(val, 32, cfg.max_len, g) for _ in range(20)]

    torch.manual_seed(args.seed)
    ours = GPT(cfg)
    ref = MinimalGPT(cfg)
    ref.copy_from(ours)
    models = {
        "ours": (ours, lambda x, y: ours(x, y).loss),
        "reference": (ref, lambda x, y: ref(x, y)),
    }
    opts = {
        k: torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
        for k, (m, _) in models.items()
    }
    gens = {k: torch.Generator().manual_seed(args.seed + 1) for k in models}
    seconds = dict.fromkeys(models, 0.0)
    curves: dict[str, list[tuple[int, float]]] = {k: [] for k in models}
    done = dict.fromkeys(models, 0)
    bar = tqdm(total=args.steps * len(models), desc="gpt vs reference", unit="step")
    while min(done.values()) < args.steps:
        for name, (model, loss_fn) in models.items():
            model.train()
            n = min(args.chunk, args.steps - done[name])
            data = [random_batch(train, batch, cfg.max_len, gens[name]) for _ in range(n)]
            t0 = time.perf_counter()
            for i, (x, y) in enumerate(data):
                for group in opts[name].param_groups:
                    group["lr"] = lr_at(done[name] + i, args.steps)
                loss = loss_fn(x, y)
                opts[name].zero_grad(set_to_none=True)
                loss.backward()
                opts[name].step()
            seconds[name] += time.perf_counter() - t0
            done[name] += n
            bar.update(n)
            if done[name] % args.eval_every == 0 or done[name] == args.steps:
                model.eval()
                curves[name].append((done[name], val_loss(loss_fn, val, val_batches)))
    bar.close()
    tokens = args.steps * batch * cfg.max_len
    tps = {k: tokens / s for k, s in seconds.items()}
    result = {
        "config": {**cfg.to_dict(), "batch_size": batch, "steps": args.steps},
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "tokens_per_s": tps,
        "throughput_ratio_ours_over_reference": tps["ours"] / tps["reference"],
        "final_val_loss": {k: c[-1][1] for k, c in curves.items()},
        "val_curve": curves,
        "params": ours.num_params(),
    }
    write_results(result, args.out)
    return result


def write_results(r: dict, out: Path = RESULTS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "gpt_nanogpt.json.tmp"
    tmp.write_text(json.dumps(r, indent=2))
    tmp.replace(out / "gpt_nanogpt.json")
    c = r["config"]
    md = [
        "# Our GPT vs a minimal PyTorch GPT (nanoGPT CPU recipe)",
        "",
        f"Config: {c['num_layers']} layers, {c['num_heads']} heads, {c['d_model']} dims, context "
        f"{c['max_len']}, batch {c['batch_size']}, dropout {c['dropout']}, "
        f"char-level pydoc text (vocab {c['vocab_size']}), {c['steps']} steps, "
        f"{r['threads']} thread(s), torch {r['torch']}.",
        "Made by `python -m benchmarks.gpt_nanogpt "
        f"--steps {c['steps']} --threads {r['threads']}`.",
        "",
        "| model | tokens/s | val loss after the same steps |",
        "|---|---:|---:|",
    ]
    for k in ("ours", "reference"):
        md.append(f"| {k} | {r['tokens_per_s'][k]:,.0f} | {r['final_val_loss'][k]:.4f} |")
    md += [
        "",
        f"Throughput ratio ours / reference: **{r['throughput_ratio_ours_over_reference']:.2f}**",
        "",
    ]
    tmp = out / "gpt_nanogpt.md.tmp"
    tmp.write_text("\n".join(md))
    tmp.replace(out / "gpt_nanogpt.md")
    fig, ax = plt.subplots(figsize=(6, 4))
    styles = {"ours": {"marker": "o", "ms": 8}, "reference": {"marker": "x", "ls": "--"}}
    for k, curve in r["val_curve"].items():
        steps, losses = zip(*curve)
        ax.plot(steps, losses, label=k, **styles.get(k, {}))
    ax.set_title("Validation loss: our GPT vs a minimal SDPA GPT\n(nanoGPT CPU recipe, same init)")
    ax.set_xlabel("training step")
    ax.set_ylabel("validation cross-entropy (nats/char)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "gpt_nanogpt.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--replot"]:  # redraw the table and figure from the saved JSON
        write_results(json.loads((RESULTS / "gpt_nanogpt.json").read_text()))
        sys.exit(0)
    res = main()
    print(
        json.dumps(
            {
                k: res[k]
                for k in ("tokens_per_s", "throughput_ratio_ours_over_reference", "final_val_loss")
            },
            indent=2,
        )
    )
