"""Export our GPT to Hugging Face's ``GPT2LMHeadModel`` format, and import it back.

The exported folder (``config.json``, ``model.safetensors``, tokenizer files and our own
``explore_attention.json``) loads offline with ``AutoModelForCausalLM.from_pretrained(path)`` and
``AutoTokenizer.from_pretrained(path)``, so the inspection code that serves ``gpt2`` from the hub
serves our models too.

Weight layout. GPT-2 stores its projections as ``Conv1D`` modules whose weight is the
*transpose* of an ``nn.Linear`` weight, ``(in, out)``, and fuses queries, keys and values into one
``c_attn`` of width ``3 · d_model`` in that order. So for block ``i``::

    c_attn.weight  = cat([W_q, W_k, W_v], dim=0).T       # (d, 3d)
    c_proj.weight  = W_o.T                                # (d, d)
    mlp.c_fc.weight = W_fc.T, mlp.c_proj.weight = W_proj.T

GPT-2's attention scale is ``1/sqrt(head_dim)`` and its MLP uses the tanh-approximate GELU
(``gelu_new``), the same as :class:`~explore_attention.models.gpt.GPT` with learned positions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..checkpointing import atomic_folder
from .gpt import GPT, GPTConfig

if TYPE_CHECKING:
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

    from ..data.text import CharTokenizer

__all__ = [
    "char_tokenizer_fast",
    "export_gpt2",
    "from_gpt2_state_dict",
    "load_gpt",
    "to_gpt2",
    "to_gpt2_config",
    "to_gpt2_state_dict",
]

OUR_CONFIG = "explore_attention.json"  # our GPTConfig, next to HF's config.json


def _check_exportable(cfg: GPTConfig) -> None:
    problems = []
    if cfg.positions != "learned":
        problems.append(f"positions={cfg.positions!r} (GPT-2 has a learned position table)")
    if not cfg.bias:
        problems.append("bias=False (GPT-2 has biases)")
    if cfg.mlp_ratio == 0:
        problems.append("mlp_ratio=0 (GPT-2 blocks have an MLP)")
    if problems:
        raise ValueError("cannot export to GPT2LMHeadModel: " + "; ".join(problems))


def to_gpt2_config(
    cfg: GPTConfig, *, bos_token_id: int | None = None, eos_token_id: int | None = None
) -> GPT2Config:
    """The ``GPT2Config`` that describes the same network as ``cfg``."""
    from transformers import GPT2Config

    _check_exportable(cfg)
    return GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.max_len,
        n_embd=cfg.d_model,
        n_layer=cfg.num_layers,
        n_head=cfg.num_heads,
        n_inner=cfg.mlp_ratio * cfg.d_model,
        activation_function="gelu_new",
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        layer_norm_epsilon=cfg.layer_norm_eps,
        tie_word_embeddings=cfg.tie_weights,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
    )


def to_gpt2_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Our parameters under GPT-2's names and layouts (see the module docstring)."""
    _check_exportable(model.config)
    sd: dict[str, torch.Tensor] = {
        "transformer.wte.weight": model.wte.weight,
        "transformer.wpe.weight": model.wpe.weight,
        "transformer.ln_f.weight": model.ln_f.weight,
        "transformer.ln_f.bias": model.ln_f.bias,
        "lm_head.weight": model.lm_head.weight,
    }
    for i, b in enumerate(model.blocks):
        a, p = b.attn, f"transformer.h.{i}."
        sd[p + "ln_1.weight"], sd[p + "ln_1.bias"] = b.ln_1.weight, b.ln_1.bias
        sd[p + "ln_2.weight"], sd[p + "ln_2.bias"] = b.ln_2.weight, b.ln_2.bias
        w_qkv = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight], dim=0)  # (3d, d)
        sd[p + "attn.c_attn.weight"] = w_qkv.T  # (d, 3d)
        sd[p + "attn.c_attn.bias"] = torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias])
        sd[p + "attn.c_proj.weight"] = a.out_proj.weight.T  # (d, d)
        sd[p + "attn.c_proj.bias"] = a.out_proj.bias
        sd[p + "mlp.c_fc.weight"] = b.mlp.fc.weight.T  # (d, 4d)
        sd[p + "mlp.c_fc.bias"] = b.mlp.fc.bias
        sd[p + "mlp.c_proj.weight"] = b.mlp.proj.weight.T  # (4d, d)
        sd[p + "mlp.c_proj.bias"] = b.mlp.proj.bias
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


