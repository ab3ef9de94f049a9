"""inspect.load_model / inspect.capture against the models' own ``output_attentions``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explore_attention.attention import MultiHeadAttention, masks
from explore_attention.inspect import AttentionTrace, capture, load_model
from explore_attention.models.output import ModelOutput

TEXT = "The animal didn't cross the street because it was too tired"


def _own_attentions(model, inputs):
    out = model(**inputs, output_attentions=True)
    return torch.stack([a[0] for a in out.attentions])  # (layers, heads, L, L)


def test_default_model_matches_output_attentions(minilm):
    model, tok = minilm
    assert model.config._attn_implementation == "eager" and not model.training
    trace = capture(model, TEXT, tok)
    enc = tok(TEXT, return_tensors="pt")
    with torch.no_grad():
        expected = _own_attentions(model, enc)
    assert torch.equal(trace.attentions, expected)
    assert trace.attentions.shape == (6, 12, len(trace.tokens), len(trace.tokens))
    assert trace.tokens == tok.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    assert trace.tokens[0] == "[CLS]" and trace.tokens[-1] == "[SEP]" and "animal" in trace.tokens
    assert trace.key_tokens == trace.tokens and trace.kind == "self"
    torch.testing.assert_close(trace.attentions.sum(-1), torch.ones(6, 12, len(trace.tokens)))


def test_capture_none_loads_the_bundled_model():
    trace = capture(None, "attention is all you need")
    assert trace.model_name == "all-MiniLM-L6-v2"
    assert trace.tokens == ["[CLS]", "attention", "is", "all", "you", "need", "[SEP]"]
    assert trace.attentions.shape == (6, 12, 7, 7)


def test_capture_switches_sdpa_model_to_eager_and_back(tiny_bert_dir):
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(tiny_bert_dir, attn_implementation="sdpa").eval()
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    trace = capture(model, "a short sentence", tok)
    assert model.config._attn_implementation == "sdpa"  # restored
    eager, _ = load_model(tiny_bert_dir)
    with torch.no_grad():
        expected = _own_attentions(eager, tok("a short sentence", return_tensors="pt"))
    torch.testing.assert_close(trace.attentions, expected, atol=1e-6, rtol=1e-5)


def test_load_tiny_bert_by_path(tiny_bert_dir):
    model, tok = load_model(tiny_bert_dir)
    assert type(model).__name__ == "BertModel"
    trace = capture(tiny_bert_dir, "hello world")
    assert trace.attentions.shape == (2, 4, 4, 4) and trace.kind == "self"
    with torch.no_grad():
        expected = _own_attentions(model, tok("hello world", return_tensors="pt"))
    assert torch.equal(trace.attentions, expected)


def test_load_tiny_gpt2_by_path_is_causal(tiny_gpt2_dir):
    model, tok = load_model(tiny_gpt2_dir)
    assert type(model).__name__ == "GPT2LMHeadModel"
    assert model.config._attn_implementation == "eager"
    trace = capture(model, "Hello world, the cat sat", tok)
    assert trace.kind == "causal"
    assert trace.tokens == ["Hello", "Ġworld", ",", "Ġthe", "Ġcat", "Ġsat"]
    L = len(trace.tokens)
    assert trace.attentions.shape == (3, 2, L, L)
    future = torch.triu(torch.ones(L, L, dtype=torch.bool), diagonal=1)
    assert torch.all(trace.attentions[..., future] == 0)
    with torch.no_grad():
        expected = _own_attentions(model, tok("Hello world, the cat sat", return_tensors="pt"))
    assert torch.equal(trace.attentions, expected)


def test_capture_from_input_ids_and_batch_encoding(minilm):
    model, tok = minilm
    enc = tok("hello there", return_tensors="pt")
    a = capture(model, enc, tok)
    b = capture(model, enc["input_ids"][0], tok)
    assert torch.equal(a.attentions, b.attentions) and a.tokens == b.tokens


def test_offline_hub_name_fails_at_once_naming_the_default(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="all-MiniLM-L6-v2") as info:
        load_model("explore-attention-tests/no-such-model")
    assert "offline" in str(info.value).lower() or "HF_HUB_OFFLINE" in str(info.value)
    with pytest.raises(ValueError, match="all-MiniLM-L6-v2"):
        capture("explore-attention-tests/no-such-model", "hello")


def test_bad_paths(tmp_path):
    with pytest.raises(ValueError, match=r"config\.json"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        load_model(str(tmp_path / "missing" / "model"))
    with pytest.raises(TypeError, match="name_or_path"):
        load_model(42)


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_text(minilm, text):
    with pytest.raises(ValueError, match="empty"):
        capture(minilm[0], text, minilm[1])


def test_text_too_long(minilm):
    with pytest.raises(ValueError, match="at most 512"):
        capture(minilm[0], "word " * 600, minilm[1])


def test_token_label_mismatch_and_batches(minilm):
    model, tok = minilm
    ids = tok("hello there", return_tensors="pt")["input_ids"]  # (1, 4)
    with pytest.raises(ValueError, match="tokens has 2 tokens but the attention has length 4"):
        capture(model, ids, tokens=["a", "b"])
    with pytest.raises(ValueError, match="batch size 1"):
        capture(model, ids.repeat(2, 1), tok)
    with pytest.raises(ValueError, match="without a tokenizer"):
        capture(model, ids)
    with pytest.raises(ValueError, match="tokenizer"):
        capture(model, "hello")
    with pytest.raises(TypeError, match="text_or_inputs"):
        capture(model, 3.5, tok)
    with pytest.raises(ValueError, match="cross"):
        capture(model, "hello", tok, kind="cross")
    with pytest.raises(TypeError, match="model"):
        capture(object(), "hello", tok)
    with pytest.raises(ValueError, match="kind"):
        capture(model, "hello", tok, kind="bogus")


# --------------------------------------------------------------------------- own models


class TinyDecoder(nn.Module):
    """Embedding + causal self-attention layers + cross-attention to a memory; returns the
    project's ModelOutput (sites "decoder" and, with a memory, "cross")."""

    def __init__(self, vocab: int = 11, d: int = 8, heads: int = 2, layers: int = 3) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.self_attn = nn.ModuleList(MultiHeadAttention(d, heads) for _ in range(layers))
        self.cross_attn = nn.ModuleList(MultiHeadAttention(d, heads) for _ in range(layers))

    def forward(self, ids, memory=None, *, return_weights=False):
        x = self.emb(ids)
        selfs, crosses = [], []
        for sa, ca in zip(self.self_attn, self.cross_attn):
            a = sa(x, mask_mod=masks.causal, return_weights=return_weights)
            x = x + a.output
            selfs.append(a.weights)
            if memory is not None:
                c = ca(x, memory, return_weights=return_weights)
                x = x + c.output
                crosses.append(c.weights)
        att = {"decoder": tuple(selfs)}
        if memory is not None:
            att["cross"] = tuple(crosses)
        return ModelOutput(x, attentions=att if return_weights else None)


