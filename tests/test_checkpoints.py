"""Every shipped checkpoint loads from its ``{"config": asdict(config)}`` and computes what it
computed before the config-name changes.

``data/checkpoint_outputs.safetensors`` holds, per checkpoint, fixed inputs and the logits the
code of commit 56994dc (before ``cfg``/``n_head``/``block_size`` became ``config``/``num_heads``/
``max_len`` and ``forward`` returned ``ModelOutput``) gave for them. Rewrite it only when a
checkpoint is retrained: ``python tests/test_checkpoints.py``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from explore_attention.train import load_checkpoint

CKPT = Path(__file__).parents[1] / "src/explore_attention/checkpoints"
REFERENCE = Path(__file__).parent / "data/checkpoint_outputs.safetensors"
NAMES = sorted(  # our checkpoint format; Hugging Face folders (a "model_type") are tested apart
    p.parent.name
    for p in CKPT.glob("*/config.json")
    if "model_type" not in json.loads(p.read_text())
)


def _inputs(ref: dict, name: str) -> tuple:
    n = sum(k.startswith(f"{name}/input") for k in ref)
    return tuple(ref[f"{name}/input{i}"] for i in range(n))


@pytest.mark.parametrize("name", NAMES)
def test_shipped_checkpoint_config_and_outputs(name: str) -> None:
    saved = json.loads((CKPT / name / "config.json").read_text())
    assert list(saved["model_config"]) == ["config"]
    model, _ = load_checkpoint(CKPT / name)
    assert saved["model_config"]["config"] == dataclasses.asdict(model.config)
    ref = load_file(REFERENCE)
    with torch.no_grad():
        out = model(*_inputs(ref, name))
    torch.testing.assert_close(out.logits, ref[f"{name}/logits"], atol=1e-5, rtol=1e-5)
    assert out.attentions is None


def test_reference_covers_every_checkpoint() -> None:
    assert sorted({k.split("/")[0] for k in load_file(REFERENCE)}) == NAMES


if __name__ == "__main__":  # regenerate the reference after retraining a checkpoint
    from safetensors.torch import save_file

    ref = load_file(REFERENCE)
    for name in NAMES:
        model, _ = load_checkpoint(CKPT / name)
        with torch.no_grad():
            ref[f"{name}/logits"] = model(*_inputs(ref, name)).logits.contiguous()
    save_file(ref, REFERENCE)
