"""The shipped Hugging Face-class models: they load offline, are trained, and compute what the
papers say (RoPE re-applied by hand equals the model's attention; GQA shrinks the KV cache)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from explore_attention.attention.positional import apply_rope
from explore_attention.data.text import pydoc_text

CKPT = Path(__file__).resolve().parents[1] / "src/explore_attention/checkpoints"
LLAMA = CKPT / "llama-pydoc"
T5 = CKPT / "t5-numbers-de"


def _llama():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(LLAMA, attn_implementation="eager")
    return model.float().eval(), AutoTokenizer.from_pretrained(LLAMA)


def test_llama_is_a_trained_gqa_llama() -> None:
    model, tok = _llama()
    c = model.config
    assert type(model).__name__ == "LlamaForCausalLM"
    assert c.num_key_value_heads < c.num_attention_heads  # grouped-query attention
    # held out: the last 10 % of the pydoc text, never seen by tokenizer or model
    text = pydoc_text()
    ids = torch.tensor(tok(text[int(len(text) * 0.9) :])["input_ids"])
    T = c.max_position_embeddings
    windows = torch.stack([ids[i : i + T] for i in range(0, 8 * T, T)])  # (8, T)
    with torch.no_grad():
        loss = model(input_ids=windows, labels=windows).loss.item()
    # measured 4.74 nats on these windows; uniform over the vocabulary is log V = 7.62
    assert loss < 0.7 * math.log(len(tok)), loss


def test_rope_by_hand_equals_the_llamas_attention() -> None:
    """Layer 0: RMSNorm → q/k projections → our apply_rope → GQA head sharing → causal softmax
    reproduces the eager attention weights Hugging Face's Llama returns."""
    model, tok = _llama()
    c = model.config
    ids = torch.tensor([tok("def f(x):\n    return x + 1\n")["input_ids"]])  # (1, L)
    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True)
        layer = model.model.layers[0]
        h = layer.input_layernorm(model.model.embed_tokens(ids))  # (1, L, d)
        H, Hkv, D = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        L = ids.shape[1]
        q = layer.self_attn.q_proj(h).view(1, L, H, D).transpose(1, 2)  # (1, H, L, D)
        k = layer.self_attn.k_proj(h).view(1, L, Hkv, D).transpose(1, 2)  # (1, Hkv, L, D)
        theta = c.rope_parameters["rope_theta"]
        q, k = apply_rope(q, base=theta), apply_rope(k, base=theta)
        k = k.repeat_interleave(H // Hkv, dim=1)  # (1, H, L, D): each kv head serves H/Hkv
        scores = q @ k.transpose(-1, -2) / math.sqrt(D)  # (1, H, L, L)
        causal = torch.ones(L, L, dtype=torch.bool).tril()
        want = scores.masked_fill(~causal, float("-inf")).softmax(-1)
    torch.testing.assert_close(out.attentions[0], want, atol=1e-5, rtol=1e-4)
    # without RoPE the weights differ: the test can tell
    plain = (q @ k.transpose(-1, -2)).masked_fill(~causal, float("-inf")).softmax(-1)
    assert (plain - out.attentions[0]).abs().max() > 1e-3


def test_gqa_kv_cache_is_smaller_by_the_head_ratio() -> None:
    from explore_attention.tasks.hf_models import kv_cache_bytes

    model, tok = _llama()
    c = model.config
    ids = torch.tensor([tok("class A:\n    pass\n")["input_ids"]])
    gqa, mha = kv_cache_bytes(model, ids), kv_cache_bytes(model, ids, as_mha=True)
    L = ids.shape[1]
    assert gqa == 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * L * 4
    assert mha == gqa * c.num_attention_heads // c.num_key_value_heads


def test_t5_translates_and_its_bias_is_learned() -> None:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from explore_attention.data.translation import numbers
    from explore_attention.tasks.hf_models import exact_match

    model = AutoModelForSeq2SeqLM.from_pretrained(T5, attn_implementation="eager").float().eval()
    tok = AutoTokenizer.from_pretrained(T5)
    pairs = numbers(train_size=10).splits["validation"][:128]  # numbers never trained on
    enc = tok([s for s, _ in pairs], padding=True, return_tensors="pt")
    labels = tok([t for _, t in pairs], padding=True, return_tensors="pt")["input_ids"]
    labels = labels.masked_fill(labels == tok.pad_token_id, -100)
    with torch.no_grad():
        loss = model(**enc, labels=labels).loss.item()
    assert loss < 0.2 * math.log(len(tok)), loss
    assert exact_match(model, tok, pairs) > 0.5  # measured 0.60 on these 128
    bias = model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight
    assert bias.shape == (model.config.relative_attention_num_buckets, model.config.num_heads)
    assert bias.std() > 0.1  # trained away from its near-zero initialisation


def test_t5_bias_drawn_by_our_module_equals_hugging_faces() -> None:
    """The trained bucket table loaded into attention.positional.T5RelativeBias gives the
    position bias T5 adds to its encoder scores (Raffel et al. 2019, §2.1)."""
    from transformers import AutoModelForSeq2SeqLM

    from explore_attention.attention.positional import T5RelativeBias

    model = AutoModelForSeq2SeqLM.from_pretrained(T5, attn_implementation="eager").float()
    c = model.config
    attn = model.encoder.block[0].layer[0].SelfAttention
    ours = T5RelativeBias(
        c.num_heads,
        num_buckets=c.relative_attention_num_buckets,
        max_distance=c.relative_attention_max_distance,
    )
    with torch.no_grad():
        ours.embedding.weight.copy_(attn.relative_attention_bias.weight)
        torch.testing.assert_close(ours.bias(40), attn.compute_bias(40, 40))


def test_bpe_gpt_loads_offline_and_is_trained() -> None:
    """gpt-pydoc-bpe: GPT-2 format, weights stored in float16, loss far below log V."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from explore_attention.data.text import random_batch, split_ids
    from explore_attention.models.hf_export import load_gpt

    path = CKPT / "gpt-pydoc-bpe"
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(path)
    assert type(model).__name__ == "GPT2LMHeadModel" and len(tok) == 50257
    _, val = split_ids(tok(pydoc_text())["input_ids"])
    x, _ = random_batch(val, 16, 64, torch.Generator().manual_seed(1234))  # (16, 64)
    with torch.no_grad():
        loss = model(input_ids=x, labels=x).loss.item()
        ours = load_gpt(path)(x[:, :-1], x[:, 1:]).loss.item()  # our GPT on the same weights
    # README: 3.23 on the task's validation windows; uniform is log V = 10.8
    assert loss < 0.4 * math.log(len(tok)), loss
    assert abs(loss - ours) < 1e-3


def test_save_folder_is_atomic_and_refuses_to_overwrite(tmp_path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from explore_attention.tasks.hf_models import char_tokenizer, save_folder

    tok = char_tokenizer(["abc"])
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    model = LlamaForCausalLM(cfg)  # random weights: only the writing is tested
    out = save_folder(model, tok, tmp_path / "m", readme="# m\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left
    assert (out / "README.md").read_text() == "# m\n" and (out / "tokenizer.json").is_file()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_folder(model, tok, out, readme="# again\n")
    save_folder(model, tok, out, readme="# again\n", overwrite=True, half=True)
    assert (out / "README.md").read_text() == "# again\n"
    assert next(model.parameters()).dtype == torch.float32  # half=True stores, keeps the model
