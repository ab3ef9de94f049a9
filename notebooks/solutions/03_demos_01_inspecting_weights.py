"""Solutions to the exercises of notebooks/03_demos/01_inspecting_weights.ipynb."""

from __future__ import annotations

from functools import lru_cache

import torch

from explore_attention.inspect import capture, load_model

TEXT = "The animal didn't cross the street because it was too tired."


@lru_cache(maxsize=1)
def _loaded():
    model, tokenizer = load_model()
    return model, tokenizer, capture(model, TEXT, tokenizer)


def exercise_1() -> str:
    """The token 'it' reads most in layer 2, heads averaged."""
    _, _, trace = _loaded()
    i = trace.tokens.index("it")
    row = trace.attentions[2, :, i].mean(0)  # (L,)
    loop = [
        sum(float(trace.attentions[2, h, i, j]) for h in range(12)) / 12 for j in range(len(row))
    ]
    j = int(row.argmax())
    assert j == max(range(len(loop)), key=loop.__getitem__)
    assert abs(float(row.sum()) - 1) < 1e-5
    return trace.tokens[j]


def exercise_2() -> None:
    """Layer 0, head 3 from the model's own projections."""
    model, tokenizer, trace = _loaded()
    enc = tokenizer(TEXT, return_tensors="pt")
    with torch.no_grad():
        X = model(**enc, output_hidden_states=True).hidden_states[0][0]  # (L, d_model)
        att = model.encoder.layer[0].attention.self
        d_h = model.config.hidden_size // model.config.num_attention_heads
        cols = slice(3 * d_h, 4 * d_h)
        Q = (X @ att.query.weight.T + att.query.bias)[:, cols]
        K = (X @ att.key.weight.T + att.key.bias)[:, cols]
        A = torch.softmax(Q @ K.T / d_h**0.5, dim=-1)
    torch.testing.assert_close(A, trace.attentions[0, 3], atol=1e-5, rtol=1e-4)


def bin_attention(A: torch.Tensor, b: int) -> torch.Tensor:
    """Bins of ``b`` tokens: keys summed, queries averaged; ``A`` is (L, L), L divisible by b."""
    L = A.shape[-1]
    return A.reshape(L // b, b, L // b, b).sum(-1).mean(1)


def exercise_3() -> torch.Tensor:
    torch.manual_seed(0)
    A = torch.rand(12, 12).softmax(-1)
    B = bin_attention(A, 4)  # (3, 3)
    torch.testing.assert_close(B.sum(-1), torch.ones(3))
    torch.testing.assert_close(B[1, 2], A[4:8, 8:12].sum(-1).mean())
    return B
