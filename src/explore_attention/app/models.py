"""Which models the Attention Explorer offers, and a small cache of the ones loaded.

The list holds the bundled all-MiniLM-L6-v2 and every Hugging Face-format folder (one with a
``config.json``) under ``explore_attention/checkpoints/``; the user may also type any hub name or
local folder, loaded with :func:`explore_attention.inspect.load_model`.
"""

from __future__ import annotations

import json
import threading
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_ID", "ModelCache", "available_models", "checkpoints_dir", "is_hf_folder"]

DEFAULT_ID = "default"


def checkpoints_dir() -> Path:
    return Path(str(resources.files("explore_attention").joinpath("checkpoints")))


def available_models() -> list[dict[str, str]]:
    """``[{"id", "label", "kind": "text"}]``: the default first, then shipped HF checkpoints.

    (The image checkpoints are listed by :func:`explore_attention.app.images.image_models`.)
    """
    from ..inspect import DEFAULT_MODEL_NAME

    out = [{"id": DEFAULT_ID, "label": f"{DEFAULT_MODEL_NAME} (bundled, encoder)", "kind": "text"}]
    root = checkpoints_dir()
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if is_hf_folder(p)):
            label = f"{folder.name} (shipped checkpoint)"
            out.append({"id": str(folder), "label": label, "kind": "text"})
    return out


def is_hf_folder(folder: Path) -> bool:
    """A Hugging Face-format model folder: its ``config.json`` names a ``model_type``.

    (The project's own checkpoints also have a ``config.json``, without ``model_type``.)
    """
    cfg = folder / "config.json"
    if not cfg.is_file():
        return False
    try:
        return "model_type" in json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


class ModelCache:
    """Load each model once; keep at most ``size`` of them (least recently used goes)."""

    def __init__(self, size: int = 3, device: Any = "cpu") -> None:
        self.size = size
        self.device = device  # where loaded models run (`explore-attention demo --device`)
        self._models: dict[str, tuple[Any, Any]] = {}
        self.lock = threading.Lock()  # one forward pass at a time; models are not thread-safe

    def get(self, model_id: str) -> tuple[Any, Any]:
        """``(model, tokenizer)`` for ``model_id`` ("default", a folder, or a hub name).

        Raises ``ValueError`` with a message fit for the page when it cannot be loaded.
        """
        from ..inspect import load_model

        key = model_id.strip() or DEFAULT_ID
        if key in self._models:
            self._models[key] = self._models.pop(key)  # most recently used last
            return self._models[key]
        try:
            model, tokenizer = load_model(None if key == DEFAULT_ID else key)
            loaded = (model.to(self.device), tokenizer)
        except (ValueError, TypeError) as err:  # load_model's messages name the model
            raise ValueError(str(err)) from err
        except Exception as err:  # a broken folder or hub error must not stop the server
            raise ValueError(f"cannot load model {key!r}: {type(err).__name__}: {err}") from err
        self._models[key] = loaded
        while len(self._models) > self.size:
            self._models.pop(next(iter(self._models)))
        return loaded
