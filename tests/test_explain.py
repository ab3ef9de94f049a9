"""explain: rollout, flow, gradient relevance and faithfulness, against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TOL
from torch import nn

from explore_attention import explain
from explore_attention.attention.multihead import MultiHeadAttention
from explore_attention.inspect.trace import AttentionTrace
from explore_attention.models.output import ModelOutput


def random_attn(layers=3, heads=4, L=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(layers, heads, L, L, generator=g) * 2, dim=-1)


def numpy_rollout(A: np.ndarray, fuse) -> np.ndarray:
    """Abnar & Zuidema 2020 (arXiv:2005.00928), written independently in numpy float64."""
    n = A.shape[-1]
    R = np.eye(n)
    for layer in range(A.shape[0]):
        a = fuse(A[layer], axis=0) * 0.5 + np.eye(n) * 0.5
        a = a / a.sum(axis=1, keepdims=True)
        R = a.dot(R)
    return R


@pytest.mark.parametrize("fusion,np_fuse", [("mean", np.mean), ("max", np.max), ("min", np.min)])
def test_rollout_matches_numpy_float64(fusion, np_fuse):
    A = random_attn()
    trace = AttentionTrace(A, list("abcdefg"), list("abcdefg"), "toy", "self")
    ours = explain.rollout(trace, head_fusion=fusion)
    ref = torch.from_numpy(numpy_rollout(A.double().numpy(), np_fuse)).float()
    torch.testing.assert_close(ours, ref, **TOL[torch.float32])
    torch.testing.assert_close(ours.sum(-1), torch.ones(7), **TOL[torch.float32])


def test_rollout_one_layer_is_half_attention_plus_half_identity():
    A = random_attn(layers=1, heads=1, L=5)
    torch.testing.assert_close(
        explain.rollout(A), 0.5 * A[0, 0] + 0.5 * torch.eye(5), **TOL[torch.float32]
    )


def test_rollout_causal_stays_lower_triangular():
    A = random_attn(L=6) * torch.tril(torch.ones(6, 6))
    A = A / A.sum(-1, keepdim=True)
    R = explain.rollout(AttentionTrace(A, list("abcdef"), list("abcdef"), "toy", "causal"))
    assert torch.all(torch.triu(R, diagonal=1) == 0)


def test_rollout_bad_input():
    A = random_attn(L=4)
    cross = AttentionTrace(A[..., :3], list("abcd"), list("xyz"), "toy", "cross")
    with pytest.raises(ValueError, match="cross"):
        explain.rollout(cross)
    with pytest.raises(ValueError, match="head_fusion"):
        explain.rollout(A, head_fusion="median")
    with pytest.raises(TypeError, match="AttentionTrace or a Tensor"):
        explain.rollout(A.numpy())
    with pytest.raises(ValueError, match="start_layer"):
        explain.rollout(A, start_layer=3)


def test_flow_hand_computed_two_layers():
    # Two tokens, two layers, residual off. Paths from input j to output i go through the middle
    # node k, one edge per layer, so max-flow = sum_k min(A1[k, j], A2[i, k]).
    A1 = torch.tensor([[0.9, 0.1], [0.3, 0.7]])
    A2 = torch.tensor([[0.6, 0.4], [0.2, 0.8]])
    A = torch.stack([A1, A2])[:, None]  # (layers=2, heads=1, 2, 2)
    # By hand: i=0,j=0: min(.9,.6)+min(.3,.4)=.9 ; i=0,j=1: min(.1,.6)+min(.7,.4)=.5
    #          i=1,j=0: min(.9,.2)+min(.3,.8)=.5 ; i=1,j=1: min(.1,.2)+min(.7,.8)=.8
    expected = torch.tensor([[0.9, 0.5], [0.5, 0.8]])
    torch.testing.assert_close(
        explain.flow(A, residual=False, normalize=False), expected, **TOL[torch.float32]
    )


def test_flow_two_layers_matches_min_cut_formula_random():
    A = random_attn(layers=2, heads=3, L=5, seed=3)
    fused = A.double().mean(1)
    fused = 0.5 * fused + 0.5 * torch.eye(5, dtype=torch.float64)
    fused = fused / fused.sum(-1, keepdim=True)
    ref = torch.zeros(5, 5, dtype=torch.float64)
    for i in range(5):
        for j in range(5):
            ref[i, j] = sum(min(fused[0, k, j], fused[1, i, k]) for k in range(5))
    torch.testing.assert_close(explain.flow(A, normalize=False), ref.float(), **TOL[torch.float32])
    # normalised as in the authors' release: each output row sums to 1
    norm = ref / ref.sum(-1, keepdim=True)
    torch.testing.assert_close(explain.flow(A), norm.float(), **TOL[torch.float32])
    torch.testing.assert_close(
        explain.flow(A, queries=[2])[0], norm[2].float(), **TOL[torch.float32]
    )
    with pytest.raises(ValueError, match="queries"):
        explain.flow(A, queries=[5])


def test_flow_one_layer_equals_capacities():
    A = random_attn(layers=1, heads=2, L=4)
    torch.testing.assert_close(
        explain.flow(A, residual=False, normalize=False), A.mean(1)[0], **TOL[torch.float32]
    )


def numpy_chefer(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Chefer et al. 2021 (arXiv:2103.15679) self-attention rule, numpy float64."""
    R = np.eye(A.shape[-1])
    for a, g in zip(A, G):
        bar = np.maximum(a * g, 0).mean(axis=0)
        R = R + bar.dot(R)
    return R


