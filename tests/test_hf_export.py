"""Export to Hugging Face GPT-2: the exported model (run by Hugging Face's own GPT-2 code) gives
our logits and attention, loads offline with the Auto classes, and the shipped checkpoint does
what its README says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import TOL
from transformers import AutoModelForCausalLM, AutoTokenizer

from explore_attention.data.text import CharTokenizer, pydoc_text, random_batch, split_ids
from explore_attention.models.gpt import GPT, GPTConfig
from explore_attention.models.hf_export import export_gpt2, load_gpt, to_gpt2

SHIPPED = Path(__file__).parents[1] / "src/explore_attention/checkpoints/gpt-pydoc-char"


def _model(vocab: int = 50, tie: bool = True) -> GPT:
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=vocab, max_len=32, num_layers=2, num_heads=4, d_model=32, tie_weights=tie
    )
    m = GPT(cfg).eval()
    with torch.no_grad():  # non-trivial LayerNorm gains/biases and projections
        for p in m.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return m


@pytest.mark.parametrize("tie", [True, False])
def test_hf_gpt2_computes_our_logits_and_attention(tie: bool) -> None:
    m = _model(tie=tie)
    hf = to_gpt2(m)
    hf.config._attn_implementation = "eager"
    x = torch.randint(0, 50, (2, 17))
    ours = m(x, return_weights=True)
    theirs = hf(x, output_attentions=True)
    torch.testing.assert_close(theirs.logits, ours.logits, **TOL[torch.float32])
    for a, b in zip(theirs.attentions, ours.attentions["decoder"], strict=True):
        torch.testing.assert_close(a, b, **TOL[torch.float32])
    assert hf.config.tie_word_embeddings is tie


def test_export_folder_loads_offline_with_auto_classes(tmp_path: Path) -> None:
    tok = CharTokenizer.from_text(pydoc_text())
    m = _model(vocab=tok.vocab_size)
    path = export_gpt2(m, tmp_path / "gpt", tok, extra={"note": "test"})
    hf = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
    hf_tok = AutoTokenizer.from_pretrained(path)
    text = "for x in range(3):\n  f(x) \u263a"
    ids = hf_tok(text, return_tensors="pt")["input_ids"]
    assert ids[0].tolist() == tok.encode(text)  # one id per character, unknown -> <unk>
    assert hf_tok.decode(tok.encode("def f(): pass\n")) == "def f(): pass\n"
    torch.testing.assert_close(hf(ids).logits, m(ids).logits, **TOL[torch.float32])
    back = load_gpt(path)
    torch.testing.assert_close(back(ids).logits, m(ids).logits, atol=0, rtol=0)
    meta = json.loads((path / "explore_attention.json").read_text())
    assert meta["note"] == "test" and meta["config"]["vocab_size"] == tok.vocab_size


def test_export_refuses_overwrite_and_non_gpt2_models(tmp_path: Path) -> None:
    m = _model()
    export_gpt2(m, tmp_path / "a")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_gpt2(m, tmp_path / "a")
    export_gpt2(m, tmp_path / "a", overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    rope = GPT(GPTConfig(vocab_size=10, num_layers=1, positions="rope"))
    with pytest.raises(ValueError, match="positions='rope'"):
        to_gpt2(rope)
    attn_only = GPT(GPTConfig(vocab_size=10, num_layers=1, mlp_ratio=0))
    with pytest.raises(ValueError, match="mlp_ratio=0"):
        to_gpt2(attn_only)
    with pytest.raises(TypeError, match="explore_attention GPT"):
        to_gpt2(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


def test_bpe_export_uses_gpt2_ids(tmp_path: Path) -> None:
    from explore_attention.data.text import gpt2_tokenizer

    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=50257, max_len=16, num_layers=1, num_heads=2, d_model=8)).eval()
    path = export_gpt2(m, tmp_path / "bpe", gpt2_tokenizer())
    hf_tok = AutoTokenizer.from_pretrained(path)
    assert hf_tok("Hello world")["input_ids"] == [15496, 995]
    hf = AutoModelForCausalLM.from_pretrained(path)
    assert hf.config.eos_token_id == 50256
    ids = torch.tensor([[15496, 995]])
    torch.testing.assert_close(hf(ids).logits, m(ids).logits, **TOL[torch.float32])


def test_shipped_char_checkpoint_matches_its_readme(one_thread) -> None:
    meta = json.loads((SHIPPED / "explore_attention.json").read_text())
    hf = AutoModelForCausalLM.from_pretrained(SHIPPED).eval()
    tok = AutoTokenizer.from_pretrained(SHIPPED)
    text = pydoc_text()
    # one token per character, so the validation split is the text's last 10 %: tokenize only it
    assert len(tok(text[:1000])["input_ids"]) == 1000
    _, val_positions = split_ids(torch.arange(len(text)))
    val = tok(text[int(val_positions[0]) :], return_tensors="pt")["input_ids"][0]
    assert val.numel() == val_positions.numel()
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        losses = []
        for _ in range(20):  # the task's own validation windows (same seed and sizes)
            x, y = random_batch(val, 32, hf.config.n_positions, g)
            logits = hf(x).logits
            losses.append(torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()))
    val_loss = float(torch.stack(losses).mean())
    assert abs(val_loss - meta["val_loss"]) < 1e-3
    assert val_loss < 1.9  # learned: uniform over ~100 characters would be ln(104) = 4.6
    assert f"{meta['val_loss']:.4f}" in (SHIPPED / "README.md").read_text()


def test_inspect_capture_sees_the_same_attention_via_hf_and_ours(tmp_path: Path) -> None:
    from explore_attention.inspect import capture

    tok = CharTokenizer.from_text(pydoc_text())
    m = _model(vocab=tok.vocab_size)
    path = export_gpt2(m, tmp_path / "gpt", tok)
    text = "for i in x:\n  f(i)"
    via_hf = capture(str(path), text)
    ours = capture(m, text, tok)
    assert via_hf.kind == ours.kind == "causal"
    assert via_hf.tokens == ours.tokens == list(text)
    torch.testing.assert_close(via_hf.attentions, ours.attentions, **TOL[torch.float32])
    assert via_hf.attentions.shape == (2, 4, len(text), len(text))
