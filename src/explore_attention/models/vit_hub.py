"""A Hugging Face Vision Transformer by name, and one image's attention as an AttentionTrace.

``load_hub_vit("google/vit-base-patch16-224")`` works online (or from the local Hugging Face
cache); offline it fails at once with a clear message. A local folder written with
``save_pretrained`` (model + image processor) loads the same way, which is how the tests run this
code offline on a tiny randomly initialised ``transformers.ViTConfig``.

:func:`vit_trace` runs one image through either a Hugging Face ViT (``output_attentions=True``,
eager attention, since the SDPA kernel returns no weights in transformers 5) or the project's
:class:`~explore_attention.models.vit.VisionTransformer` (through
:func:`explore_attention.inspect.capture`), and labels the tokens the same way:
``["[CLS]", "p0,0", "p0,1", …]``, so every image view draws both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..inspect.hf import eager_attention
from ..inspect.loading import hub_offline
from ..inspect.trace import AttentionTrace
from .vit import VisionTransformer, patch_token_names

__all__ = ["DEFAULT_HUB_VIT", "load_hub_vit", "vit_trace"]

DEFAULT_HUB_VIT = "google/vit-base-patch16-224"


def _processor_class() -> Any:
    try:  # transformers 5 without torchvision: the PIL processor, without the fallback warning
        from transformers import ViTImageProcessorPil

        return ViTImageProcessorPil
    except ImportError:  # pragma: no cover - older transformers
        from transformers import ViTImageProcessor

        return ViTImageProcessor


def load_hub_vit(name_or_path: str | os.PathLike = DEFAULT_HUB_VIT) -> tuple[nn.Module, Any]:
    """Load ``(ViTForImageClassification, image processor)`` in eval mode, eager attention.

    Raises ``ValueError`` when a hub name cannot be reached (offline and not cached) and
    ``TypeError`` for a name that is not a string or path.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"name_or_path must be a hub name or a folder, got {type(name_or_path).__name__}"
        )
    from transformers import ViTForImageClassification

    source = str(name_or_path)
    local = Path(source).expanduser()
    local_only = local.is_dir() or hub_offline()
    try:
        model = ViTForImageClassification.from_pretrained(
            str(local) if local.is_dir() else source,
            attn_implementation="eager",
            local_files_only=local_only,
        )
        processor = _processor_class().from_pretrained(
            str(local) if local.is_dir() else source, local_files_only=local_only
        )
    except OSError as err:
        how = "the hub is switched off (HF_HUB_OFFLINE=1)" if hub_offline() else "no network?"
        raise ValueError(
            f"cannot load ViT {source!r}: not a local folder, not cached, and {how}. Offline, "
            "pass a folder written with save_pretrained, or use the project's own ViT "
            "(explore_attention.models.vit)."
        ) from err
    return model.eval(), processor


def vit_trace(
    model: nn.Module, image: Any, processor: Any = None, *, model_name: str | None = None
) -> AttentionTrace:
    """One image's self-attention in every layer and head: ``(layers, heads, 1 + N, 1 + N)``.

    Args:
        model: a Hugging Face ``ViTForImageClassification`` / ``ViTModel`` or the project's
            :class:`VisionTransformer`.
        image: a tensor ``(C, H, W)`` / ``(1, C, H, W)`` already in the model's input format, or
            (with ``processor``) anything the image processor accepts (PIL image, ``(H, W, C)``
            uint8 array).
        processor: a Hugging Face image processor (resizes and normalises ``image``).
    """
    if processor is not None:
        pixels = processor(images=image, return_tensors="pt")["pixel_values"]
    elif isinstance(image, Tensor):
        pixels = image if image.dim() == 4 else image.unsqueeze(0)  # (1, C, H, W)
    else:
        raise TypeError(
            f"image must be a tensor (C, H, W) unless a processor is given, got "
            f"{type(image).__name__}"
        )
    if pixels.dim() != 4 or pixels.shape[0] != 1:
        raise ValueError(f"one image at a time: expected (1, C, H, W), got {tuple(pixels.shape)}")
    if isinstance(model, VisionTransformer):
        from ..inspect import capture

        return capture(
            model, pixels, tokens=model.tokens, model_name=model_name or "VisionTransformer (ours)"
        )
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) != "vit":
        raise TypeError(
            f"model must be a Hugging Face ViT or a VisionTransformer, got {type(model).__name__}"
        )
    with eager_attention(model), torch.no_grad():
        out = model(
            pixel_values=pixels.to(next(model.parameters()).device),
            output_attentions=True,
            return_dict=True,
        )
    stacked = torch.stack([a[0] for a in out.attentions])  # (layers, heads, 1 + N, 1 + N)
    grid = cfg.image_size // cfg.patch_size
    tokens = patch_token_names(grid)
    name = model_name or getattr(model, "name_or_path", "") or type(model).__name__
    return AttentionTrace(
        stacked,
        tokens,
        tokens,
        model_name=str(name),
        kind="self",
        meta={"source": "huggingface", "class": type(model).__name__},
    )
