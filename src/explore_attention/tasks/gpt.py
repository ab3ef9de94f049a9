"""GPT language-model tasks on Python's documentation text: ``gpt-char`` and ``gpt-bpe``.

``explore-attention train gpt-char [--steps N] [--out DIR]`` trains with the project's loop
(checkpoint in its safetensors + config.json format). To also write the Hugging Face GPT-2
folder that ships in ``checkpoints/`` (loadable with ``AutoModelForCausalLM``), run this module::

    python -m explore_attention.tasks.gpt gpt-char --out DIR [--steps N] [--work RUN_DIR]

which trains, reports validation loss, samples text and exports (config + safetensors +
tokenizer + README with the command).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..data.text import CharTokenizer, gpt2_tokenizer, pydoc_text, random_batch, split_ids
from ..models.gpt import GPT, GPTConfig
from ..train import Task, TrainConfig
from .cli import command, parser, train_task

__all__ = ["lm_loss", "make_bpe", "make_char", "sample_text", "tokenizer_for", "val_loss"]


def lm_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    r"""Mean next-token cross-entropy :math:`-\frac{1}{BT}\sum \log p(x_{t+1} \mid x_{\le t})`."""
    x, y = batch
    return model(x, y).loss


@torch.no_grad()
def val_loss(model: nn.Module, windows: list[tuple[Tensor, Tensor]]) -> float:
    """Mean loss over fixed validation windows (the same windows at every evaluation)."""
    device = next(model.parameters()).device
    total = sum(float(lm_loss(model, (x.to(device), y.to(device)))) for x, y in windows)
    return total / len(windows)


def _make(
    kind: str,
    ids: list[int],
    cfg: GPTConfig,
    meta: dict,
    defaults: TrainConfig,
    eval_batches: int,
    attention: str = "dense",
    window: int = 16,
) -> Task:
    """A GPT language-model task on the token stream ``ids``."""
    train, val = split_ids(ids, val_fraction=0.1)
    g = torch.Generator().manual_seed(1234)
    windows = [random_batch(val, 32, cfg.max_len, g) for _ in range(eval_batches)]

    def sample(gen: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
        return random_batch(train, n, cfg.max_len, gen)

    def evaluate(m: nn.Module) -> dict[str, float]:
        return {"val_loss": val_loss(m, windows)}

    meta = {
        "data": {
            "corpus": "pydoc_data.topics",
            "tokenizer": kind,
            "train_tokens": train.numel(),
            "val_tokens": val.numel(),
        },
        **meta,
    }
    if attention == "dense":
        return Task(GPT(cfg), {"config": cfg.to_dict()}, sample, lm_loss, evaluate, defaults, meta)
    from ..models.gpt_variants import VariantGPT, VariantGPTConfig

    vcfg = VariantGPTConfig(**cfg.to_dict(), attention=attention, window=window)
    return Task(
        VariantGPT(vcfg), {"config": vcfg.to_dict()}, sample, lm_loss, evaluate, defaults, meta
    )


# Each task's GPT (the vocabulary comes from the tokenizer); a task option naming a GPTConfig
# field overrides it. Characters: nanoGPT's CPU recipe, GPTConfig's defaults (4 layers, 4 heads,
# 128 dims, context 64). BPE: 50,257-id embeddings dominate, so a smaller body.
CHAR_CONFIG = GPTConfig()
BPE_CONFIG = GPTConfig(num_layers=2, d_model=64)
CHAR_TRAIN = TrainConfig(
    steps=2500,
    batch_size=24,
    lr=1e-3,
    weight_decay=0.1,
    warmup=100,
    eval_every=250,
    metric="val_loss",
    mode="min",
)
BPE_TRAIN = replace(CHAR_TRAIN, steps=1500, batch_size=16, lr=2e-3)


def make_char(
    eval_batches: int = 20, attention: str = "dense", window: int = 16, **config: Any
) -> Task:
    """``gpt-char``: character-level GPT on pydoc text. ``config``: :class:`GPTConfig` fields
    (``num_layers``, ``num_heads``, ``d_model``, ``max_len``, ``dropout``, ``positions``, …)
    over :data:`CHAR_CONFIG`. ``attention``: ``"dense"`` (softmax), ``"sliding"`` (the last
    ``window`` tokens) or ``"linear"`` (elu + 1 kernel), the last two as
    :class:`~explore_attention.models.gpt_variants.VariantGPT`."""
    text = pydoc_text()
    tok = CharTokenizer.from_text(text)
    cfg = replace(CHAR_CONFIG, vocab_size=tok.vocab_size, **config)
    meta = {"chars": tok.chars}
    return _make("char", tok.encode(text), cfg, meta, CHAR_TRAIN, eval_batches, attention, window)


def make_bpe(eval_batches: int = 10, **config: Any) -> Task:
    """``gpt-bpe``: GPT on pydoc text with GPT-2's BPE (50,257 ids, tied embeddings).
    ``config``: :class:`GPTConfig` fields over :data:`BPE_CONFIG`."""
    tok = gpt2_tokenizer()
    ids = tok(pydoc_text())["input_ids"]
    cfg = replace(BPE_CONFIG, vocab_size=tok.vocab_size, **config)
    return _make("gpt2-bpe", ids, cfg, {}, BPE_TRAIN, eval_batches)


def tokenizer_for(meta: dict):
    """The tokenizer a task's checkpoint meta describes (CharTokenizer or GPT-2's BPE)."""
    if meta["data"]["tokenizer"] == "char":
        return CharTokenizer(meta["chars"])
    return gpt2_tokenizer()


def sample_text(
    model: GPT,
    tokenizer,
    prompt: str,
    n: int = 300,
    *,
    seed: int = 0,
    temperature: float = 0.8,
    top_k: int | None = 20,
) -> str:
    """Continue ``prompt`` with ``n`` sampled tokens (KV-cached), decoded to text."""
    ids = tokenizer.encode(prompt)
    x = torch.tensor([ids], dtype=torch.long, device=next(model.parameters()).device)
    g = torch.Generator(device=x.device).manual_seed(seed)
    out = model.generate(x, n, temperature=temperature, top_k=top_k, generator=g)
    return tokenizer.decode(out[0].tolist())


README = """# {name}

