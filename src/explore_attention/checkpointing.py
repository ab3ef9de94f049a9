"""Checkpoints of the project's models: ``model.safetensors`` + ``config.json`` (+ the optimizer
state), written atomically so a crash or a second run never leaves a half-written or silently
replaced checkpoint; the config names the model class, so :func:`load_checkpoint` rebuilds it."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["load_checkpoint", "load_optimizer", "optimizer_tensors", "save_checkpoint"]


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], list]:
    sd = opt.state_dict()
    flat = {
        f"{i}.{k}": (v if isinstance(v, Tensor) else torch.tensor(v)).detach().cpu().contiguous()
        for i, st in sd["state"].items()
        for k, v in st.items()
    }
    return flat, sd["param_groups"]


def load_optimizer(opt: torch.optim.Optimizer, flat: dict[str, Tensor], groups: list) -> None:
    state: dict[int, dict[str, Tensor]] = {}
    for key, v in flat.items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": groups})


@contextmanager
def atomic_folder(
    path: str | Path, *, overwrite: bool = False, what: str = "folder"
) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to fill; on success it replaces ``path`` in one
    rename, so a crash never leaves a half-written folder (an existing one is moved aside first
    and deleted only after the new one is in place). An existing ``path`` raises
    ``FileExistsError`` unless ``overwrite=True``; on failure the temporary folder is removed."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{what} {path} exists; pass overwrite=True (--overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes it private; a saved model is meant to be shared
        for f in tmp.rglob("*"):
            f.chmod(0o755 if f.is_dir() else 0o644)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    config: dict,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model.safetensors`` + ``config.json`` (+ ``optimizer.safetensors``) atomically.

    Everything is written to a temporary sibling folder that is then renamed into place, so a
    crash never leaves a half-written checkpoint. An existing ``path`` raises
    ``FileExistsError`` unless ``overwrite=True``.
    """
    from safetensors.torch import save_file, save_model

    with atomic_folder(path, overwrite=overwrite, what="checkpoint") as tmp:
        save_model(model, str(tmp / "model.safetensors"))  # handles tied weights
        config = dict(config)
        if optimizer is not None:
            flat, groups = optimizer_tensors(optimizer)
            save_file(flat, str(tmp / "optimizer.safetensors"))
            config["optimizer_param_groups"] = groups
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return path


def _model_class(spec: str) -> type:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def load_checkpoint(
    path: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict]:
    """Rebuild a model saved by :func:`save_checkpoint`; return ``(model, config)``."""
    from safetensors.torch import load_model

    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file() or not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"{path} is not a checkpoint (needs config.json + model.safetensors)"
        )
    config = json.loads(cfg_file.read_text())
    model = _model_class(config["model_class"])(**config["model_config"])
    load_model(model, str(path / "model.safetensors"), device=str(device))
    return model.to(device).eval(), config
