"""Image models in the Attention Explorer: the shipped ViTs and the image+text scene QA model.

``POST /api/image`` runs one example through a checkpoint saved by
:func:`explore_attention.train.save_checkpoint` whose ``task`` is ``vit-digits``, ``vit-scenes``
or ``multimodal-scenes``, and returns what the page draws:

* a ViT — the image, the predicted class with its probability and the true label, the class
  token's attention over the patches in every layer and head (its row of the
  ``(layers, heads, 1 + N, 1 + N)`` trace of the same forward call that gives the prediction),
  attention rollout (:func:`explore_attention.explain.rollout`, Abnar & Zuidema 2020) and Chefer
  et al.'s (2021) gradient relevance (:func:`explore_attention.explain.gradient_relevance`) for
  the predicted class, each read at the class token's row and laid out as a ``G × G`` grid;
* the scene QA model — the image, the question's words, the answer, and every word's
  cross-attention over the patches ``(layers, heads, words, G, G)``.

Examples are chosen by ``index``: the digits' held-out test split (the checkpoint's
``split_seed``), or a fresh scene drawn with seed ``SCENE_SEED_BASE + index`` (far from the seeds
the models were trained and tested on). Every bad argument raises ``ValueError`` naming the
argument, what was given and what was expected; the server turns it into ``400 {"error": ...}``.
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from torch import Tensor

from .models import checkpoints_dir

__all__ = [
    "IMAGE_TASKS",
    "SCENE_SEED_BASE",
    "ImageModels",
    "ImageRequest",
    "compute_image",
    "image_models",
    "image_task",
    "lookup",
]

# checkpoint task -> what the page shows ("vit": one image classifier, "multimodal": words → image)
IMAGE_TASKS = {"vit-digits": "vit", "vit-scenes": "vit", "multimodal-scenes": "multimodal"}
SCENE_SEED_BASE = 1_000_000  # scene ``index`` is drawn with seed SCENE_SEED_BASE + index
NUM_SCENES = 1_000_000  # scene indices are 0 .. NUM_SCENES - 1
DECIMALS = 6  # attention values are rounded to this many decimals in the JSON
SCENE_WHAT = f"a fresh scene, drawn with seed {SCENE_SEED_BASE} + index"


class ImageRequest(BaseModel):
    """The body of ``POST /api/image``; fields are checked by :func:`compute_image`."""

    model: Any = ""  # an image checkpoint: its folder, or its name ("vit-digits")
    index: Any = 0  # which example: a digits test-split index, or a scene number (multimodal:
    # None = the first scene the model answers correctly, the page's first example)
    question: Any = None  # multimodal only: the question (None or "" = the scene's own)


def image_task(folder: Path) -> str | None:
    """The checkpoint's ``task`` if ``folder`` holds one of the image checkpoints, else None."""
    cfg = Path(folder) / "config.json"
    if not cfg.is_file():
        return None
    try:
        task = json.loads(cfg.read_text(encoding="utf-8")).get("task")
    except (OSError, ValueError, AttributeError):
        return None
    return task if task in IMAGE_TASKS else None


def image_models() -> list[dict[str, str]]:
    """``[{"id", "label", "kind"}]`` for the image checkpoints shipped in ``checkpoints/``."""
    root = checkpoints_dir()
    out = []
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            task = image_task(folder)
            if task is not None:
                kind = IMAGE_TASKS[task]
                what = "shipped ViT, image" if kind == "vit" else "shipped image+text"
                out.append({"id": folder.name, "label": f"{folder.name} ({what})", "kind": kind})
    return out


def _resolve(model: Any, *, allow_folder: bool = False) -> tuple[Path, str]:
    """``(folder, task)`` of the image checkpoint named by ``model``.

    Requests name a shipped checkpoint; ``allow_folder`` (the ``--model`` option) also takes a
    folder.
    """
    names = sorted(m["id"] for m in image_models())
    expected = f"one of the image checkpoints {names}"
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"model must be {expected}, got {model!r}")
    key = model.strip()
    folder = checkpoints_dir() / key if key in names else None
    if folder is None and allow_folder and Path(key).expanduser().is_dir():
        folder = Path(key).expanduser()
    task = None if folder is None else image_task(folder)
    if task is None:
        raise ValueError(f"model must be {expected}, got {model!r}")
    return folder, task


