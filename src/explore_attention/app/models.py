"""Which models the Attention Explorer offers, by *name*, and a cache of the loaded ones.

Model ids are names, never server paths: ``"default"`` (the bundled all-MiniLM-L6-v2), the name
of every Hugging Face-format folder under ``explore_attention/checkpoints/`` (one whose
``config.json`` names a ``model_type``), the folder given to ``explore-attention demo --model``
(listed by its folder name), or a Hugging Face hub name (``org/name``; offline it loads only from
the local cache). A path typed into the page is refused: folders are chosen on the command line.

Each model has its own lock, so a slow request on one model does not hold up another.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

__all__ = [
    "DEFAULT_ID",
    "KIND_LABELS",
    "ModelCache",
    "available_models",
    "checkpoints_dir",
    "hf_kind",
    "is_hf_folder",
]

DEFAULT_ID = "default"
# kind -> words shown in the model list
KIND_LABELS = {
    "encoder": "encoder",
    "causal": "causal LM",
    "seq2seq": "encoder-decoder",
    "vit": "image",
    "multimodal": "image+text",
}
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def checkpoints_dir() -> Path:
    return Path(str(resources.files("explore_attention").joinpath("checkpoints")))


def _config(folder: Path) -> dict | None:
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) else None


def is_hf_folder(folder: Path) -> bool:
    """A Hugging Face-format model folder: its ``config.json`` names a ``model_type``.

    (The project's own checkpoints also have a ``config.json``, without ``model_type``.)
    """
    cfg = _config(folder)
    return cfg is not None and "model_type" in cfg


def hf_kind(config: Any) -> str:
    """``"seq2seq"``, ``"causal"`` or ``"encoder"`` for a Hugging Face config (object or dict)."""
    from ..inspect.loading import is_causal_config

    if isinstance(config, dict):
        config = SimpleNamespace(**config)
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    return "causal" if is_causal_config(config) else "encoder"


@dataclass(frozen=True)
class Entry:
    id: str  # what the page sends
    source: str | None  # what load_model gets: None (bundled), a folder, or a hub name
    kind: str  # "encoder" | "causal" | "seq2seq"

    def listing(self, note: str) -> dict[str, str]:
        return {
            "id": self.id,
            "label": f"{self.id} ({note}, {KIND_LABELS[self.kind]})",
            "kind": self.kind,
        }


def _folder_entry(folder: Path) -> Entry:
    return Entry(folder.name, str(folder), hf_kind(_config(folder) or {}))


def shipped_entries() -> list[Entry]:
    root = checkpoints_dir()
    if not root.is_dir():
        return []
    return [_folder_entry(p) for p in sorted(root.iterdir()) if is_hf_folder(p)]


def available_models(extra: Path | None = None) -> list[dict[str, str]]:
    """``[{"id", "label", "kind"}]``: the ``--model`` folder, the default, shipped checkpoints.

    (The image checkpoints are listed by :func:`explore_attention.app.images.image_models`.)
    """
    from ..inspect import DEFAULT_MODEL_NAME

    out = []
    if extra is not None:
        out.append(_folder_entry(extra).listing("--model"))
    name = DEFAULT_MODEL_NAME.split("/")[-1]
    out.append(Entry(DEFAULT_ID, None, "encoder").listing(f"bundled {name}"))
    out += [e.listing("shipped checkpoint") for e in shipped_entries()]
    return out


class ModelCache:
    """Resolve names, load each model once, keep at most ``size`` (least recently used goes).

    ``extra`` is the folder given with ``--model`` (offered under its folder name).
    """

    def __init__(self, size: int = 3, extra: Path | None = None, device: Any = "cpu") -> None:
        self.size = size
        self.extra = extra
        self.device = device  # where loaded models run (`explore-attention demo --device`)
        self._models: dict[str, tuple[Any, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()  # protects the two dicts, never held during a forward

    def entries(self) -> dict[str, Entry]:
        found = {DEFAULT_ID: Entry(DEFAULT_ID, None, "encoder")}
        found.update({e.id: e for e in shipped_entries()})
        if self.extra is not None:
            e = _folder_entry(self.extra)
            found[e.id] = e
        return found

    def resolve(self, model_id: Any) -> Entry:
        """The entry for a listed name or a hub name; ``ValueError`` listing the choices."""
        entries = self.entries()
        choices = sorted(entries)
        if not isinstance(model_id, str):
            raise ValueError(
                f"model must be a model name (one of {choices}), got {type(model_id).__name__} "
                f"{model_id!r}"
            )
        key = model_id.strip() or DEFAULT_ID
        if key in entries:
            return entries[key]
        if not _HUB_NAME.match(key) or ".." in key:
            raise ValueError(
                f"unknown model {model_id!r}: models are chosen by name, one of {choices} "
                "(or a Hugging Face hub name such as 'gpt2'); a local folder is given when "
                "starting the app: explore-attention demo --model FOLDER"
            )
        return Entry(key, key, "unknown")

    def lock(self, model_id: str) -> threading.Lock:
        """The lock of one model (created on first use)."""
        with self._guard:
            return self._locks.setdefault(model_id, threading.Lock())

    def get(self, entry: Entry) -> tuple[Any, Any]:
        """``(model, tokenizer)``; call with ``self.lock(entry.id)`` held.

        Raises ``ValueError`` with a message fit for the page when it cannot be loaded.
        """
        from ..inspect import load_model

        with self._guard:
            if entry.id in self._models:
                self._models[entry.id] = self._models.pop(entry.id)  # most recently used last
                return self._models[entry.id]
        try:
            model, tokenizer = load_model(entry.source)
            loaded = (model.to(self.device), tokenizer)
        except Exception as err:  # a broken folder or an unknown hub name must not stop us
            choices = sorted(self.entries())
            if entry.kind == "unknown":  # a name that is not listed
                raise ValueError(
                    f"unknown model {entry.id!r}: choose one of {choices}. (A Hugging Face hub "
                    "name works only when the hub is reachable or the model is in the local "
                    "cache; here it could not be loaded.)"
                ) from err
            raise ValueError(f"cannot load model {entry.id!r}: {err}") from err
        with self._guard:
            self._models[entry.id] = loaded
            while len(self._models) > self.size:
                self._models.pop(next(iter(self._models)))
        return loaded
