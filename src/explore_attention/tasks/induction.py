r"""Induction heads in a 2-layer attention-only Transformer (task ``induction``).

Olsson et al. 2022, "In-context Learning and Induction Heads" (arXiv:2209.11895): an
*induction head* completes a repeated pattern ``[A][B] … [A] → [B]``. At a token ``A`` it attends
to the token that *followed* the previous occurrence of ``A`` and copies it. It needs two layers:
a *previous-token head* in layer 0 writes "the token before me was A" into each position, and
the induction head in layer 1 matches the current token against that (K-composition).

Data: a random sequence of ``T`` tokens repeated twice, ``x = [s_1 … s_T, s_1 … s_T]``. The first
half is unpredictable (loss :math:`\approx \ln V`); the second half is predictable *only* by
looking back. Training sequences tile a random block with a *random period* per sequence
(:func:`periodic_tokens`): with one fixed period a single head could solve the task by
attending a fixed distance back (a positional shortcut); with varying periods the earlier
occurrence must be found by content — the induction mechanism.

Measures (queries :math:`i` in the second half, :math:`T \le i < 2T`; attention :math:`A^{l,h}`):

.. math::

    \text{induction}(l, h) = \frac{1}{T}\sum_{i=T}^{2T-1} A^{l,h}_{i,\, i-T+1}, \qquad
    \text{prev}(l, h) = \frac{1}{2T-1}\sum_{i=1}^{2T-1} A^{l,h}_{i,\, i-1}

and the in-context loss drop, mean loss on the first half minus mean loss on the second.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.gpt import GPT, GPTConfig
from ..train import Task, TrainConfig

__all__ = [
    "in_context_loss",
    "induction_scores",
    "make_task",
    "periodic_tokens",
    "plot_induction",
    "previous_token_scores",
    "repeated_tokens",
]


def repeated_tokens(
    n: int, half_len: int, vocab_size: int, generator: torch.Generator | None = None
) -> Tensor:
    """``n`` sequences ``[s, s]``, ``s`` = ``half_len`` uniform random tokens: ``(n, 2T)``."""
    for name, val in (("n", n), ("half_len", half_len), ("vocab_size", vocab_size)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    s = torch.randint(0, vocab_size, (n, half_len), generator=generator)  # (n, T)
    return torch.cat([s, s], dim=1)  # (n, 2T)


def periodic_tokens(
    n: int,
    length: int,
    min_period: int,
    max_period: int,
    vocab_size: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``n`` sequences of ``length`` tokens, each a random block tiled with its own period.

    The period varies per sequence (uniform in ``[min_period, max_period]``), so "copy the token
    at a fixed distance back" does not work: the model has to find the earlier occurrence by
    *content*, which is what an induction head does. Returns ``(n, length)``.
    """
    if not 1 <= min_period <= max_period <= length:
        raise ValueError(
            f"need 1 <= min_period <= max_period <= length, got {min_period}, {max_period}, "
            f"{length}"
        )
    periods = torch.randint(min_period, max_period + 1, (n, 1), generator=generator)  # (n, 1)
    block = torch.randint(0, vocab_size, (n, max_period), generator=generator)  # (n, P)
    idx = torch.arange(length).unsqueeze(0) % periods  # (n, length)
    return block.gather(1, idx)  # (n, length)


def _check_tokens(tokens: Tensor) -> int:
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.shape[1] % 2:
        shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ValueError(f"tokens must be (B, 2T) repeated sequences, got {shape}")
    T = tokens.shape[1] // 2
    if not torch.equal(tokens[:, :T], tokens[:, T:]):
        raise ValueError("tokens must repeat: tokens[:, :T] must equal tokens[:, T:]")
    return T


@torch.no_grad()
def _attentions(model: GPT, tokens: Tensor) -> Tensor:
    """Every layer's attention, averaged over the batch: ``(layers, heads, L, L)``."""
    out = model(tokens.to(next(model.parameters()).device), return_weights=True)
    return (
        torch.stack([w.mean(0) for w in out.attentions["decoder"]]).float().cpu()
    )  # (layers, H, L, L)


def induction_scores(model: GPT, tokens: Tensor) -> Tensor:
    """Mean attention from each second-half token to the token after its first occurrence.

    Returns ``(layers, heads)``; 1 means a perfect induction head, ``~1/i`` a uniform one.
    """
    T = _check_tokens(tokens)
    A = _attentions(model, tokens)  # (layers, H, 2T, 2T)
    i = torch.arange(T, 2 * T)
    return A[:, :, i, i - T + 1].mean(-1)  # (layers, H)


def previous_token_scores(model: GPT, tokens: Tensor) -> Tensor:
    """Mean attention from each token to the one just before it: ``(layers, heads)``."""
    _check_tokens(tokens)
    A = _attentions(model, tokens)  # (layers, H, L, L)
    i = torch.arange(1, A.shape[-1])
    return A[:, :, i, i - 1].mean(-1)  # (layers, H)


@torch.no_grad()
def in_context_loss(model: nn.Module, tokens: Tensor) -> dict[str, float]:
    """Mean next-token loss on the first half and on the second half of repeated sequences.

    Position ``t`` predicts ``t + 1``; "first half" = predictions of tokens ``1 … T-1`` (random,
    loss ≈ ln V), "second half" = predictions of tokens ``T+1 … 2T-1`` (copyable). The
    prediction of token ``T`` (the first repeat) is in neither: it cannot be inferred.
    """
    T = _check_tokens(tokens)
    tokens = tokens.to(next(model.parameters()).device)
    logits = model(tokens[:, :-1]).logits  # (B, 2T-1, V)
    nll = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")  # (B, 2T-1)
    first, second = nll[:, : T - 1].mean().item(), nll[:, T:].mean().item()
    return {"loss_first_half": first, "loss_second_half": second, "icl_drop": first - second}