def test_gradient_relevance_matches_numpy():
    A = random_attn(seed=1)
    G = torch.randn(A.shape, generator=torch.Generator().manual_seed(2))
    ref = numpy_chefer(A.double().numpy(), G.double().numpy())
    torch.testing.assert_close(
        explain.gradient_relevance(A, G), torch.from_numpy(ref).float(), **TOL[torch.float32]
    )
    with pytest.raises(ValueError, match="grads shape"):
        explain.gradient_relevance(A, G[:, :, :3])


class OneLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.mha = MultiHeadAttention(8, 2)

    def forward(self, x, *, return_weights=False):
        a = self.mha(x, return_weights=return_weights)
        return ModelOutput(
            a.output, attentions={"encoder": (a.weights,)} if return_weights else None
        )


def test_attention_gradients_of_our_model_match_analytic_gradient():
    torch.manual_seed(0)
    model = OneLayer().double()
    x = torch.randn(1, 5, 8, dtype=torch.float64)
    c = torch.randn(8, dtype=torch.float64)
    A, G = explain.attention_gradients(model, x, lambda out: (out.logits[0, 0] * c).sum())
    # out = concat_h(A_h V_h) W_o^T + b, so dS/dA_h[i, j] = [i == 0] (c W_o)_h . V_h[j].
    m = model.mha
    V = (x[0] @ m.v_proj.weight.T + m.v_proj.bias).view(5, 2, 4).transpose(0, 1)  # (H, L, Dh)
    cw = (c @ m.out_proj.weight).view(2, 4)  # (H, Dh)
    ref = torch.zeros(1, 2, 5, 5, dtype=torch.float64)
    ref[0, :, 0, :] = torch.einsum("hd,hjd->hj", cw, V)
    torch.testing.assert_close(G, ref.float(), **TOL[torch.float32])
    with torch.no_grad():
        w = m(x).weights
    torch.testing.assert_close(A, w.float(), **TOL[torch.float32])


def test_attention_gradients_hf_model_gives_its_attentions():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
        attn_implementation="eager",
    )
    model = BertForSequenceClassification(cfg).eval()
    ids = torch.randint(0, 50, (1, 6))
    A, G = explain.attention_gradients(model, {"input_ids": ids}, lambda o: o.logits[0, 1])
    ref = model(input_ids=ids, output_attentions=True).attentions
    torch.testing.assert_close(A, torch.stack([a[0] for a in ref]), **TOL[torch.float32])
    assert A.shape == G.shape == (2, 2, 6, 6)
    assert G.abs().sum() > 0
    with pytest.raises(TypeError, match="dict"):
        explain.attention_gradients(model, ids, lambda o: o.logits[0, 1])


def test_deletion_insertion_curves_on_additive_score():
    w = torch.tensor([0.0, 0.5, 0.1, 0.3, 0.1])  # token 0 is fixed ([CLS])
    fixed = torch.tensor([True, False, False, False, False])

    def score(keep):
        return float((w * keep).sum())

    dele = explain.deletion_curve(score, w, fixed=fixed)
    ins = explain.insertion_curve(score, w, fixed=fixed)
    np.testing.assert_allclose(dele, [1.0, 0.5, 0.2, 0.1, 0.0], atol=1e-12)
    np.testing.assert_allclose(ins, [0.0, 0.5, 0.8, 0.9, 1.0], atol=1e-12)
    # trapezoid on x = 0, .25, .5, .75, 1
    assert explain.auc(dele) == pytest.approx((1.5 + 0.7 + 0.3 + 0.1) / 2 / 4)
    assert explain.auc(ins) == pytest.approx((0.5 + 1.3 + 1.7 + 1.9) / 2 / 4)
    # the reversed ranking is less faithful on both curves
    assert explain.auc(explain.deletion_curve(score, -w, fixed=fixed)) > explain.auc(dele)
    assert explain.auc(explain.insertion_curve(score, -w, fixed=fixed)) < explain.auc(ins)
    assert explain.top_k_hit(w, torch.tensor([False, True, False, False, False]))
    assert not explain.top_k_hit(w, torch.tensor([False, False, False, True, False]))


@pytest.mark.slow
def test_methods_beat_random_on_task_with_known_decisive_tokens():
    from explore_attention.explain.synthetic import MarkerTask, evaluate_methods, train_classifier

    torch.set_num_threads(1)
    task = MarkerTask()
    model, acc = train_classifier(task, steps=300, progress=False)
    assert acc > 0.95, f"classifier did not learn the task (accuracy {acc:.3f})"
    res = evaluate_methods(model, task, n=60, curves=False, progress=False)
    chance = 1 / (task.length - 1)
    assert res["random"]["top1"] < chance + 0.15
    for method in ("raw attention", "rollout", "flow", "gradient (Chefer)"):
        assert res[method]["top1"] > chance + 0.35, (method, res[method], chance)
    curves = evaluate_methods(model, task, n=15, seed=7, progress=False)
    for method in ("rollout", "flow"):
        assert curves[method]["deletion_auc"] < curves["random"]["deletion_auc"] - 0.1
        assert curves[method]["insertion_auc"] > curves["random"]["insertion_auc"] + 0.1