def lookup(model: Any) -> tuple[Path, str] | None:
    """``(folder, task)`` if ``model`` names an image checkpoint or folder, else None."""
    try:
        return _resolve(model, allow_folder=True)
    except ValueError:
        return None


def _index(index: Any, n: int, what: str) -> int:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise ValueError(f"index must be an integer in [0, {n - 1}] ({what}), got {index!r}")
    return index


class ImageModels:
    """Loaded image checkpoints (they are small: all of them stay loaded), a lock per model."""

    def __init__(self) -> None:
        self._loaded: dict[str, tuple[Any, dict[str, Any]]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, folder: Path) -> threading.Lock:
        """The lock of one checkpoint: one forward pass at a time per model."""
        with self._guard:
            return self._locks.setdefault(str(Path(folder).resolve()), threading.Lock())

    def get(self, folder: Path) -> tuple[Any, dict[str, Any]]:
        """``(model, config)`` from :func:`explore_attention.train.load_checkpoint`."""
        from ..train import load_checkpoint

        key = str(Path(folder).resolve())
        if key not in self._loaded:
            try:
                self._loaded[key] = load_checkpoint(folder)
            except Exception as err:  # a broken folder must not stop the server
                raise ValueError(
                    f"cannot load image checkpoint {str(folder)!r}: {type(err).__name__}: {err}"
                ) from err
        return self._loaded[key]


@lru_cache(maxsize=2)
def _digits(split_seed: int) -> tuple[Tensor, Tensor]:
    from ..data.digits import load_digits_splits

    d = load_digits_splits(seed=split_seed)
    return d.test_x, d.test_y


def _rgb(image: Tensor) -> list:
    """``(C, H, W)`` in [0, 1] → nested ``(H, W, 3)`` ints 0..255 (grey repeated), for Plotly."""
    x = image.detach().float().clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)  # (3, H, W)
    return (x.permute(1, 2, 0) * 255).round().to(torch.uint8).tolist()  # (H, W, 3)


def _grids(rows: Tensor) -> list:
    """Attention rows over the keys ``(..., Lk)`` → patch grids ``(..., G, G)``, rounded."""
    from ..viz.image import patch_layout

    start, g = patch_layout(rows.shape[-1])
    grid = rows[..., start:].reshape(*rows.shape[:-1], g, g)  # (..., G, G) row-major patches
    return grid.double().round(decimals=DECIMALS).tolist()


def compute_image(req: ImageRequest, store: ImageModels) -> dict[str, Any]:
    """The JSON answer for one image request; raises ``ValueError`` with a message for the page."""
    folder, task = _resolve(req.model)
    with store.lock(folder):
        model, cfg = store.get(folder)
        if IMAGE_TASKS[task] == "vit":
            return _vit(model, cfg, task, folder.name, req)
        return _multimodal(model, cfg, folder.name, req)


def _vit(model: Any, cfg: dict[str, Any], task: str, name: str, req: ImageRequest) -> dict:
    from .. import explain
    from ..inspect import trace_from_output

    if req.question not in (None, ""):
        raise ValueError(f"question is only for multimodal-scenes; {name} takes none")
    if task == "vit-digits":
        test_x, test_y = _digits(int(cfg.get("split_seed", 0)))
        i = _index(req.index, len(test_y), "a digit of the held-out test split")
        image, truth = test_x[i], int(test_y[i])
        labels = [str(c) for c in range(10)]
        about = f"held-out test digit #{i} of {len(test_y)}"
    else:
        from ..data.scenes import SceneConfig, generate_scenes
        from ..tasks.vit import SCENES_CANVAS

        i = _index(req.index, NUM_SCENES, SCENE_WHAT)
        s = generate_scenes(
            1, seed=SCENE_SEED_BASE + i, config=SceneConfig(canvas=SCENES_CANVAS), required_colour=0
        )
        image, truth = s.images[0], int(s.shapes[0, 0])
        labels = list(cfg.get("labels", []))
        about = f"{cfg.get('question', '')} Scene #{i}: " + "; ".join(s.describe(0))
    x = image[None]  # (1, C, H, W)
    with torch.enable_grad():  # one call: the prediction, the weights and their gradients
        out = model(x, return_weights=True)
        logits, weights = out.logits, out.attentions["encoder"]
        pred = int(logits[0].argmax())
        grads = torch.autograd.grad(logits[0, pred], weights)
    trace = trace_from_output(
        out, tokens=model.tokens, model_name=name
    )  # (layers, heads, 1+N, 1+N)
    A = trace.attentions  # (layers, heads, 1 + N, 1 + N)
    G = torch.stack([g[0] for g in grads])  # (layers, heads, 1 + N, 1 + N)
    probs = torch.softmax(logits[0].detach(), -1)
    return {
        "kind": "vit",
        "model_name": name,
        "about": about,
        "index": i,
        "image": _rgb(image),
        "patch_size": model.config.patch_size,
        "num_layers": trace.num_layers,
        "num_heads": trace.num_heads,
        "labels": labels,
        "probabilities": probs.double().round(decimals=DECIMALS).tolist(),
        "prediction": pred,
        "truth": truth,
        # the class token's row, over the patches only (its share kept on itself: cls_self)
        "cls_attention": _grids(trace.attentions[:, :, 0]),  # (layers, heads, G, G)
        "cls_self": trace.attentions[:, :, 0, 0].double().round(decimals=DECIMALS).tolist(),
        "rollout": _grids(explain.rollout(trace)[0]),  # (G, G)
        "gradient": _grids(explain.gradient_relevance(A, G)[0]),  # (G, G)
    }


