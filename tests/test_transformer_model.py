"""The encoder-decoder Transformer: KV-cached decoding equals full decoding, causality,
padding, and it learns."""

from __future__ import annotations

import pytest
import torch
from conftest import TOL

from explore_attention import train as tr
from explore_attention.decoding import beam_search, greedy
from explore_attention.models.transformer import Transformer

pytestmark = pytest.mark.usefixtures("one_thread")


def _model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(
        src_vocab=13, tgt_vocab=11, d_model=32, num_heads=4, num_layers=2, max_len=32
    ).eval()


def test_cached_decoding_equals_full_forward() -> None:
    m = _model()
    src = torch.tensor([[3, 4, 5, 6, 7, 8, 9], [10, 11, 12, 3, 4, 0, 0]])
    tgt = torch.tensor([[1, 4, 5, 6, 7, 3], [1, 9, 8, 7, 3, 4]])
    out = m(src, tgt, return_weights=True)
    full, w = out.logits, out.attentions["cross"][-1].mean(1)  # last layer, head mean
    state, logits, weights = m.encode(src), [], []
    for t in range(tgt.shape[1]):
        lg, state, wt = m.step(tgt[:, t], state)
        logits.append(lg)
        weights.append(wt)
    torch.testing.assert_close(torch.stack(logits, 1), full, **TOL[torch.float32])
    torch.testing.assert_close(torch.stack(weights, 1), w, **TOL[torch.float32])
    assert state["caches"][0].length == tgt.shape[1]
    assert torch.all(w[1, :, 5:] == 0)  # padded source keys get no cross-attention
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 6))


def test_causal_and_padding() -> None:
    m = _model()
    src = torch.tensor([[3, 4, 5, 0, 0]])
    tgt = torch.tensor([[1, 4, 5, 6, 7]])
    out = m(src, tgt).logits
    changed = tgt.clone()
    changed[0, 3:] = torch.tensor([9, 10])
    out2 = m(src, changed).logits
    torch.testing.assert_close(out2[:, :3], out[:, :3], **TOL[torch.float32])  # past unchanged
    assert not torch.allclose(out2[:, 3:], out[:, 3:])
    torch.testing.assert_close(m(src[:, :3], tgt).logits, out, **TOL[torch.float32])  # pad inert


def test_every_site_every_layer_per_head() -> None:
    m = _model()
    src = torch.tensor([[3, 4, 5, 6, 0, 0]])
    tgt = torch.tensor([[1, 4, 5, 6, 7]])
    out = m(src, tgt, return_weights=True)
    att = out.attentions
    assert {s: len(w) for s, w in att.items()} == {"encoder": 2, "decoder": 2, "cross": 2}
    for layer in range(2):
        enc, dec, cross = att["encoder"][layer], att["decoder"][layer], att["cross"][layer]
        assert enc.shape == (1, 4, 6, 6) and dec.shape == (1, 4, 5, 5)
        assert cross.shape == (1, 4, 5, 6)
        assert torch.all(enc[..., 4:] == 0) and torch.all(cross[..., 4:] == 0)  # padding
        assert torch.all(dec.triu(1) == 0)  # causal
        for w in (enc, dec, cross):
            torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
    # layer 0's encoder attention from the module's own weights, by the formula
    x = m._embed(m.src_emb, src)
    layer = m.encoder[0]
    h = layer.norm1(x)
    q = layer.attn.q_proj(h).view(1, 6, 4, 8).transpose(1, 2)
    k = layer.attn.k_proj(h).view(1, 6, 4, 8).transpose(1, 2)
    s = (q @ k.transpose(-1, -2) / 8**0.5).masked_fill((src == 0)[:, None, None], float("-inf"))
    torch.testing.assert_close(att["encoder"][0], s.softmax(-1), **TOL[torch.float32])
    assert m(src, tgt).attentions is None


def test_beam_one_is_greedy_and_cache_reorders() -> None:
    m = _model()
    src = torch.tensor([[3, 4, 5, 6], [7, 8, 9, 0]])
    hyp, _ = greedy(m, src, max_len=8)
    assert beam_search(m, src, beam=1, max_len=8) == hyp
    assert all(len(h) <= 8 for h in beam_search(m, src, beam=3, max_len=8))


def test_learns_reverse() -> None:
    task = tr.get_task(
        "reverse",
        seed=0,
        model="transformer",
        hidden=32,
        max_len=6,
        eval_size=128,
        num_layers=2,
        num_heads=4,
    )
    res = tr.train(
        task,
        tr.TrainConfig(steps=300, batch_size=64, eval_every=50, lr=3e-3, warmup=30, target=0.95),
        progress=False,
    )
    assert res.history[-1]["accuracy"] >= 0.95, res.history


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="d_model"):
        Transformer(src_vocab=5, tgt_vocab=5, d_model=0)
    m = _model()
    with pytest.raises(ValueError, match="max_len"):
        m(torch.ones(1, 40, dtype=torch.long), torch.ones(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="src must be"):
        m.encode(torch.ones(3))