A {desc} GPT ({params:,} parameters: {num_layers} layers, {num_heads} heads, {d_model} dims, context
{max_len}) trained on Python's documentation text (`pydoc_data.topics`), in Hugging Face
GPT-2 format: `AutoModelForCausalLM.from_pretrained(path)` and `AutoTokenizer.from_pretrained(path)`
load it offline; `explore_attention.models.hf_export.load_gpt(path)` loads it as our `GPT`.

Validation loss (mean cross-entropy, nats per token, on the last 10% of the text): **{val:.4f}**
after {step} steps.

Reproduce (from the repository root):

```
{command}
```

Sample (prompt `{prompt!r}`, temperature 0.8, top-k 20, seed 0):

```
{sample}
```
"""


def main(argv: list[str] | None = None) -> int:
    from ..models.hf_export import char_tokenizer_fast, export_gpt2

    p = parser("python -m explore_attention.tasks.gpt", "Train a GPT task, export GPT-2 format.")
    p.add_argument("task", choices=["gpt-char", "gpt-bpe"])
    p.add_argument("--work", help="training-loop checkpoint folder (default: runs/NAME)")
    args = p.parse_args(argv)
    work = Path(args.work or Path("runs") / Path(args.out).name)
    task, res = train_task(args.task, args, work, overwrite=True)
    model = res.model.cpu().eval()
    tok = tokenizer_for(task.meta)
    prompt = "The "
    sample = sample_text(model, tok, prompt, 300 if isinstance(tok, CharTokenizer) else 80)
    val = res.history[-1]["val_loss"]
    mc = model.config
    cmd = command("explore_attention.tasks.gpt", argv)
    readme = README.format(
        name=Path(args.out).name,
        desc="character-level" if isinstance(tok, CharTokenizer) else "GPT-2-BPE",
        params=model.num_params(),
        num_layers=mc.num_layers,
        num_heads=mc.num_heads,
        d_model=mc.d_model,
        max_len=mc.max_len,
        val=val,
        step=res.step,
        command=cmd,
        prompt=prompt,
        sample=sample,
    )
    hf_tok = char_tokenizer_fast(tok) if isinstance(tok, CharTokenizer) else tok
    export_gpt2(
        model,
        args.out,
        hf_tok,
        overwrite=args.overwrite,
        extra={
            "val_loss": val,
            "step": res.step,
            "history": res.history,
            "command": cmd,
            "sample": sample,
        },
        files={"README.md": readme},
    )
    print(json.dumps({"val_loss": val, "step": res.step, "out": args.out}))
    print(sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