def _reference_weights(model, ids, memory=None):
    """Recompute each layer's weights by the formula softmax(q kᵀ / √d) on the modules' own
    projections (independent of ModelOutput)."""
    selfs, crosses = [], []

    def weights(m, x, kv, causal):
        B, Lq, _ = x.shape
        q = m.q_proj(x).view(B, Lq, m.num_heads, -1).transpose(1, 2)
        k = m.k_proj(kv).view(B, kv.shape[1], m.num_heads, -1).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
        if causal:
            s = s.masked_fill(torch.ones(Lq, Lq, dtype=torch.bool).triu(1), float("-inf"))
        return s.softmax(-1)[0]

    with torch.no_grad():
        x = model.emb(ids)
        for sa, ca in zip(model.self_attn, model.cross_attn):
            selfs.append(weights(sa, x, x, True))
            x = x + sa(x, mask_mod=masks.causal).output
            if memory is not None:
                crosses.append(weights(ca, x, memory, False))
                x = x + ca(x, memory).output
    return torch.stack(selfs), (torch.stack(crosses) if crosses else None)


def test_encoder_decoder_labels_without_tokenizer():
    """A tiny random BART: each kind of attention equals the model's own output, labelled by
    ``tokens=`` / ``key_tokens=`` alone (no tokenizer needed)."""
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(0)
    cfg = BartConfig(
        vocab_size=50,
        d_model=16,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=32,
        attn_implementation="eager",
    )
    model = BartForConditionalGeneration(cfg).eval()
    src, tgt = torch.tensor([[5, 6, 7, 8, 2]]), torch.tensor([[2, 9, 10]])
    inputs = {"input_ids": src, "decoder_input_ids": tgt}
    src_labels, tgt_labels = ["a", "b", "c", "d", "</s>"], ["<s>", "x", "y"]
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    for kind, expected, q_labels, k_labels in [
        ("self", out.encoder_attentions, src_labels, src_labels),
        ("causal", out.decoder_attentions, tgt_labels, tgt_labels),
        ("cross", out.cross_attentions, tgt_labels, src_labels),
    ]:
        labels = dict(key_tokens=src_labels) if kind == "self" else dict(tokens=tgt_labels)
        if kind == "cross":
            labels["key_tokens"] = src_labels
        trace = capture(model, inputs, kind=kind, **labels)
        assert trace.kind == kind
        assert (trace.tokens, trace.key_tokens) == (q_labels, k_labels)
        torch.testing.assert_close(trace.attentions, torch.stack([a[0] for a in expected]))
    with pytest.raises(ValueError, match=r"key_tokens=\[\.\.\.\] \(5 labels\)"):
        capture(model, inputs, kind="cross", tokens=tgt_labels)