def _words(question: Any) -> list[str]:
    from ..tasks.multimodal import MAX_LEN, VOCAB

    vocab = [w for w in VOCAB if w != "<pad>"]
    if not isinstance(question, str) or not question.split():
        raise ValueError(
            f"question must be a non-empty string of the words {vocab}, got {question!r}"
        )
    words = question.lower().split()
    unknown = [w for w in words if w not in vocab]
    if unknown:
        raise ValueError(
            f"question has words the model does not know: {unknown}; its vocabulary is {vocab}"
        )
    if len(words) > MAX_LEN:
        raise ValueError(f"question must have at most {MAX_LEN} words, got {len(words)}")
    return words


FIRST_SEARCH = 100  # scenes tried for the page's first example


def _first_answered(model: Any, answers: list[str]) -> int:
    """The first scene index whose own question the model answers correctly (else 0)."""
    from ..tasks.multimodal import ANSWERS, encode, make_questions

    for i in range(FIRST_SEARCH):
        batch = make_questions(1, seed=SCENE_SEED_BASE + i)
        ids = encode(batch.question(0))[None]  # (1, L)
        with torch.no_grad():
            pred = int(model(batch.scenes.images, ids).logits.argmax())
        if answers[pred] == ANSWERS[int(batch.answers[0])]:
            return i
    return 0


def _multimodal(model: Any, cfg: dict[str, Any], name: str, req: ImageRequest) -> dict:
    from ..inspect import trace_from_output
    from ..tasks.multimodal import ANSWERS, encode, make_questions, scene_questions

    answers = list(cfg.get("answers", ANSWERS))
    if req.index is None:  # the page's first scene: the first one the model answers right
        i = _first_answered(model, answers)
    else:
        i = _index(req.index, NUM_SCENES, SCENE_WHAT)
    batch = make_questions(1, seed=SCENE_SEED_BASE + i)
    own, own_answer = batch.question(0), ANSWERS[int(batch.answers[0])]
    options = dict(scene_questions(batch.scenes, 0))
    options.pop(own, None)
    options = {own: own_answer, **options}  # the generator's own question first
    words = _words(own if req.question in (None, "") else req.question)
    ids = encode(" ".join(words))[None]  # (1, L)
    image = batch.scenes.images[0]
    x = image[None]  # (1, 3, H, W)
    with torch.no_grad():  # one call: the answer and the weights
        out = model(x, ids, return_weights=True)
    logits = out.logits  # (1, answers)
    trace = trace_from_output(
        out, tokens=words, key_tokens=model.patch_tokens, kind="cross", model_name=name
    )  # (layers, heads, L, N)
    question = " ".join(words)
    return {
        "kind": "multimodal",
        "model_name": name,
        "about": f"Scene #{i}: " + "; ".join(batch.scenes.describe(0)),
        "index": i,
        "image": _rgb(image),
        "patch_size": model.config.patch_size,
        "num_layers": trace.num_layers,
        "num_heads": trace.num_heads,
        "question": question,
        "questions": list(options),
        "words": words,
        "labels": answers,
        "probabilities": torch.softmax(logits[0], -1).double().round(decimals=DECIMALS).tolist(),
        "prediction": int(logits[0].argmax()),
        "truth": answers.index(options[question]) if question in options else None,
        "cross_attention": _grids(trace.attentions),  # (layers, heads, L, G, G)
    }