def make_task(
    vocab_size: int = 64,
    half_len: int = 24,
    num_layers: int = 2,
    num_heads: int = 4,
    d_model: int = 64,
    positions: str = "rope",
    lr: float = 3e-3,
    eval_size: int = 256,
) -> Task:
    """``induction``: a 2-layer attention-only GPT on repeated random token sequences.

    Early stopping on ``induction_score`` (the best layer-1 head's score) reaching 0.9.
    """
    cfg = GPTConfig(
        vocab_size=vocab_size,
        max_len=2 * half_len,
        num_layers=num_layers,
        num_heads=num_heads,
        d_model=d_model,
        mlp_ratio=0,
        positions=positions,
        tie_weights=False,
    )
    ev = repeated_tokens(eval_size, half_len, vocab_size, torch.Generator().manual_seed(4321))

    def sample(g: torch.Generator, n: int) -> Tensor:
        return periodic_tokens(n, 2 * half_len, half_len // 2, half_len, vocab_size, g)

    def loss(m: nn.Module, x: Tensor) -> Tensor:
        return m(x[:, :-1], x[:, 1:]).loss

    def evaluate(m: nn.Module) -> dict[str, float]:
        scores = induction_scores(m, ev[:64])
        return {"induction_score": scores[-1].max().item(), **in_context_loss(m, ev)}

    return Task(
        model=GPT(cfg),
        model_config={"config": cfg.to_dict()},
        sample=sample,
        loss=loss,
        evaluate=evaluate,
        defaults=TrainConfig(
            steps=2000,
            batch_size=32,
            lr=lr,
            warmup=50,
            eval_every=100,
            metric="induction_score",
            target=0.9,
            mode="max",
        ),
        meta={"data": {"vocab_size": vocab_size, "half_len": half_len}},
    )


def plot_induction(induction: Tensor, previous: Tensor | None = None, *, title: str = ""):
    """Heatmaps of per-head induction (and previous-token) scores; returns the figure."""
    import matplotlib.pyplot as plt

    panels = [("induction score", induction)]
    if previous is not None:
        panels.append(("previous-token score", previous))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3), squeeze=False)
    for ax, (name, s) in zip(axes[0], panels):
        im = ax.imshow(s.numpy(), vmin=0, vmax=1, cmap="viridis")
        L, H = s.shape
        ax.set_xticks(range(H), [f"head {h}" for h in range(H)])
        ax.set_yticks(range(L), [f"layer {l}" for l in range(L)])
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(name)
        for l in range(L):
            for h in range(H):
                ax.text(
                    h,
                    l,
                    f"{s[l, h]:.2f}",
                    ha="center",
                    va="center",
                    color="white" if s[l, h] < 0.5 else "black",
                )
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title or "Per-head scores on repeated random tokens")
    fig.tight_layout()
    return fig


README = """# induction-2l

A 2-layer attention-only GPT ({params:,} parameters; {num_heads} heads per layer, {d_model} dims,
RoPE positions) trained on random token blocks tiled with random periods (vocabulary
{vocab_size}). It develops induction heads (Olsson et al. 2022, arXiv:2209.11895). Load with
`explore_attention.train.load_checkpoint(path)`.

Measured on 256 held-out sequences `[s, s]`, `s` = {half_len} random tokens, after {step} steps:

* induction score per head (mean attention from a second-half token to the token after its
  first occurrence), layer 0: {ind0}; layer 1: {ind1}
* previous-token score per head, layer 0: {prev0}; layer 1: {prev1}
* next-token loss on the first half {first:.3f} nats (ln {vocab_size} = {lnv:.3f}: unpredictable),
  on the second half {second:.3f} nats: in-context loss drop **{drop:.3f}** nats

Reproduce (from the repository root):

```
{command}
```
"""


def main(argv: list[str] | None = None) -> int:
    """Train the ``induction`` task, then write README.md (scores, command) into the folder."""
    import argparse
    import json
    import math
    import shlex
    import sys
    from dataclasses import replace
    from pathlib import Path

    from ..train import get_task, train

    p = argparse.ArgumentParser(prog="python -m explore_attention.tasks.induction")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--steps", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    task = get_task("induction", seed=args.seed)
    cfg = replace(task.defaults, seed=args.seed, steps=args.steps or task.defaults.steps)
    out = Path(args.out)
    res = train(
        task,
        cfg,
        out=out,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        name="induction",
    )
    model = res.model.cpu().eval()
    d = task.meta["data"]
    ev = repeated_tokens(256, d["half_len"], d["vocab_size"], torch.Generator().manual_seed(4321))
    ind, prev, icl = (
        induction_scores(model, ev),
        previous_token_scores(model, ev),
        in_context_loss(model, ev),
    )

    def fmt(row: Tensor) -> str:
        return ", ".join(f"{v:.2f}" for v in row.tolist())

    command = "python -m explore_attention.tasks.induction " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    text = README.format(
        params=model.num_params(),
        num_heads=model.config.num_heads,
        d_model=model.config.d_model,
        vocab_size=d["vocab_size"],
        half_len=d["half_len"],
        step=res.step,
        ind0=fmt(ind[0]),
        ind1=fmt(ind[-1]),
        prev0=fmt(prev[0]),
        prev1=fmt(prev[-1]),
        first=icl["loss_first_half"],
        second=icl["loss_second_half"],
        lnv=math.log(d["vocab_size"]),
        drop=icl["icl_drop"],
        command=command,
    )
    tmp = out / "README.md.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out / "README.md")
    print(
        json.dumps({"step": res.step, "induction": ind.tolist(), "previous": prev.tolist(), **icl})
    )
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
