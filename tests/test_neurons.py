"""inspect.neurons: q/k as the model computes them (softmax of the scores = the model's own
weights) for BERT, GPT-2, a GQA Llama with RoPE and our GPT; head ablation = zeroed weights."""

from __future__ import annotations

import copy

import pytest
import torch

from explore_attention.inspect import capture, load_model
from explore_attention.inspect.neurons import ablate_heads, query_key


@pytest.fixture(scope="module")
def tiny():
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from explore_attention.models.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(
        GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=2, n_head=2)
    ).eval()
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=50,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
        )
    ).eval()
    own = GPT(
        GPTConfig(
            vocab_size=50, max_len=16, num_layers=2, num_heads=2, d_model=16, positions="rope"
        )
    ).eval()
    return {"gpt2": gpt2, "llama": llama, "own": own}


IDS = torch.tensor([[3, 14, 15, 9, 26, 5, 35, 8, 9]])


def test_bert_scores_softmax_to_the_captured_weights():
    model, tok = load_model()
    text = "The cat sat on the mat."
    trace = capture(model, text, tok)
    inputs = dict(tok(text, return_tensors="pt"))
    for layer, head in [(0, 0), (3, 7), (5, 11)]:
        qk = query_key(model, inputs, layer, head)
        torch.testing.assert_close(qk.weights, trace.attentions[layer, head], atol=1e-6, rtol=0)
        assert qk.q_raw is None and qk.q.shape == (len(trace.tokens), 32)
        assert qk.scale == pytest.approx(32**-0.5)
        # the score is the scaled dot product of the two shown vectors
        i, j = 2, 4
        assert float(qk.scores[i, j]) == pytest.approx(float(qk.q[i] @ qk.k[j]) * qk.scale)


@pytest.mark.parametrize("name", ["gpt2", "llama", "own"])
def test_causal_models_scores_match_and_mask_the_future(tiny, name):
    model = tiny[name]
    if name == "own":
        out = model(IDS, return_weights=True).attentions["decoder"]
    else:
        model.set_attn_implementation("eager")
        out = model(IDS, output_attentions=True).attentions
    H = out[0].shape[1]
    for layer in range(2):
        for head in range(H):
            qk = query_key(model, IDS if name == "own" else {"input_ids": IDS}, layer, head)
            torch.testing.assert_close(qk.weights, out[layer][0, head], atol=1e-6, rtol=0)
            assert torch.isinf(torch.triu(qk.scores, 1)[torch.triu_indices(9, 9, 1).unbind()]).all()
            rope = name in ("llama", "own")
            assert (qk.q_raw is not None) == rope
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    assert "eager" not in ALL_ATTENTION_FUNCTIONS._local_mapping  # the probe is gone


def test_rope_vectors_are_the_raw_ones_rotated(tiny):
    from explore_attention.attention.positional import apply_rope

    qk = query_key(tiny["own"], IDS, 1, 0)
    pos = torch.arange(IDS.shape[1])
    torch.testing.assert_close(apply_rope(qk.q_raw[None, None], pos)[0, 0], qk.q)
    torch.testing.assert_close(apply_rope(qk.k_raw[None, None], pos)[0, 0], qk.k)


def test_ablation_equals_zeroing_the_heads_output_weights(tiny):
    g = tiny["gpt2"]
    with ablate_heads(g, [(1, 1)]):
        got = g(IDS).logits
    ref = copy.deepcopy(g)
    with torch.no_grad():
        ref.transformer.h[1].attn.c_proj.weight[8:16] = 0  # Conv1D (in, out): head 1's rows
    torch.testing.assert_close(got, ref(IDS).logits, atol=1e-6, rtol=0)
    assert not torch.allclose(got, g(IDS).logits)  # and it is undone afterwards
    own = tiny["own"]
    with ablate_heads(own, [(0, 0), (1, 1)]):
        got = own(IDS).logits
    ref = copy.deepcopy(own)
    with torch.no_grad():
        ref.blocks[0].attn.out_proj.weight[:, :8] = 0
        ref.blocks[1].attn.out_proj.weight[:, 8:] = 0
    torch.testing.assert_close(got, ref(IDS).logits, atol=1e-6, rtol=0)


def test_bad_arguments_name_themselves(tiny):
    with pytest.raises(ValueError, match=r"layer must be an int in \[0, 2\), got 5"):
        query_key(tiny["own"], IDS, 5, 0)
    with pytest.raises(ValueError, match=r"head must be an int in \[0, 2\), got 2"):
        query_key(tiny["own"], IDS, 0, 2)
    with pytest.raises(TypeError, match="heads must hold"), ablate_heads(tiny["own"], [3]):
        pass
    with pytest.raises(TypeError, match="inputs must be"):
        query_key(tiny["own"], [1, 2], 0, 0)