def from_gpt2_state_dict(sd: dict[str, torch.Tensor], cfg: GPTConfig) -> GPT:
    """Build our :class:`GPT` from a GPT-2 state dict (inverse of :func:`to_gpt2_state_dict`)."""
    _check_exportable(cfg)
    model = GPT(cfg)
    d = cfg.d_model
    ours: dict[str, torch.Tensor] = {
        "wte.weight": sd["transformer.wte.weight"],
        "wpe.weight": sd["transformer.wpe.weight"],
        "ln_f.weight": sd["transformer.ln_f.weight"],
        "ln_f.bias": sd["transformer.ln_f.bias"],
        "lm_head.weight": sd.get("lm_head.weight", sd["transformer.wte.weight"]),
    }
    for i in range(cfg.num_layers):
        p, q = f"transformer.h.{i}.", f"blocks.{i}."
        for ln in ("ln_1", "ln_2"):
            ours[q + ln + ".weight"] = sd[p + ln + ".weight"]
            ours[q + ln + ".bias"] = sd[p + ln + ".bias"]
        wq, wk, wv = sd[p + "attn.c_attn.weight"].T.split(d, dim=0)  # 3 × (d, d)
        bq, bk, bv = sd[p + "attn.c_attn.bias"].split(d)
        for name, w, bias in (("q", wq, bq), ("k", wk, bk), ("v", wv, bv)):
            ours[q + f"attn.{name}_proj.weight"] = w
            ours[q + f"attn.{name}_proj.bias"] = bias
        ours[q + "attn.out_proj.weight"] = sd[p + "attn.c_proj.weight"].T  # (d, d)
        ours[q + "attn.out_proj.bias"] = sd[p + "attn.c_proj.bias"]
        ours[q + "mlp.fc.weight"] = sd[p + "mlp.c_fc.weight"].T  # (4d, d)
        ours[q + "mlp.fc.bias"] = sd[p + "mlp.c_fc.bias"]
        ours[q + "mlp.proj.weight"] = sd[p + "mlp.c_proj.weight"].T  # (d, 4d)
        ours[q + "mlp.proj.bias"] = sd[p + "mlp.c_proj.bias"]
    model.load_state_dict({k: v.contiguous() for k, v in ours.items()}, strict=True)
    return model


def to_gpt2(model: GPT, **config_kwargs: Any) -> GPT2LMHeadModel:
    """A ``GPT2LMHeadModel`` computing the same function as ``model`` (weights copied)."""
    from transformers import GPT2LMHeadModel

    if not isinstance(model, GPT):
        raise TypeError(f"model must be an explore_attention GPT, got {type(model).__name__}")
    hf = GPT2LMHeadModel(to_gpt2_config(model.config, **config_kwargs))
    missing, unexpected = hf.load_state_dict(to_gpt2_state_dict(model), strict=False)
    # GPT-2 registers no persistent buffers in transformers 5; anything left over is a bug.
    if unexpected or [m for m in missing if not m.endswith("attn.bias")]:
        raise RuntimeError(f"GPT-2 layout mismatch: missing {missing}, unexpected {unexpected}")
    if model.config.tie_weights:
        hf.tie_weights()
    return hf.eval()


def char_tokenizer_fast(tok: CharTokenizer) -> PreTrainedTokenizerBase:
    """A Hugging Face fast tokenizer with exactly ``tok``'s ids: one token per character.

    A ``tokenizers`` WordLevel model over the characters, a pre-tokenizer that isolates every
    character (newlines included), and a ``Fuse`` decoder so decoding joins without spaces.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from ..data.text import UNK

    core = Tokenizer(models.WordLevel(vocab=tok.vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token=UNK)


def export_gpt2(
    model: GPT,
    path: str | Path,
    tokenizer: PreTrainedTokenizerBase | CharTokenizer | None = None,
    *,
    overwrite: bool = False,
    extra: dict | None = None,
    files: dict[str, str] | None = None,
) -> Path:
    """Write ``model`` (and its tokenizer) as a Hugging Face GPT-2 folder at ``path``.

    The folder is assembled in a temporary sibling directory and renamed into place, so a
    crash never leaves half a checkpoint. An existing ``path`` raises ``FileExistsError``
    unless ``overwrite=True``. ``extra`` (e.g. validation loss, the command that trained it) is
    stored in ``explore_attention.json`` with our config; ``files`` maps extra file names (a
    README.md) to their text.
    """
    from ..data.text import CharTokenizer

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if isinstance(tokenizer, CharTokenizer):
        tokenizer = char_tokenizer_fast(tokenizer)
    ids = {}
    if tokenizer is not None and tokenizer.eos_token_id is not None:
        ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    hf = to_gpt2(model, **ids)
    with atomic_folder(path, overwrite=overwrite, what="export") as tmp:
        hf.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        meta = {"config": model.config.to_dict(), **(extra or {})}
        (tmp / OUR_CONFIG).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        for name, text in (files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
    return path


def load_gpt(path: str | Path) -> GPT:
    """Load an exported folder back into our :class:`GPT` (for ``return_weights`` and KV cache)."""
    from safetensors.torch import load_file

    path = Path(path)
    cfg_file = path / OUR_CONFIG
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{cfg_file} not found: {path} is not an exported GPT folder")
    cfg = GPTConfig(**json.loads(cfg_file.read_text(encoding="utf-8"))["config"])
    model = from_gpt2_state_dict(load_file(path / "model.safetensors"), cfg)
    return model.eval()
