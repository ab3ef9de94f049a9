"""The GPT: causal, KV-cached decoding equals full decoding, attention weights equal a float64
formula from the paper, and a short training run on the pydoc text learns."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from conftest import TOL

from explore_attention.models.gpt import GPT, GPTConfig
from explore_attention.train import get_task, load_checkpoint, train


def _model(positions: str = "learned", **kw) -> GPT:
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=37,
        max_len=24,
        num_layers=2,
        num_heads=4,
        d_model=32,
        positions=positions,
        **kw,
    )
    m = GPT(cfg).eval()
    with torch.no_grad():  # move away from the near-zero init so every path matters
        for p in m.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return m


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_causal_future_tokens_change_nothing(positions: str) -> None:
    m = _model(positions)
    x = torch.randint(0, 37, (2, 20))
    y = x.clone()
    y[:, 12:] = torch.randint(0, 37, (2, 8))
    torch.testing.assert_close(m(x).logits[:, :12], m(y).logits[:, :12], **TOL[torch.float32])
    assert not torch.allclose(m(x).logits[:, 12:], m(y).logits[:, 12:])


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_kv_cache_equals_full_forward(positions: str) -> None:
    m = _model(positions)
    x = torch.randint(0, 37, (3, 20))
    full = m(x).logits
    cache = m.new_cache(3)
    parts = [m(x[:, :7], cache=cache).logits]  # prefill a chunk, then one token at a time
    parts += [m(x[:, i : i + 1], cache=cache).logits for i in range(7, 20)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, **TOL[torch.float32])


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_cached_generation_equals_uncached(positions: str) -> None:
    m = _model(positions)
    prompt = torch.randint(0, 37, (2, 5))
    # 40 new tokens > max_len 24: exercises the crop-and-rebuild path too
    a = m.generate(prompt, 40, temperature=0, use_cache=True)
    b = m.generate(prompt, 40, temperature=0, use_cache=False)
    assert a.shape == (2, 45)
    assert torch.equal(a, b)
    assert torch.equal(a[:, :5], prompt)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    s1 = m.generate(prompt, 10, temperature=0.9, top_k=5, generator=g1)
    s2 = m.generate(prompt, 10, temperature=0.9, top_k=5, generator=g2, use_cache=False)
    assert torch.equal(s1, s2)


def test_top_k_restricts_sampling() -> None:
    m = _model()
    prompt = torch.randint(0, 37, (1, 6))
    logits = m(prompt).logits[0, -1]
    allowed = set(torch.topk(logits, 3).indices.tolist())
    g = torch.Generator().manual_seed(0)
    seen = {int(m.generate(prompt, 1, top_k=3, generator=g)[0, -1]) for _ in range(60)}
    assert seen <= allowed and len(seen) > 1
    assert int(m.generate(prompt, 1, top_k=1)[0, -1]) == int(logits.argmax())


def test_loss_and_attention_weights_against_float64_formula() -> None:
    m = _model().double()
    x = torch.randint(0, 37, (2, 11))
    out = m(x, x, return_weights=True)
    ref = F.cross_entropy(out.logits.reshape(-1, 37), x.reshape(-1))
    torch.testing.assert_close(out.loss, ref, atol=1e-10, rtol=1e-7)
    # layer 0 by hand: softmax(q kᵀ / sqrt(d) + causal) from the block's own projections
    blk = m.blocks[0]
    h = m.wte(x) + m.wpe(torch.arange(11))
    a = blk.ln_1(h)
    q = blk.attn.q_proj(a).view(2, 11, 4, 8).transpose(1, 2)  # (B, H, L, D)
    k = blk.attn.k_proj(a).view(2, 11, 4, 8).transpose(1, 2)  # (B, H, L, D)
    s = q @ k.transpose(-2, -1) / math.sqrt(8)
    s = s.masked_fill(torch.ones(11, 11, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(out.attentions["decoder"][0], s.softmax(-1), atol=1e-10, rtol=1e-7)
    assert out.attentions["decoder"][1].shape == (2, 4, 11, 11)
    assert m(x).attentions is None  # weights only when asked


def test_attention_only_blocks_have_no_mlp() -> None:
    m = GPT(GPTConfig(vocab_size=10, max_len=8, num_layers=2, mlp_ratio=0, d_model=16, num_heads=2))
    assert not any("mlp" in n for n, _ in m.named_parameters())
    assert m(torch.zeros(1, 8, dtype=torch.long)).logits.shape == (1, 8, 10)


def test_bad_input() -> None:
    m = _model()
    with pytest.raises(ValueError, match="exceeds max_len"):
        m(torch.zeros(1, 25, dtype=torch.long))
    with pytest.raises(ValueError, match=r"shape \(B, L\)"):
        m(torch.zeros(25, dtype=torch.long))
    with pytest.raises(ValueError, match="integer token ids"):
        m(torch.zeros(1, 5))
    with pytest.raises(TypeError, match=r"idx must be a torch\.Tensor"):
        m([[1, 2]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="targets must have"):
        m(torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        GPTConfig(d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="positions must be one of"):
        GPTConfig(positions="alibi")
    with pytest.raises(ValueError, match="even head dim"):
        GPTConfig(d_model=12, num_heads=4, positions="rope")
    with pytest.raises(ValueError, match="num_layers must be"):
        GPTConfig(num_layers=0)
    with pytest.raises(ValueError, match="top_k"):
        m.generate(torch.zeros(1, 2, dtype=torch.long), 3, top_k=0)
    with pytest.raises(ValueError, match="temperature"):
        m.generate(torch.zeros(1, 2, dtype=torch.long), 3, temperature=-1.0)
    with pytest.raises(TypeError, match="config must be"):
        GPT("small")  # type: ignore[arg-type]


@pytest.mark.slow
def test_short_char_training_learns_and_checkpoint_reloads(tmp_path, one_thread) -> None:
    opts = dict(num_layers=2, num_heads=4, d_model=64, max_len=32, eval_batches=4)
    task = get_task("gpt-char", seed=0, **opts)
    before = task.evaluate(task.model)["val_loss"]
    assert abs(before - math.log(task.model.config.vocab_size)) < 0.3  # uniform at init
    cfg = replace(task.defaults, steps=150, batch_size=16, lr=3e-3, warmup=10, eval_every=150)
    res = train(task, cfg, out=tmp_path / "run", progress=False, name="gpt-char")
    after = res.history[-1]["val_loss"]
    assert after < 2.9, f"validation loss {before:.3f} -> {after:.3f}"
    model, config = load_checkpoint(tmp_path / "run")
    assert isinstance(model, GPT)
    x = torch.randint(0, model.config.vocab_size, (1, 16))
    torch.testing.assert_close(model(x).logits, res.model.eval()(x).logits, **TOL[torch.float32])
    assert config["task"] == "gpt-char"


@pytest.mark.slow
def test_short_bpe_training_learns(one_thread) -> None:
    task = get_task(
        "gpt-bpe", seed=0, num_layers=1, num_heads=2, d_model=32, max_len=16, eval_batches=1
    )
    before = task.evaluate(task.model)["val_loss"]
    cfg = replace(task.defaults, steps=40, batch_size=8, lr=1e-2, warmup=5, eval_every=40)
    after = train(task, cfg, progress=False).history[-1]["val_loss"]
    assert before > 10.0  # ln 50257 = 10.8
    assert after < before - 3.0, f"validation loss {before:.3f} -> {after:.3f}"