def test_own_model_self_attention_from_model_output():
    torch.manual_seed(0)
    model = TinyDecoder().train()
    ids = torch.tensor([1, 5, 2, 7, 3])
    trace = capture(model, ids, tokens=list("abcde"))
    expected, _ = _reference_weights(model, ids[None])
    assert isinstance(trace, AttentionTrace) and trace.kind == "causal"
    torch.testing.assert_close(trace.attentions, expected)
    assert trace.attentions.shape == (3, 2, 5, 5)
    assert model.training  # restored
    assert trace.meta == {"source": "explore_attention", "site": "decoder"}


def test_own_model_cross_attention():
    torch.manual_seed(0)
    model = TinyDecoder().eval()
    ids = torch.tensor([[1, 5, 2]])
    memory = torch.randn(1, 4, 8)
    trace = capture(
        model, (ids, memory), tokens=["x", "y", "z"], key_tokens=list("PQRS"), kind="cross"
    )
    _, expected = _reference_weights(model, ids, memory)
    assert trace.kind == "cross"
    torch.testing.assert_close(trace.attentions, expected)
    assert trace.attentions.shape == (3, 2, 3, 4) and trace.key_tokens == list("PQRS")
    with pytest.raises(ValueError, match="key_tokens"):
        capture(model, (ids, memory), tokens=["x", "y", "z"], kind="cross")


def test_own_model_with_tokenizer(tiny_gpt2_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    torch.manual_seed(0)
    model = TinyDecoder(vocab=len(tok)).eval()
    trace = capture(model, "Hello world", tok)
    assert trace.tokens == ["Hello", "Ġworld"] and trace.kind == "causal"


def test_own_model_errors():
    model = TinyDecoder()
    with pytest.raises(ValueError, match=r"tokens=\[\.\.\.\]"):
        capture(model, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="tokens has 2 tokens"):
        capture(model, torch.tensor([1, 2, 3]), tokens=["a", "b"])
    with pytest.raises(ValueError, match="no kind='cross'"):
        capture(model, torch.tensor([1, 2, 3]), tokens=list("abc"), kind="cross")
    with pytest.raises(ValueError, match="site must be one of"):
        capture(model, torch.tensor([1, 2, 3]), tokens=list("abc"), site="text")
    with pytest.raises(TypeError, match="ModelOutput"):
        capture(nn.Linear(2, 2), torch.zeros(1, 2), tokens=["a"])


def test_own_encoder_decoder_sites_by_kind_and_site():
    """The Transformer has three sites; kind picks one, site must agree, kind=None is ambiguous."""
    from explore_attention.models.transformer import Transformer

    torch.manual_seed(0)
    model = Transformer(src_vocab=9, tgt_vocab=9, d_model=16, num_heads=2, num_layers=2).eval()
    src, tgt = torch.tensor([[3, 4, 5, 6]]), torch.tensor([[1, 7, 8]])
    with torch.no_grad():
        att = model(src, tgt, return_weights=True).attentions
    labels = {"self": (list("abcd"), None), "causal": (list("xyz"), None),
              "cross": (list("xyz"), list("abcd"))}  # fmt: skip
    for kind, site in (("self", "encoder"), ("causal", "decoder"), ("cross", "cross")):
        tokens, keys = labels[kind]
        tr = capture(model, (src, tgt), tokens=tokens, key_tokens=keys, kind=kind)
        assert tr.kind == kind and tr.meta["site"] == site
        torch.testing.assert_close(tr.attentions, torch.stack([w[0] for w in att[site]]))
        same = capture(model, (src, tgt), tokens=tokens, key_tokens=keys, site=site)
        assert torch.equal(same.attentions, tr.attentions)
    with pytest.raises(ValueError, match="several sites"):
        capture(model, (src, tgt), tokens=list("abcd"))
    with pytest.raises(ValueError, match="not kind='self'"):
        capture(model, (src, tgt), tokens=list("xyz"), kind="self", site="decoder")


def test_trace_checks_its_labels() -> None:
    a = torch.softmax(torch.randn(1, 2, 3, 4), -1)
    with pytest.raises(ValueError, match="key_tokens has 3 tokens but the attention has length 4"):
        AttentionTrace(a, list("abc"), list("xyz"), "m", "cross")
    with pytest.raises(ValueError, match="tokens has 2 tokens but the attention has length 3"):
        AttentionTrace(a, list("ab"), list("wxyz"), "m", "cross")
    assert AttentionTrace(a, [1, 2, 3], list("wxyz"), "m", "cross").tokens == ["1", "2", "3"]
