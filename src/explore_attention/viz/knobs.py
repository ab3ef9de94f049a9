r"""Knobs: turn one number of an attention mechanism and watch a figure change.

Each knob is a *library function* ``draw(value) -> Figure`` (so tests can drive it) plus the
values a slider offers and a default. :func:`show` draws the default statically first — that
picture is what the book shows — and, in a live notebook with ``ipywidgets``, adds a slider
whose callback redraws the figure. Set ``EXPLORE_ATTENTION_STATIC=1`` (the docs build does) to
get the static picture only.

Knobs: ``scale`` (softmax temperature), ``window`` (sliding window *w*), ``features``
(Performer's random-feature count *r*), ``rounds`` (LSH hash rounds), ``block_size`` (tile
edge of a tiled kernel), ``rope_base`` (RoPE's frequency base).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..checks import check_int

__all__ = [
    "KNOBS",
    "Knob",
    "lsh_rounds",
    "performer_features",
    "rope_base",
    "show",
    "slider",
    "softmax_temperature",
    "tile_block_size",
    "window_size",
]

SCORES = (2.0, 1.0, 0.5, -1.0)  # one query's scores q·k_j for the temperature knob


def _plt() -> Any:
    import matplotlib.pyplot as plt

    return plt


def _positive_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def temperature_weights(scale: float) -> torch.Tensor:
    """``softmax(scale · s)`` of the fixed scores :data:`SCORES`, computed by ``attend`` with
    ``scale`` as its score multiplier (1-d keys ``k_j = s_j`` and a query of 1)."""
    from ..attention import attend

    scale = _positive_float("scale", scale)
    s = torch.tensor(SCORES, dtype=torch.float64)
    q = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    k = s.view(1, 1, -1, 1)  # (1, 1, 4, 1)
    return attend(q, k, k, scale=scale).weights[0, 0, 0]  # (4,)


def softmax_temperature(scale: float = 1.0) -> Any:
    r"""The weights :math:`a_j = \operatorname{softmax}_j(\text{scale}\cdot s_j)` of one query:
    a large scale sharpens them towards the arg-max (one-hot), a small one flattens them towards
    uniform. ``1/\sqrt{d_k}`` is the scale that keeps the scores' variance 1 (Vaswani et al.
    2017, §3.2.1)."""
    w = temperature_weights(scale).numpy()
    entropy = float(-(w * np.log(w)).sum())
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    labels = [f"k{j + 1}\ns={s:g}" for j, s in enumerate(SCORES)]
    bars = ax.bar(labels, w, color="#4C72B0")
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("key j (its score s_j)")
    ax.set_ylabel("weight a_j")
    ax.set_title(
        f"softmax(scale · s) at scale = {scale:g}: entropy {entropy:.2f} nats "
        f"(uniform: {math.log(len(w)):.2f})",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def window_size(window: int = 4, L: int = 16) -> Any:
    """The causal sliding-window mask ``0 ≤ i − j < w`` (``masks.sliding_window``) next to
    full causal attention, with the share of the score matrix each keeps."""
    from ..attention import masks
    from .patterns import draw_masks

    check_int("window", window)
    check_int("L", L)
    return draw_masks(
        [masks.causal, masks.sliding_window(window, causal=True)],
        L,
        titles=["causal", f"sliding window w = {window}"],
        suptitle=f"Each query sees at most w = {window} keys (itself and w − 1 before it), L={L}",
    )


def _example(L: int, D: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, 1, L, D, generator=g, dtype=torch.float64) for _ in range(3))
    return q, k, v


def performer_error(num_features: int, *, L: int = 32, D: int = 16, seed: int = 0) -> float:
    """Mean absolute difference between Performer's implied weights (``num_features`` orthogonal
    random features, seeded) and exact softmax weights on a seeded ``(L, D)`` example."""
    from ..attention import attend
    from ..attention.performer import performer_attention

    check_int("num_features", num_features)
    q, k, v = _example(L, D, seed)
    exact = attend(q, k, v).weights
    g = torch.Generator().manual_seed(seed)
    approx = performer_attention(
        q, k, v, num_features=num_features, generator=g, return_weights=True
    ).weights
    return float((approx - exact).abs().mean())


def performer_features(num_features: int = 16, *, L: int = 32, D: int = 16) -> Any:
    r"""Performer (Choromanski et al. 2020, arXiv:2009.14794) estimates softmax weights with
    :math:`r` random features: its implied weights beside the exact ones, and the error at
    every slider value (it shrinks roughly as :math:`1/\sqrt r`)."""
    from ..attention import attend
    from ..attention.performer import performer_attention

    check_int("num_features", num_features)
    q, k, v = _example(L, D, 0)
    exact = attend(q, k, v).weights[0, 0].numpy()
    g = torch.Generator().manual_seed(0)
    approx = performer_attention(
        q, k, v, num_features=num_features, generator=g, return_weights=True
    ).weights[0, 0]
    plt = _plt()
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(12, 3.8))
    vmax = float(exact.max())
    for ax, m, title in (
        (a1, exact, "exact softmax A"),
        (a2, approx.numpy(), f"Performer, r={num_features}"),
    ):
        ax.imshow(m, cmap="Blues", vmin=0, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("key position j")
        ax.set_ylabel("query position i")
    rs = list(KNOB_VALUES["features"])
    errs = [performer_error(r, L=L, D=D) for r in rs]
    a3.loglog(rs, errs, "o-", color="#4C72B0")
    a3.loglog(
        [num_features], [performer_error(num_features, L=L, D=D)], "o", color="#C44E52", ms=10
    )
    a3.set_xlabel("random features r")
    a3.set_ylabel("mean |Â − A|")
    a3.set_title("error vs r (red: this r)", fontsize=9)
    fig.suptitle(f"Performer with r = {num_features} random features (L={L}, d_k={D})")
    fig.tight_layout()
    return fig


def lsh_error(n_rounds: int, *, L: int = 64, D: int = 16, bucket_size: int = 8) -> float:
    """Relative error ``‖o_LSH − o_exact‖ / ‖o_exact‖`` of Reformer LSH attention with
    ``n_rounds`` hash rounds against exact shared-QK attention on a seeded example."""
    from ..attention.lsh import lsh_attention, shared_qk_attention

    check_int("n_rounds", n_rounds)
    qk, _, v = _example(L, D, 1)
    exact = shared_qk_attention(qk, v).output
    g = torch.Generator().manual_seed(0)
    out = lsh_attention(
        qk, v, n_hashes=n_rounds, bucket_size=bucket_size, generator=g, return_weights=False
    ).output
    return float((out - exact).norm() / exact.norm())


def lsh_rounds(n_rounds: int = 2, *, L: int = 64, D: int = 16, bucket_size: int = 8) -> Any:
    r"""Reformer's LSH attention (Kitaev et al. 2020, arXiv:2001.04451) with ``n_rounds`` hash
    rounds: the implied weights beside exact shared-QK attention, and the output's relative
    error at every slider value (more rounds find more of each query's large weights)."""
    from ..attention.lsh import lsh_attention, shared_qk_attention

    check_int("n_rounds", n_rounds)
    qk, _, v = _example(L, D, 1)
    exact = shared_qk_attention(qk, v).weights[0, 0].numpy()
    g = torch.Generator().manual_seed(0)
    res = lsh_attention(
        qk, v, n_hashes=n_rounds, bucket_size=bucket_size, generator=g, return_weights=True
    )
    plt = _plt()
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(12, 3.8))
    vmax = float(exact.max())
    for ax, m, title in (
        (a1, exact, "exact shared-QK A"),
        (a2, res.weights[0, 0].numpy(), f"LSH, {n_rounds} round(s)"),
    ):
        ax.imshow(m, cmap="Blues", vmin=0, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("key position j")
        ax.set_ylabel("query position i")
    rounds = list(KNOB_VALUES["rounds"])
    a3.plot(rounds, [lsh_error(r, L=L, D=D, bucket_size=bucket_size) for r in rounds], "o-")
    a3.plot([n_rounds], [lsh_error(n_rounds, L=L, D=D, bucket_size=bucket_size)], "o", ms=10)
    a3.set_xlabel("hash rounds")
    a3.set_ylabel("relative output error")
    a3.set_title("error vs rounds (orange: this setting)", fontsize=9)
    fig.suptitle(f"LSH attention, {n_rounds} round(s), chunks of {bucket_size} (L={L})")
    fig.tight_layout()
    return fig


def tile_block_size(block_size: int = 4, L: int = 32) -> Any:
    """The causal tile schedule of :func:`~explore_attention.viz.diagrams.tile_schedule` at
    this ``block_size``: smaller tiles skip more of the masked triangle but take more steps."""
    from .diagrams import tile_schedule

    return tile_schedule(None, L, block_size)


def rope_base(base: float = 10000.0, *, dim: int = 32, L: int = 64) -> Any:
    r"""RoPE's score between two identical all-ones vectors at distance :math:`i - j`, for this
    ``base`` (Su et al. 2021, §3.3 "long-term decay", proved in §3.4.3): a larger base turns
    the pairs more slowly, so the score decays over longer distances."""
    from .diagrams import rope_scores

    base = _positive_float("base", base)
    check_int("dim", dim, 2)
    x = torch.ones(dim, dtype=torch.float64)
    s = rope_scores(x, x, L, base=base)[:, 0].numpy()  # query at i, key at 0
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(range(L), s, color="#4C72B0")
    ax.axhline(0, color="#BBBBBB", lw=0.6)
    ax.set_xlabel("relative distance i − j")
    ax.set_ylabel("RoPE(q, i) · RoPE(k, j)")
    ax.set_title(
        f"RoPE base = {base:g}, d = {dim}: score of identical vectors vs distance", fontsize=9
    )
    fig.tight_layout()
    return fig


KNOB_VALUES: dict[str, tuple] = {
    "scale": (0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
    "window": tuple(range(1, 17)),
    "features": (2, 4, 8, 16, 32, 64, 128),
    "rounds": (1, 2, 4, 8),
    "block_size": (2, 4, 8, 16),
    "rope_base": (10.0, 100.0, 1000.0, 10000.0, 100000.0, 500000.0),
}


@dataclass(frozen=True)
class Knob:
    """A named knob: ``draw(value) -> Figure``, the slider's ``values`` and its ``default``."""

    name: str
    label: str
    draw: Callable[[Any], Any]
    values: tuple
    default: Any


KNOBS: dict[str, Knob] = {
    "scale": Knob("scale", "scale", softmax_temperature, KNOB_VALUES["scale"], 1.0),
    "window": Knob("window", "window w", window_size, KNOB_VALUES["window"], 4),
    "features": Knob("features", "features r", performer_features, KNOB_VALUES["features"], 16),
    "rounds": Knob("rounds", "LSH rounds", lsh_rounds, KNOB_VALUES["rounds"], 2),
    "block_size": Knob("block_size", "block size", tile_block_size, KNOB_VALUES["block_size"], 4),
    "rope_base": Knob("rope_base", "RoPE base", rope_base, KNOB_VALUES["rope_base"], 10000.0),
}


def _knob(name: str) -> Knob:
    if name not in KNOBS:
        raise ValueError(f"name must be one of {sorted(KNOBS)}, got {name!r}")
    return KNOBS[name]


def slider(name: str, value: Any = None) -> tuple[Any, Any, dict[str, Any]]:
    """An ipywidgets ``SelectionSlider`` over the knob's values, an ``Output`` area, and a state
    dict whose ``"figure"`` is the last figure the slider's callback drew (redrawn on every
    change of ``slider.value``)."""
    import ipywidgets as widgets

    knob = _knob(name)
    value = knob.default if value is None else value
    if value not in knob.values:
        raise ValueError(
            f"value must be one of {list(knob.values)} for knob {name!r}, got {value!r}"
        )
    control = widgets.SelectionSlider(
        options=list(knob.values), value=value, description=knob.label, continuous_update=False
    )
    out = widgets.Output()
    state: dict[str, Any] = {"figure": None}

    def redraw(change: dict[str, Any]) -> None:
        plt = _plt()
        fig = knob.draw(change["new"])
        state["figure"] = fig
        with out:
            out.clear_output(wait=True)
            _display(fig)
        plt.close(fig)

    control.observe(redraw, names="value")
    return control, out, state


def _display(obj: Any) -> None:
    try:
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with the notebook stack
        return
    display(obj)


def _interactive() -> bool:
    if os.environ.get("EXPLORE_ATTENTION_STATIC", "") not in ("", "0"):
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def show(name: str, value: Any = None) -> None:
    """Draw knob ``name`` at ``value`` (its default if None) as a static figure, then — in a
    live notebook — a slider that redraws it (nothing is returned, so the figure shows once)."""
    knob = _knob(name)
    value = knob.default if value is None else value
    fig = knob.draw(value)
    _display(fig)
    _plt().close(fig)
    if _interactive():
        control, out, _ = slider(name, value)
        import ipywidgets as widgets

        _display(widgets.VBox([control, out]))
