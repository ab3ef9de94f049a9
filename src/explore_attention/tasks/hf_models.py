"""Hugging Face-class models trained here, shipped as folders ``AutoModel*`` loads offline.

Two tasks, trained with the project's loop (:func:`explore_attention.train.train`) and written
as Hugging Face folders (config, safetensors, tokenizer, README with the command):

* ``llama-pydoc`` — a :class:`~transformers.LlamaForCausalLM` (Touvron et al. 2023,
  arXiv:2302.13971: RMSNorm, SwiGLU, RoPE) with grouped-query attention (Ainslie et al. 2023,
  arXiv:2305.13245: fewer key/value heads than query heads) on Python's documentation text, with
  a byte-level BPE tokenizer of its own trained on the training part of that text;
* ``t5-numbers-de`` — a :class:`~transformers.T5ForConditionalGeneration` (Raffel et al. 2019,
  arXiv:1910.10683: bucketed relative-position bias, no position embeddings) translating English
  number words into German (:func:`explore_attention.data.translation.numbers`), characters on
  both sides.

Run ``python -m explore_attention.tasks.hf_models NAME --out DIR`` to train and write the
folder; ``explore-attention train NAME`` trains without exporting.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..checkpointing import atomic_folder
from ..data.text import pydoc_text, random_batch
from ..train import Task, TrainConfig
from .common import quick

__all__ = [
    "SPECIALS",
    "bpe_tokenizer",
    "char_tokenizer",
    "exact_match",
    "heldout_loss",
    "kv_cache_bytes",
    "make_llama",
    "make_t5",
    "save_folder",
    "tokenizer_of",
]

SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 in both tokenizers (T5's convention)


def bpe_tokenizer(text: str, vocab_size: int = 2048) -> Any:
    """A byte-level BPE tokenizer (Sennrich et al. 2016, arXiv:1508.07909; GPT-2's byte-level
    variant) trained on ``text``, as a ``transformers.PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    core = Tokenizer(models.BPE(unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator([text], trainer=trainer)
    return _fast(core)


def _fast(core: Any) -> Any:
    """A ``tokenizers.Tokenizer`` (or its JSON string) as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    if isinstance(core, str):
        core = Tokenizer.from_str(core)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def tokenizer_of(task_meta: dict) -> Any:
    """The tokenizer a task built, from the JSON its ``meta`` keeps (checkpoint meta is JSON)."""
    return _fast(task_meta["tokenizer_json"])


def char_tokenizer(texts: list[str]) -> Any:
    """One token per character of ``texts`` (ids after :data:`SPECIALS`), ``</s>`` appended to
    every encoded text, as a ``transformers.PreTrainedTokenizerFast`` (T5's conventions)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    chars = sorted(set("".join(texts)))
    vocab = {t: i for i, t in enumerate([*SPECIALS, *chars])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    return _fast(core)


@torch.no_grad()
def heldout_loss(model: nn.Module, batches: list[dict[str, Tensor]]) -> float:
    """Mean of the model's own loss over fixed held-out batches (nats per token)."""
    return sum(float(model(**b).loss) for b in batches) / len(batches)


def _lm_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    return model(**batch).loss


def _own_loss_task(model, cfg, sample, held: list, train: dict, meta: dict) -> Task:
    """A Hugging Face model trained on its own loss and scored by its mean loss over the fixed
    held-out batches ``held`` (lower is better); ``train`` holds the rest of the TrainConfig."""

    def evaluate(m: nn.Module) -> dict[str, float]:
        return {"val_loss": heldout_loss(m, held)}

    defaults = TrainConfig(**train, metric="val_loss", mode="min")
    return Task(model, cfg.to_dict(), sample, _lm_loss, evaluate, defaults, meta)


# ------------------------------------------------------------------ llama-pydoc
def make_llama(
    *,
    vocab_size: int = 2048,
    d_model: int = 96,
    num_layers: int = 4,
    num_heads: int = 6,
    num_kv_heads: int = 2,
    intermediate: int = 256,
    max_len: int = 128,
    eval_batches: int = 8,
) -> Task:
    """``llama-pydoc``: a GQA Llama on pydoc text with its own BPE (first 90 % of the text
    trains tokenizer and model, the last 10 % is held out)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    text = pydoc_text()
    cut = int(len(text) * 0.9)
    tok = bpe_tokenizer(text[:cut], vocab_size)
    train = torch.tensor(tok(text[:cut])["input_ids"])
    val = torch.tensor(tok(text[cut:])["input_ids"])
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=d_model,
        intermediate_size=intermediate,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_len,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(cfg)
    g = torch.Generator().manual_seed(1234)
    windows = [random_batch(val, 16, max_len, g)[0] for _ in range(eval_batches)]
    held = [{"input_ids": x, "labels": x} for x in windows]

    def sample(gen: torch.Generator, n: int) -> dict[str, Tensor]:
        x = random_batch(train, n, max_len, gen)[0]  # (B, T); the model shifts the labels
        return {"input_ids": x, "labels": x}

    train_config = dict(
        steps=150 if quick() else 1000,
        batch_size=12,
        lr=3e-3,
        weight_decay=0.1,
        warmup=100,
        eval_every=250,
    )
    meta = {
        "corpus": "pydoc_data.topics (explore_attention.data.text.pydoc_text)",
        "train_tokens": train.numel(),
        "val_tokens": val.numel(),
        "tokenizer_json": tok.backend_tokenizer.to_str(),
    }
    return _own_loss_task(model, cfg, sample, held, train_config, meta)


# ------------------------------------------------------------------ t5-numbers-de
def make_t5(
    *,
    d_model: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    d_ff: int = 192,
    num_buckets: int = 16,
    max_distance: int = 64,
    eval_size: int = 512,
) -> Task:
    """``t5-numbers-de``: a small T5 translating English number words to German, characters on
    both sides (one shared tokenizer, as T5 has)."""
    from transformers import T5Config, T5ForConditionalGeneration

    from ..data.translation import numbers

    data = numbers(train_size=8000 if quick() else 40_000)
    tok = char_tokenizer([s + t for s, t in data.splits["train"]])
    cfg = T5Config(
        vocab_size=len(tok),
        d_model=d_model,
        d_kv=d_model // num_heads,
        d_ff=d_ff,
        num_layers=num_layers,
        num_decoder_layers=num_layers,
        num_heads=num_heads,
        relative_attention_num_buckets=num_buckets,
        relative_attention_max_distance=max_distance,
        dropout_rate=0.0,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
    )
    model = T5ForConditionalGeneration(cfg)

    def encode(pairs: list[tuple[str, str]]) -> dict[str, Tensor]:
        src = tok([s for s, _ in pairs], padding=True, return_tensors="pt")
        tgt = tok([t for _, t in pairs], padding=True, return_tensors="pt")["input_ids"]
        labels = tgt.masked_fill(tgt == tok.pad_token_id, -100)  # (B, T) padding ignored
        return {**src, "labels": labels}

    train = data.splits["train"]
    val = data.splits["validation"][:eval_size]
    held = [encode(val[i : i + 128]) for i in range(0, len(val), 128)]

    def sample(gen: torch.Generator, n: int) -> dict[str, Tensor]:
        idx = torch.randint(0, len(train), (n,), generator=gen).tolist()
        return encode([train[i] for i in idx])

    train_config = dict(
        steps=200 if quick() else 600,
        batch_size=64,
        lr=3e-3,
        weight_decay=0.01,
        warmup=100,
        eval_every=500,
    )
    meta = {
        "data": "explore_attention.data.translation.numbers",
        "validation_pairs": val,
        "tokenizer_json": tok.backend_tokenizer.to_str(),
    }
    return _own_loss_task(model, cfg, sample, held, train_config, meta)


@torch.no_grad()
def exact_match(model: nn.Module, tokenizer: Any, pairs: list[tuple[str, str]]) -> float:
    """Fraction of ``(source, target)`` pairs a seq2seq model translates exactly (greedy)."""
    model.eval()
    hits = 0
    for i in range(0, len(pairs), 128):
        chunk = pairs[i : i + 128]
        enc = tokenizer([s for s, _ in chunk], padding=True, return_tensors="pt")
        out = model.generate(**enc, max_new_tokens=48, do_sample=False, num_beams=1)
        got = tokenizer.batch_decode(out, skip_special_tokens=True)
        hits += sum(g == t for g, (_, t) in zip(got, chunk))
    return hits / len(pairs)


@torch.no_grad()
def kv_cache_bytes(model: nn.Module, input_ids: Tensor, *, as_mha: bool = False) -> int:
    r"""Bytes of the key/value cache a Hugging Face decoder keeps after reading ``input_ids``:
    :math:`2 \cdot \text{layers} \cdot H_{kv} \cdot d_h \cdot L \cdot` bytes per value, measured
    from the cache tensors themselves.

    ``as_mha=True`` measures a model of the same configuration but with as many key/value
    heads as query heads (multi-head attention; random weights — only the cache size matters).
    """
    if as_mha:
        cfg = model.config.__class__(
            **{**model.config.to_dict(), "num_key_value_heads": model.config.num_attention_heads}
        )
        model = type(model)(cfg).to(next(model.parameters()).dtype)
    cache = model(input_ids=input_ids, use_cache=True).past_key_values
    return sum(
        t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values)
    )


# ------------------------------------------------------------------ export
def save_folder(
    model: nn.Module,
    tokenizer: Any,
    path: str | Path,
    *,
    readme: str,
    overwrite: bool = False,
    half: bool = False,
) -> Path:
    """Write a Hugging Face folder (model, tokenizer, README.md) atomically: assembled in a
    temporary sibling, then renamed into place. ``half`` stores the weights in float16."""
    with atomic_folder(path, overwrite=overwrite) as tmp:
        (model.half() if half else model).save_pretrained(tmp)
        model.float()
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(readme, encoding="utf-8")
    path = Path(path)
    return path


README = """# {name}

{what}

Loads offline: `AutoModel{auto}.from_pretrained(path, attn_implementation="eager")` and
`AutoTokenizer.from_pretrained(path)`. {size}

Held-out loss (mean cross-entropy, nats per token): **{val:.4f}** after {steps} steps, vs
**{uniform:.4f}** = log V for a uniform guess over the {vocab:,} tokens.{extra}

Trained in {minutes:.1f} min on a shared 2-core CPU with (from the repository root):

```
{command}
```
"""


def main(argv: list[str] | None = None) -> int:
    import time

    from ..train import get_task, train

    p = argparse.ArgumentParser(
        prog="python -m explore_attention.tasks.hf_models",
        description="Train a Hugging Face-class model and write its folder.",
    )
    p.add_argument("task", choices=["llama-pydoc", "t5-numbers-de"])
    p.add_argument("--out", required=True, help="Hugging Face folder to write")
    p.add_argument("--steps", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    start = time.time()
    task = get_task(args.task, seed=args.seed)
    cfg = replace(task.defaults, seed=args.seed, steps=args.steps or task.defaults.steps)
    res = train(task, cfg, progress=not args.no_progress, name=args.task)
    model = res.model.cpu().eval()
    tok = tokenizer_of(task.meta)
    val = res.history[-1]["val_loss"]
    command = "python -m explore_attention.tasks.hf_models " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    params = sum(p.numel() for p in model.parameters())
    if args.task == "llama-pydoc":
        c = model.config
        what = (
            f"A `LlamaForCausalLM` ({params:,} parameters: {c.num_hidden_layers} layers, "
            f"{c.num_attention_heads} query heads sharing {c.num_key_value_heads} key/value "
            f"heads (grouped-query attention), width {c.hidden_size}, RoPE, RMSNorm, SwiGLU, "
            f"context {c.max_position_embeddings}) trained on Python's documentation text "
            f"(`pydoc_data.topics`, first 90 %; {task.meta['train_tokens']:,} tokens) with a "
            f"byte-level BPE tokenizer of {len(tok):,} tokens trained on the same 90 %."
        )
        auto, extra = "ForCausalLM", ""
        held = f" The held-out text is the last 10 % ({task.meta['val_tokens']:,} tokens)."
        extra = held
    else:
        c = model.config
        acc = exact_match(model, tok, task.meta["validation_pairs"])
        what = (
            f"A `T5ForConditionalGeneration` ({params:,} parameters: {c.num_layers} encoder + "
            f"{c.num_decoder_layers} decoder layers, {c.num_heads} heads, width {c.d_model}, "
            f"relative-position bias in {c.relative_attention_num_buckets} buckets up to "
            f"distance {c.relative_attention_max_distance}) translating English number words "
            "into German (`explore_attention.data.translation.numbers`), one character per "
            "token on both sides."
        )
        auto = "ForSeq2SeqLM"
        extra = (
            f" Greedy exact match on {len(task.meta['validation_pairs'])} validation numbers "
            f"(never trained on): **{acc:.3f}**."
        )
    readme = README.format(
        name=Path(args.out).name,
        what=what,
        auto=auto,
        size="",
        val=val,
        steps=res.step,
        uniform=math.log(len(tok)),
        vocab=len(tok),
        extra=extra,
        minutes=(time.time() - start) / 60,
        command=command,
    )
    save_folder(model, tok, args.out, readme=readme, overwrite=args.overwrite)
    print(json.dumps({"val_loss": val, "step": res.step, "out": args.out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
