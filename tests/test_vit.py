"""The Vision Transformer: checked against a float64 formula, captured, trained, explained."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from explore_attention.inspect import capture
from explore_attention.models.vit import VisionTransformer, ViTConfig, patchify

CKPT = Path(__file__).resolve().parents[1] / "src/explore_attention/checkpoints"


def _reference_logits(m: VisionTransformer, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    """ViT Eqs. (1)-(4), written out with plain tensor ops (no project attention code)."""
    c = m.config
    B, P = x.shape[0], c.patch_size
    G = c.image_size // P
    patches = torch.stack(  # (B, N, P*P*C) by explicit slicing, row-major over the grid
        [
            x[:, :, r * P : (r + 1) * P, q * P : (q + 1) * P].permute(0, 2, 3, 1).reshape(B, -1)
            for r in range(G)
            for q in range(G)
        ],
        dim=1,
    )
    z = patches @ m.patch_embed.weight.T + m.patch_embed.bias
    z = torch.cat([m.cls_token.expand(B, 1, -1), z], 1) + m.pos_embed
    weights = []
    for blk in m.blocks:
        h = F.layer_norm(z, (c.d_model,), blk.norm1.weight, blk.norm1.bias)
        a = blk.attn
        H, Dh = c.num_heads, c.d_model // c.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(B, -1, H, Dh).transpose(1, 2)  # noqa: B023

        q = heads(h @ a.q_proj.weight.T + a.q_proj.bias)
        k = heads(h @ a.k_proj.weight.T + a.k_proj.bias)
        v = heads(h @ a.v_proj.weight.T + a.v_proj.bias)
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(Dh), -1)
        weights.append(w)
        o = (w @ v).transpose(1, 2).reshape(B, -1, c.d_model)
        z = z + o @ a.out_proj.weight.T + a.out_proj.bias
        h = F.layer_norm(z, (c.d_model,), blk.norm2.weight, blk.norm2.bias)
        z = z + blk.mlp(h)
    y = F.layer_norm(z[:, 0], (c.d_model,), m.norm.weight, m.norm.bias)
    return m.head(y), weights


def test_forward_matches_float64_reference() -> None:
    torch.manual_seed(0)
    m = (
        VisionTransformer(
            ViTConfig(
                image_size=8,
                patch_size=2,
                in_channels=3,
                d_model=24,
                num_heads=3,
                num_layers=2,
                dropout=0.0,
            )
        )
        .double()
        .eval()
    )
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    want, want_w = _reference_logits(m, x)
    out = m(x, return_weights=True)
    got, got_w = out.logits, out.attentions["encoder"]
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-7)
    for g, w in zip(got_w, want_w):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-7)
    # the fused path used in training computes the same logits
    torch.testing.assert_close(m(x).logits, want, atol=1e-10, rtol=1e-7)
    assert m(x).attentions is None


def test_patchify_and_tokens() -> None:
    x = torch.arange(2 * 3 * 4 * 4.0).reshape(2, 3, 4, 4)
    p = patchify(x, 2)  # (2, 4, 12)
    torch.testing.assert_close(p[1, 1], x[1, :, 0:2, 2:4].permute(1, 2, 0).reshape(-1))
    m = VisionTransformer(image_size=4, patch_size=2, in_channels=3)
    assert m.tokens == ["[CLS]", "p0,0", "p0,1", "p1,0", "p1,1"]


def test_capture_equals_returned_weights() -> None:
    torch.manual_seed(1)
    m = VisionTransformer(ViTConfig(num_layers=2)).eval()
    x = torch.rand(1, 1, 8, 8)
    tr = capture(m, x, tokens=m.tokens)
    w = m(x, return_weights=True).attentions["encoder"]
    torch.testing.assert_close(tr.attentions, torch.stack([a[0] for a in w]))
    assert tr.attentions.shape == (2, 4, 17, 17) and tr.kind == "self"


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="divisible by patch_size"):
        ViTConfig(image_size=8, patch_size=3)
    with pytest.raises(ValueError, match="num_heads"):
        ViTConfig(d_model=30, num_heads=4)
    with pytest.raises(TypeError, match="ViTConfig"):
        VisionTransformer(ViTConfig(), d_model=8)
    with pytest.raises(TypeError, match="ViTConfig"):
        VisionTransformer("small")  # type: ignore[arg-type]
    assert VisionTransformer({"d_model": 8, "num_heads": 2}).config == ViTConfig(
        d_model=8, num_heads=2
    )
    m = VisionTransformer()
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        m(torch.rand(2, 3, 8, 8))
    with pytest.raises(TypeError, match=r"images must be a torch\.Tensor"):
        m([[0.0]])


@pytest.mark.slow
def test_short_training_run_learns_digits() -> None:
    from explore_attention.train import TrainConfig, train

    cfg = TrainConfig(
        steps=250,
        batch_size=64,
        lr=3e-3,
        warmup=30,
        eval_every=250,
        metric="val_accuracy",
        weight_decay=0.05,
    )
    res = train("vit-digits", cfg, progress=False)
    assert res.history[-1]["test_accuracy"] >= 0.6  # chance is 0.1


def test_shipped_digits_checkpoint_accuracy() -> None:
    from explore_attention.data.digits import load_digits_splits
    from explore_attention.tasks.vit import accuracy
    from explore_attention.train import load_checkpoint

    model, cfg = load_checkpoint(CKPT / "vit-digits")
    d = load_digits_splits(seed=cfg["split_seed"])
    assert accuracy(model, d.test_x, d.test_y) >= 0.97


def test_pointing_game_beats_random() -> None:
    from explore_attention.data.scenes import SceneConfig, generate_scenes
    from explore_attention.explain.pointing_game import pointing_game
    from explore_attention.train import load_checkpoint

    model, _ = load_checkpoint(CKPT / "vit-scenes")
    s = generate_scenes(300, seed=12345, config=SceneConfig(canvas=24), required_colour=0)
    scores = pointing_game(model, s.images, s.masks[:, 0])
    assert scores["random"] < scores["chance"] + 0.1
    for method in ("rollout", "gradient"):
        assert scores[method] >= scores["chance"] + 0.3, scores


def test_rollout_matches_loop_formula() -> None:
    from explore_attention.explain.pointing_game import rollout_batch

    torch.manual_seed(0)
    ws = [torch.rand(2, 3, 5, 5, dtype=torch.float64).softmax(-1) for _ in range(3)]
    got = rollout_batch(ws)
    for b in range(2):
        r = torch.eye(5, dtype=torch.float64)
        for w in ws:
            a = 0.5 * w[b].mean(0) + 0.5 * torch.eye(5, dtype=torch.float64)
            a = a / a.sum(-1, keepdim=True)
            r = a @ r
        torch.testing.assert_close(got[b], r, atol=1e-10, rtol=1e-7)
    try:
        from explore_attention.explain import rollout
    except ImportError:
        return
    from explore_attention.inspect.trace import AttentionTrace

    toks = [str(i) for i in range(5)]
    tr = AttentionTrace(torch.stack([w[0] for w in ws]), toks, toks, "toy", "self")
    torch.testing.assert_close(rollout(tr).double(), got[0], atol=1e-5, rtol=1e-4)


def test_tiny_hf_vit_offline(tmp_path: Path) -> None:
    from transformers import ViTConfig as HFViTConfig
    from transformers import ViTForImageClassification

    from explore_attention.models.vit_hub import _processor_class, load_hub_vit, vit_trace

    torch.manual_seed(0)
    hf_cfg = HFViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=3,
    )
    ViTForImageClassification(hf_cfg).save_pretrained(tmp_path)
    _processor_class()(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    model, proc = load_hub_vit(tmp_path)
    image = (torch.rand(40, 40, 3) * 255).to(torch.uint8).numpy()
    tr = vit_trace(model, image, proc)
    assert tr.attentions.shape == (2, 4, 17, 17)
    assert tr.tokens[0] == "[CLS]" and tr.tokens[-1] == "p3,3"
    torch.testing.assert_close(tr.attentions.sum(-1), torch.ones(2, 4, 17))
    # layer 0 recomputed from the model's own weights
    pixels = proc(images=image, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        h = model.vit.embeddings(pixels)
        lyr = model.vit.layers[0]  # transformers 5 layout
        x = lyr.layernorm_before(h)
        sa = lyr.attention
        q = sa.q_proj(x).reshape(1, 17, 4, 8).transpose(1, 2)
        k = sa.k_proj(x).reshape(1, 17, 4, 8).transpose(1, 2)
        want = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), -1)[0]
    torch.testing.assert_close(tr.attentions[0], want)


def test_hub_name_offline_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    from explore_attention.models.vit_hub import load_hub_vit

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="cannot load ViT"):
        load_hub_vit("no-such-org/no-such-vit-for-tests")
    with pytest.raises(TypeError, match="name_or_path"):
        load_hub_vit(3)


def test_gradient_relevance_matches_explain_module() -> None:
    from explore_attention.explain import gradient_relevance
    from explore_attention.explain.pointing_game import patch_relevance

    torch.manual_seed(3)
    m = VisionTransformer(
        ViTConfig(
            image_size=8,
            patch_size=2,
            in_channels=3,
            num_classes=3,
            d_model=32,
            num_layers=3,
            dropout=0.0,
        )
    ).eval()
    x = torch.rand(2, 3, 8, 8)
    got = patch_relevance(m, x, "gradient")  # (2, 16)
    for b in range(2):
        out = m(x[b : b + 1], return_weights=True)
        logits, ws = out.logits, out.attentions["encoder"]
        score = logits[0, logits[0].argmax()]
        grads = torch.autograd.grad(score, ws)  # independent of retain_grad
        R = gradient_relevance(torch.stack([w[0] for w in ws]), torch.stack([g[0] for g in grads]))
        torch.testing.assert_close(got[b], R[0, 1:], atol=1e-5, rtol=1e-4)
