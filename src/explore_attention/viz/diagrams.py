r"""Diagrams of the *ideas* of attention, drawn by code from the library's own objects.

Every function returns a matplotlib ``Figure`` with a title (and axis labels where a panel has
axes). The numbers, groupings, tiles, buckets and angles on a diagram are computed by the very
functions a learner calls — :func:`~explore_attention.attention.attend`,
:class:`~explore_attention.attention.MultiHeadAttention` and ``repeat_kv``,
:func:`~explore_attention.attention.masks.materialize`, the LSH hash, ``apply_rope``, the
seq2seq attention modules — so a diagram cannot drift from the code it explains.

Notation follows ``docs/notation.md``: rows ``q_i, k_j, v_j``; ``Q ∈ R^{L_q×d_k}``; scores
``S = QKᵀ/√d_k``; weights ``A = softmax(S)`` with entries ``a_ij``; heads ``H``, key/value
heads ``H_kv``, head width ``d_h = d_model / H``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..checks import check_int, check_tokens

__all__ = [
    "cross_attention",
    "lsh_buckets",
    "multihead_split",
    "qkv_flow",
    "rope_rotation",
    "seq2seq_attention",
    "tile_schedule",
]

_PALETTE = [
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#C44E52",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
]


def _plt() -> Any:
    import matplotlib.pyplot as plt

    return plt


def _color(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def _canvas(ax: Any) -> None:
    """A drawing panel with no axes: coordinates in [0, 1] × [0, 1]."""
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")


def _box(ax: Any, x: float, y: float, w: float, h: float, text: str, color: str = "#DDE6F3"):
    """A rounded box centred at (x, y) with ``text`` inside."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.005,rounding_size=0.01",
            facecolor=color,
            edgecolor="#333333",
            linewidth=0.8,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=8)


def _arrow(ax: Any, a: tuple[float, float], b: tuple[float, float], **kw: Any) -> None:
    style = dict(arrowstyle="-|>", color="#333333", lw=0.8, shrinkA=0, shrinkB=0)
    style.update(kw)
    ax.annotate("", xy=b, xytext=a, arrowprops=style)


def _matrix(
    ax: Any,
    m: np.ndarray,
    title: str,
    rows: Sequence[str],
    cols: Sequence[str],
    xlabel: str,
    ylabel: str,
    cmap: str = "Blues",
) -> None:
    """Draw ``m`` with every entry printed (two decimals) and labelled rows/columns."""
    ax.imshow(m, cmap=cmap, aspect="auto")
    for (r, c), val in np.ndenumerate(m):
        ax.text(c, r, f"{val:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(m.shape[1]))
    ax.set_xticklabels(cols, fontsize=7)
    ax.set_yticks(range(m.shape[0]))
    ax.set_yticklabels(rows, fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)


def _tokens(name: str, tokens: object, minimum: int = 1) -> list[str]:
    out = check_tokens(name, tokens)
    if len(out) < minimum:
        raise ValueError(f"{name} needs at least {minimum} token(s), got {len(out)}")
    return out


# --------------------------------------------------------------------------- Q, K, V


def qkv_example(
    tokens: Sequence[str] = ("the", "cat", "sat"), *, d_model: int = 3, d_k: int = 2, seed: int = 0
) -> dict[str, Tensor]:
    """The tiny worked example :func:`qkv_flow` draws: seeded ``x (L, d_model)``, projections
    ``W_q, W_k, W_v (d_model, d_k)`` rounded to one decimal (so a reader can redo them by
    hand), and ``Q, K, V, S, A, O`` where ``A`` and ``O`` come from
    :func:`~explore_attention.attention.attend`.
    """
    from ..attention import attend

    toks = _tokens("tokens", tokens)
    check_int("d_model", d_model)
    check_int("d_k", d_k)
    check_int("seed", seed, 0)
    g = torch.Generator().manual_seed(seed)
    L = len(toks)
    x = torch.randn(L, d_model, generator=g, dtype=torch.float64).round(decimals=1)
    w_q, w_k, w_v = (
        torch.randn(d_model, d_k, generator=g, dtype=torch.float64).round(decimals=1)
        for _ in range(3)
    )
    q, k, v = x @ w_q, x @ w_k, x @ w_v  # (L, d_k) each
    res = attend(q[None, None], k[None, None], v[None, None])  # (1, 1, L, ·)
    s = q @ k.T / math.sqrt(d_k)  # (L, L)
    return dict(
        x=x, w_q=w_q, w_k=w_k, w_v=w_v, q=q, k=k, v=v, s=s, a=res.weights[0, 0], o=res.output[0, 0]
    )


def qkv_flow(
    tokens: Sequence[str] = ("the", "cat", "sat"),
    *,
    d_model: int = 3,
    d_k: int = 2,
    seed: int = 0,
    numbers: bool = True,
) -> Any:
    r"""Scaled dot-product attention as a data flow (Vaswani et al. 2017, Eq. 1,
    arXiv:1706.03762): :math:`x \to (Q, K, V) = (xW_q, xW_k, xW_v) \to S = QK^\top/\sqrt{d_k}
    \to A = \operatorname{softmax}(S) \to O = AV`.

    With ``numbers=True`` a second row prints every matrix of the tiny example of
    :func:`qkv_example` (the weights and output are :func:`attend`'s), so a reader can check one
    row by hand.
    """
    if not isinstance(numbers, bool):
        raise TypeError(f"numbers must be a bool, got {type(numbers).__name__}")
    ex = qkv_example(tokens, d_model=d_model, d_k=d_k, seed=seed)
    toks = list(tokens)
    plt = _plt()
    if numbers:
        fig = plt.figure(figsize=(12, 6.2))
        gs = fig.add_gridspec(2, 6, height_ratios=[1, 1.3])
        flow = fig.add_subplot(gs[0, :])
    else:
        fig, flow = plt.subplots(figsize=(12, 2.6))
    _canvas(flow)
    y = 0.5
    _box(flow, 0.05, y, 0.08, 0.3, f"x\n({len(toks)}×{d_model})")
    for n, (name, yy) in enumerate((("Q", 0.85), ("K", 0.5), ("V", 0.15))):
        _arrow(flow, (0.09, y), (0.16, yy))
        _box(flow, 0.2, yy, 0.08, 0.22, f"W_{name.lower()}", "#F3E3D3")
        _arrow(flow, (0.24, yy), (0.29, yy))
        _box(flow, 0.33, yy, 0.08, 0.22, f"{name}\n({len(toks)}×{d_k})", _color(n) + "55")
    _box(flow, 0.5, 0.68, 0.14, 0.26, f"S = QKᵀ/√d_k\n({len(toks)}×{len(toks)})")
    _arrow(flow, (0.37, 0.85), (0.43, 0.72))
    _arrow(flow, (0.37, 0.5), (0.43, 0.64))
    _arrow(flow, (0.57, 0.68), (0.63, 0.68))
    _box(flow, 0.69, 0.68, 0.12, 0.26, "A = softmax(S)\nrows sum to 1")
    _arrow(flow, (0.75, 0.68), (0.81, 0.45))
    _arrow(flow, (0.37, 0.15), (0.81, 0.38))
    _box(flow, 0.87, 0.42, 0.12, 0.26, f"O = A V\n({len(toks)}×{d_k})", "#D5EAD8")
    flow.set_title("Scaled dot-product attention: x → Q, K, V → scores → softmax → weights @ V")
    if numbers:
        dk = [f"d{c + 1}" for c in range(d_k)]
        panels = [
            ("q", f"Q = x W_q (d_k={d_k})", dk, "feature", "Purples"),
            ("k", "K = x W_k", dk, "feature", "Oranges"),
            ("v", "V = x W_v", dk, "feature", "Greens"),
            ("s", "S = QKᵀ/√d_k", toks, "key j", "Greys"),
            ("a", "A = softmax(S) (attend)", toks, "key j", "Blues"),
            ("o", "O = A V (attend)", dk, "feature", "Greens"),
        ]
        for c, (key, title, cols, xlabel, cmap) in enumerate(panels):
            ax = fig.add_subplot(gs[1, c])
            _matrix(ax, ex[key].numpy(), title, toks, cols, xlabel, "query i / token", cmap)
    fig.suptitle(
        "Q/K/V data flow" + (f" with the numbers of a {len(toks)}-token example" if numbers else "")
    )
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- multi-head / GQA


def multihead_split(d_model: int = 8, num_heads: int = 4, num_kv_heads: int | None = None) -> Any:
    r"""Multi-head attention's split and concat (Vaswani et al. 2017, §3.2.2): ``d_model``
    features are cut into ``H`` heads of ``d_h = d_model / H``, each head attends on its own,
    the heads are concatenated and mixed by ``W_o``. With ``num_kv_heads = H_kv < H``
    (GQA, Ainslie et al. 2023, arXiv:2305.13245; MQA when 1) query heads share key/value heads
    in groups of ``H / H_kv``; which query head reads which kv head is taken from
    :func:`~explore_attention.attention.repeat_kv`, and the widths from a
    :class:`~explore_attention.attention.MultiHeadAttention` built with these sizes (which also
    validates them).
    """
    from ..attention import MultiHeadAttention, repeat_kv

    mha = MultiHeadAttention(d_model, num_heads, num_kv_heads)
    H, H_kv, d_h = mha.num_heads, mha.num_kv_heads, mha.head_dim
    kv_width = mha.k_proj.out_features  # H_kv · d_h
    group = repeat_kv(torch.arange(H_kv, dtype=torch.float32).view(1, H_kv, 1, 1), H)
    group_of = [int(g) for g in group.flatten()]  # query head h -> kv head
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 4.8))
    _canvas(ax)
    # d_model features, coloured by the head that will own them
    cell = 0.8 / d_model
    for f in range(d_model):
        h = f // d_h
        ax.add_patch(
            plt.Rectangle((0.1 + f * cell, 0.9), cell, 0.05, color=_color(h), alpha=0.7, lw=0)
        )
    ax.text(0.08, 0.925, f"x·W_q\n(d_model={d_model})", ha="right", va="center", fontsize=8)
    head_x = [0.1 + (h + 0.5) * d_h * cell for h in range(H)]
    kv_x = [0.1 + (g + 0.5) * 0.8 / H_kv for g in range(H_kv)]
    for h in range(H):
        _arrow(ax, (head_x[h], 0.89), (head_x[h], 0.71))
        _box(ax, head_x[h], 0.65, min(0.09, 0.75 / H), 0.1, f"head {h + 1}\nd_h={d_h}", _color(h))
    kind = "MHA" if H_kv == H else ("MQA" if H_kv == 1 else "GQA")
    for g in range(H_kv):
        _box(ax, kv_x[g], 0.4, min(0.12, 0.7 / H_kv), 0.1, f"K,V head {g + 1}", "#F3E3D3")
    for h in range(H):
        _arrow(ax, (kv_x[group_of[h]], 0.45), (head_x[h], 0.6), color=_color(h), lw=0.7)
    ax.text(
        0.5,
        0.3,
        f"x·W_k, x·W_v: {H_kv} head(s) × d_h = {kv_width} features each "
        f"(query heads per K/V head: {H // H_kv})",
        ha="center",
        fontsize=8,
    )
    for h in range(H):
        _arrow(ax, (head_x[h], 0.6), (head_x[h], 0.2))
        ax.add_patch(
            plt.Rectangle((0.1 + h * d_h * cell, 0.14), d_h * cell, 0.05, color=_color(h), lw=0)
        )
    ax.text(0.08, 0.165, "concat\n(H·d_h)", ha="right", va="center", fontsize=8)
    _arrow(ax, (0.91, 0.165), (0.95, 0.165))
    ax.text(0.955, 0.165, "W_o", va="center", fontsize=9)
    per_token = 2 * H_kv * d_h
    ax.text(
        0.5,
        0.04,
        f"KV cache per token and layer: 2·H_kv·d_h = {per_token} numbers "
        f"(MHA with H={H}: {2 * H * d_h}; {H // H_kv}× smaller)",
        ha="center",
        fontsize=8,
    )
    ax.set_title(
        f"{kind}: d_model={d_model} split into H={H} heads of d_h={d_h}; H_kv={H_kv} "
        "key/value head(s); concat, then W_o"
    )
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- cross-attention


def cross_attention(
    source_tokens: Sequence[str] = ("the", "red", "cat"),
    target_tokens: Sequence[str] = ("<s>", "die", "rote"),
    weights: Any = None,
    *,
    seed: int = 0,
) -> Any:
    r"""Encoder–decoder (cross-) attention (Vaswani et al. 2017, §3.2.3): queries come from the
    decoder (target tokens), keys and values from the encoder's output (source tokens).

    ``weights (L_tgt, L_src)`` — e.g. a trained translator's cross-attention — sets the line
    widths; by default they are :func:`attend`'s weights for seeded random vectors (only the
    plumbing, and the title says so).
    """
    from ..attention import attend

    src = _tokens("source_tokens", source_tokens)
    tgt = _tokens("target_tokens", target_tokens)
    check_int("seed", seed, 0)
    if weights is None:
        g = torch.Generator().manual_seed(seed)
        q = torch.randn(1, 1, len(tgt), 4, generator=g)
        k = torch.randn(1, 1, len(src), 4, generator=g)
        a = attend(q, k, k).weights[0, 0].numpy()
        note = "weights of random vectors (plumbing only)"
    else:
        a = np.asarray(weights.detach().cpu() if isinstance(weights, Tensor) else weights, float)
        if a.shape != (len(tgt), len(src)):
            raise ValueError(
                f"weights must have shape (len(target_tokens), len(source_tokens)) = "
                f"{(len(tgt), len(src))}, got {a.shape}"
            )
        note = "given weights"
    plt = _plt()
    fig, (ax, hm) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.5, 1]})
    _canvas(ax)
    xs = np.linspace(0.24, 0.9, len(src))
    xt = np.linspace(0.24, 0.9, len(tgt))
    for j, t in enumerate(src):
        _box(ax, xs[j], 0.15, 0.1, 0.08, t, "#F3E3D3")
    for i, t in enumerate(tgt):
        _box(ax, xt[i], 0.85, 0.1, 0.08, t, "#DDE6F3")
    ax.text(0.02, 0.15, "encoder\n→ K, V", ha="left", va="center", fontsize=8)
    ax.text(0.02, 0.85, "decoder\n→ Q", ha="left", va="center", fontsize=8)
    for i in range(len(tgt)):
        for j in range(len(src)):
            ax.plot([xt[i], xs[j]], [0.8, 0.2], color=_color(i), lw=0.3 + 5 * a[i, j], alpha=0.8)
    ax.set_title("Each decoder query reads the encoder's keys/values", fontsize=9)
    _matrix(
        hm, a, "A (cross-attention)", tgt, src, "source token (key j)", "target token (query i)"
    )
    fig.suptitle(f"Cross-attention: decoder queries, encoder keys and values — {note}")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- tiles


def tile_schedule(
    mask_mod: Any = None,
    L: int = 16,
    block_size: int = 4,
    *,
    order: str = "q_outer",
) -> Any:
    r"""FlashAttention's loops over tiles (Dao et al. 2022, Algorithm 1, arXiv:2205.14135).

    The ``L × L`` score matrix is cut into ``block_size × block_size`` tiles. ``order="kv_outer"``
    is Algorithm 1 (outer loop over K/V tiles j, inner over Q tiles i);
    ``order="q_outer"`` is FlashAttention-2's and this library's ``tiled`` backend (outer
    over Q tiles). Tiles the mask leaves empty (from
    :func:`~explore_attention.attention.masks.materialize` of ``mask_mod``; default causal)
    are greyed and skipped; the others carry their step number.
    """
    from matplotlib.patches import Rectangle

    from ..attention import masks

    mask_mod = masks.causal if mask_mod is None else mask_mod
    if not callable(mask_mod):
        raise TypeError(f"mask_mod must be a callable mask_mod, got {type(mask_mod).__name__}")
    check_int("L", L)
    check_int("block_size", block_size)
    if order not in ("q_outer", "kv_outer"):
        raise ValueError(f"order must be 'q_outer' or 'kv_outer', got {order!r}")
    m = masks.materialize(mask_mod, L)[0, 0].numpy()  # (L, L) bool, True = attend
    n = math.ceil(L / block_size)
    state = tile_states(m, block_size)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 6.2))
    ax.imshow(m, cmap="Blues", vmin=0, vmax=2.5, extent=(-0.5, L - 0.5, L - 0.5, -0.5))
    pairs = [(i, j) for i in range(n) for j in range(n)]
    if order == "kv_outer":
        pairs = [(i, j) for j in range(n) for i in range(n)]
    step = 0
    for i, j in pairs:
        x0, y0 = j * block_size - 0.5, i * block_size - 0.5
        w = min(block_size, L - j * block_size)
        h = min(block_size, L - i * block_size)
        if state[i, j] == "empty":
            ax.add_patch(Rectangle((x0, y0), w, h, facecolor="#BBBBBB", alpha=0.8, lw=0))
            continue
        step += 1
        edge = "#C44E52" if state[i, j] == "partial" else "#2F4B7C"
        ax.add_patch(Rectangle((x0, y0), w, h, fill=False, edgecolor=edge, lw=1.5))
        ax.text(x0 + w / 2, y0 + h / 2, str(step), ha="center", va="center", fontsize=9)
    counts = {s: int((state == s).sum()) for s in ("full", "partial", "empty")}
    loop = (
        "outer: Q tiles i, inner: K/V tiles j"
        if order == "q_outer"
        else ("outer: K/V tiles j, inner: Q tiles i (Algorithm 1)")
    )
    name = getattr(mask_mod, "__name__", "mask")
    ax.set_title(
        f"Tile schedule for {name}, L={L}, block_size={block_size}\n{loop}\n"
        f"computed {counts['full']} full + {counts['partial']} partial (red), "
        f"skipped {counts['empty']} (grey)",
        fontsize=9,
    )
    ax.set_xlabel("key position j (K/V tiles)")
    ax.set_ylabel("query position i (Q tiles)")
    fig.tight_layout()
    return fig


def tile_states(mask: Any, block_size: int) -> np.ndarray:
    """Classify each ``block_size``-square tile of a bool ``(Lq, Lk)`` mask as ``"empty"``,
    ``"partial"`` or ``"full"`` (the same rule as ``attention.tiled.block_map``)."""
    check_int("block_size", block_size)
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be a 2-d (Lq, Lk) bool matrix, got shape {m.shape}")
    nq, nk = math.ceil(m.shape[0] / block_size), math.ceil(m.shape[1] / block_size)
    out = np.empty((nq, nk), dtype=object)
    for i in range(nq):
        for j in range(nk):
            t = m[i * block_size : (i + 1) * block_size, j * block_size : (j + 1) * block_size]
            out[i, j] = "empty" if not t.any() else ("full" if t.all() else "partial")
    return out


# --------------------------------------------------------------------------- LSH


def lsh_example(
    n_points: int = 12, n_buckets: int = 4, bucket_size: int = 3, *, seed: int = 0
) -> dict[str, Tensor]:
    """The example :func:`lsh_buckets` draws: ``n_points`` unit vectors in 2-d at seeded angles,
    a random rotation ``R (2, n_buckets/2)``, their buckets by the library's hash
    (Reformer's :math:`\\arg\\max([xR; -xR])`), and the sort order by (bucket, position)."""
    from ..attention import lsh

    check_int("n_points", n_points, 2)
    check_int("bucket_size", bucket_size)
    check_int("seed", seed, 0)
    check_int("n_buckets", n_buckets, 2)
    if n_buckets % 2:
        raise ValueError(f"n_buckets must be even (argmax over [xR; -xR]), got {n_buckets}")
    g = torch.Generator().manual_seed(seed)
    angles = torch.rand(n_points, generator=g, dtype=torch.float64) * 2 * math.pi
    x = torch.stack([angles.cos(), angles.sin()], -1)  # (L, 2)
    rot = torch.randn(1, 2, n_buckets // 2, generator=g, dtype=torch.float64)
    buckets = lsh._hash(x[None, None], rot)[0, 0, 0]  # (L,)
    pos = torch.arange(n_points)
    order = (buckets * n_points + pos).argsort()  # the library's sort key
    return dict(x=x, angles=angles, rot=rot[0], buckets=buckets, order=order)


def lsh_buckets(
    n_points: int = 12, n_buckets: int = 4, bucket_size: int = 3, *, seed: int = 0
) -> Any:
    r"""Reformer's LSH attention in three pictures (Kitaev et al. 2020, §2,
    arXiv:2001.04451): (1) points on a circle hashed by a random rotation into buckets
    :math:`h(x) = \arg\max([xR; -xR])`; (2) the sequence sorted by (bucket, position);
    (3) cut into chunks of ``bucket_size`` — each query attends within its chunk and the previous
    one.
    """
    ex = lsh_example(n_points, n_buckets, bucket_size, seed=seed)
    x, buckets, order, rot = ex["x"].numpy(), ex["buckets"].numpy(), ex["order"].numpy(), ex["rot"]
    plt = _plt()
    fig, (ax, seq) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1, 1.6]})
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(t), np.sin(t), color="#BBBBBB", lw=0.8)
    dirs = torch.cat([rot, -rot], dim=-1).T.numpy()  # (n_buckets, 2): bucket b's direction
    for b, d in enumerate(dirs):
        d = d / np.linalg.norm(d) * 1.35
        ax.annotate("", xy=d, xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color=_color(b)))
        ax.text(*(d * 1.1), f"bucket {b}", color=_color(b), ha="center", fontsize=8)
    for p, (px, py) in enumerate(x):
        ax.scatter(px, py, color=_color(int(buckets[p])), s=60, zorder=3)
        ax.text(px * 1.12, py * 1.12, str(p), ha="center", va="center", fontsize=7)
    ax.set_aspect("equal")
    ax.set_xlim(-1.7, 1.7)
    ax.set_ylim(-1.7, 1.7)
    ax.set_xlabel("feature 1")
    ax.set_ylabel("feature 2")
    ax.set_title("Hash: bucket = argmax([xR; −xR])\n(arrow = direction of that bucket's column)")
    _canvas(seq)
    L = len(x)
    w = 0.9 / L
    for row, (label, idx) in enumerate((("positions", np.arange(L)), ("sorted", order))):
        y = 0.75 - row * 0.4
        seq.text(0.04, y + 0.1, label, fontsize=9)
        for s, p in enumerate(idx):
            seq.add_patch(
                plt.Rectangle((0.05 + s * w, y), w * 0.9, 0.08, color=_color(int(buckets[p])))
            )
            seq.text(0.05 + (s + 0.45) * w, y + 0.04, str(p), ha="center", va="center", fontsize=7)
    n_chunks = math.ceil(L / bucket_size)
    for c in range(n_chunks):
        x0 = 0.05 + c * bucket_size * w
        width = min(bucket_size, L - c * bucket_size) * w
        seq.add_patch(plt.Rectangle((x0 - 0.002, 0.33), width, 0.12, fill=False, lw=1.2, ls="--"))
        seq.text(x0 + width / 2, 0.27, f"chunk {c}", ha="center", fontsize=7)
        if c:
            _arrow(
                seq, (x0 + width / 2, 0.22), (x0 - width / 2, 0.22), connectionstyle="arc3,rad=0.4"
            )
    seq.text(
        0.5,
        0.08,
        f"{L} tokens, {n_buckets} buckets, chunks of {bucket_size}: each query scores its own "
        "chunk and the previous one (arrows), not all L keys",
        ha="center",
        fontsize=8,
    )
    seq.set_title("Sort by (bucket, position), then chunk")
    fig.suptitle("LSH attention (Reformer): hash, sort, chunk")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- RoPE


def rope_scores(q: Tensor, k: Tensor, L: int, *, base: float = 10000.0) -> Tensor:
    """``S[i, j] = RoPE(q, i) · RoPE(k, j)`` for one query and one key vector at every pair of
    positions ``0..L-1`` (computed with the library's ``apply_rope``): a ``(L, L)`` matrix that is
    constant along diagonals because the score depends only on ``i − j``."""
    from ..attention import positional

    for name, t in (("q", q), ("k", k)):
        if not isinstance(t, Tensor) or t.dim() != 1:
            raise ValueError(f"{name} must be a 1-d tensor (d,), got {t!r}")
    check_int("L", L)
    rq = positional.apply_rope(q.expand(1, 1, L, -1).contiguous(), base=base)[0, 0]  # (L, d)
    rk = positional.apply_rope(k.expand(1, 1, L, -1).contiguous(), base=base)[0, 0]  # (L, d)
    return rq @ rk.T  # (L, L)


def rope_rotation(
    i: int = 3,
    j: int = 1,
    *,
    dim: int = 8,
    pair: int = 1,
    base: float = 10000.0,
    L: int = 12,
    seed: int = 0,
) -> Any:
    r"""RoPE (Su et al. 2021, §3.2, arXiv:2104.09864): the ``pair``-th 2-d pair of a query at
    position ``i`` is rotated by :math:`i\,\theta_p`, a key's at ``j`` by :math:`j\,\theta_p`,
    with :math:`\theta_p = \text{base}^{-2(p-1)/d}` (``pair = p`` counts from 1). The left
    panel shows the pair before and after ``apply_rope``; the right panel the scores
    ``RoPE(q, i)·RoPE(k, j)`` for every (i, j): equal along each diagonal, since they depend only
    on ``i − j``.
    """
    from ..attention import positional

    check_int("dim", dim, 2)
    if dim % 2:
        raise ValueError(f"dim must be even (RoPE rotates pairs), got {dim}")
    check_int("pair", pair)
    if pair > dim // 2:
        raise ValueError(f"pair must be in 1..dim/2 = 1..{dim // 2}, got {pair}")
    check_int("L", L, 2)
    check_int("i", i, 0)
    check_int("j", j, 0)
    if max(i, j) >= L:
        raise ValueError(f"positions i={i}, j={j} must be < L={L}")
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(dim, generator=g, dtype=torch.float64)
    k = torch.randn(dim, generator=g, dtype=torch.float64)
    pos = torch.tensor([i, j])
    rq = positional.apply_rope(q.expand(1, 1, 2, dim).contiguous(), pos, base=base)[0, 0, 0]
    rk = positional.apply_rope(k.expand(1, 1, 2, dim).contiguous(), pos, base=base)[0, 0, 1]
    c = (pair - 1, pair - 1 + dim // 2)  # the library pairs x_p with x_{p + d/2}
    theta = base ** (-2 * (pair - 1) / dim)
    plt = _plt()
    fig, (ax, hm) = plt.subplots(1, 2, figsize=(11, 4.8))
    for vec, rot, name, col in ((q, rq, f"q (i={i})", 0), (k, rk, f"k (j={j})", 1)):
        a, b = vec[list(c)].numpy(), rot[list(c)].numpy()
        ax.annotate(
            "", xy=a, xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color=_color(col), ls="--")
        )
        ax.annotate("", xy=b, xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color=_color(col)))
        ax.text(*b, f" rotated {name}", color=_color(col), fontsize=8)
        ax.text(*a, f" {name[0]}", color=_color(col), fontsize=8, alpha=0.7)
    r = float(max(q[list(c)].norm(), k[list(c)].norm())) * 1.3
    ax.set_xlim(-r, r)
    ax.set_ylim(-r, r)
    ax.set_aspect("equal")
    ax.axhline(0, color="#DDDDDD", lw=0.5)
    ax.axvline(0, color="#DDDDDD", lw=0.5)
    ax.set_xlabel(f"coordinate {c[0] + 1}")
    ax.set_ylabel(f"coordinate {c[1] + 1}")
    ax.set_title(
        f"Pair p={pair}: θ_p = {theta:.3g} rad; q turns by i·θ_p = {i * theta:.3g}, "
        f"k by j·θ_p = {j * theta:.3g}",
        fontsize=9,
    )
    s = rope_scores(q, k, L, base=base).numpy()
    im = hm.imshow(s, cmap="RdBu_r")
    fig.colorbar(im, ax=hm, fraction=0.046)
    hm.set_xlabel("key position j")
    hm.set_ylabel("query position i")
    hm.set_title("RoPE(q, i)·RoPE(k, j): constant along diagonals (depends on i − j)", fontsize=9)
    fig.suptitle(f"RoPE rotates each pair by position × frequency (d={dim}, base={base:g})")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- seq2seq


def seq2seq_attention(
    variant: str = "bahdanau",
    source_tokens: Sequence[str] = ("the", "red", "cat"),
    *,
    seed: int = 0,
) -> Any:
    r"""One decoder step of RNN encoder–decoder attention.

    * ``"bahdanau"`` (Bahdanau et al. 2014, arXiv:1409.0473, Eq. 6 and App. A.1.2): the
      *previous* decoder state :math:`s_{i-1}` scores every annotation :math:`h_j` with an MLP,
      :math:`a_{ij} = \operatorname{softmax}_j(v_a^\top\tanh(W_a s_{i-1} + U_a h_j))`, the
      context :math:`c_i = \sum_j a_{ij} h_j` enters the cell that computes :math:`s_i`.
    * ``"luong"`` (Luong et al. 2015, arXiv:1508.04025, §3, Eqs. 5–8, general score): the
      *current* state :math:`h_t` scores :math:`\bar h_s`; the context joins it after the cell,
      :math:`\tilde h_t = \tanh(W_c[c_t; h_t])`.

    The weights printed are the library modules' (``BahdanauAttention``,
    ``LuongAttention(score="general")``) on seeded random states: the plumbing, not a trained
    alignment.
    """
    from ..attention.rnn import BahdanauAttention, LuongAttention

    if variant not in ("bahdanau", "luong"):
        raise ValueError(f"variant must be 'bahdanau' or 'luong', got {variant!r}")
    src = _tokens("source_tokens", source_tokens)
    check_int("seed", seed, 0)
    torch.manual_seed(seed)  # the modules' initial weights
    g = torch.Generator().manual_seed(seed)
    L = len(src)
    keys = torch.randn(1, L, 6, generator=g)  # annotations h_j (bidirectional: 2n = 6)
    state = torch.randn(1, 4, generator=g)  # decoder state (n = 4)
    if variant == "bahdanau":
        module = BahdanauAttention(4, 6, 5)
        q_name, ctx_name, w_name = "s_{i−1}", "c_i", "a_ij"
    else:
        module = LuongAttention(4, 6, "general")
        q_name, ctx_name, w_name = "h_t", "c_t", "a_t(s)"
    with torch.no_grad():
        weights = module(state, keys).weights  # (B, L)
    a = weights[0].numpy()  # (L,)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 5))
    _canvas(ax)
    xs = np.linspace(0.15, 0.85, L)
    for jj, tok in enumerate(src):
        _box(ax, xs[jj], 0.08, 0.09, 0.07, tok, "#EEEEEE")
        _arrow(ax, (xs[jj], 0.12), (xs[jj], 0.2))
        _box(ax, xs[jj], 0.25, 0.09, 0.08, f"h_{jj + 1}", "#F3E3D3")
        ax.plot([xs[jj], 0.5], [0.29, 0.55], color=_color(0), lw=0.5 + 8 * a[jj], alpha=0.8)
        label = w_name.replace("j", str(jj + 1)).replace("(s)", f"({jj + 1})")
        ax.text(
            xs[jj],
            0.36,
            f"{label} = {a[jj]:.2f}",
            ha="center",
            fontsize=8,
            bbox=dict(facecolor="white", edgecolor="none", pad=1),
        )
    _box(ax, 0.5, 0.6, 0.16, 0.08, f"{ctx_name} = Σ a·h", "#D5EAD8")
    if variant == "bahdanau":
        _box(ax, 0.12, 0.85, 0.1, 0.08, "s_{i−1}", "#DDE6F3")
        _box(ax, 0.5, 0.85, 0.14, 0.08, "RNN cell → s_i", "#DDE6F3")
        _box(ax, 0.85, 0.85, 0.1, 0.08, "y_i", "#EEEEEE")
        _arrow(ax, (0.17, 0.85), (0.43, 0.85))
        _arrow(ax, (0.12, 0.81), (0.45, 0.58), ls="--")  # s_{i-1} scores the annotations
        _arrow(ax, (0.5, 0.64), (0.5, 0.81))
        _arrow(ax, (0.57, 0.85), (0.8, 0.85))
        note = "score(s_{i−1}, h_j) = v_aᵀ tanh(W_a s_{i−1} + U_a h_j): the PREVIOUS state asks"
    else:
        _box(ax, 0.12, 0.85, 0.12, 0.08, "RNN cell → h_t", "#DDE6F3")
        _box(ax, 0.5, 0.85, 0.2, 0.08, "h̃_t = tanh(W_c[c_t; h_t])", "#DDE6F3")
        _box(ax, 0.85, 0.85, 0.1, 0.08, "y_t", "#EEEEEE")
        _arrow(ax, (0.18, 0.85), (0.4, 0.85))
        _arrow(ax, (0.12, 0.81), (0.45, 0.58), ls="--")  # h_t scores the source states
        _arrow(ax, (0.5, 0.64), (0.5, 0.81))
        _arrow(ax, (0.6, 0.85), (0.8, 0.85))
        note = "score(h_t, h̄_s) = h_tᵀ W_a h̄_s: the CURRENT state asks, after the cell"
    ax.text(0.5, 0.47, note, ha="center", fontsize=8)
    ax.text(0.02, 0.25, "encoder\nannotations", fontsize=8, va="center")
    title = "Bahdanau et al. 2014" if variant == "bahdanau" else "Luong et al. 2015 (general)"
    ax.set_title(f"{title}: one decoder step; query = {q_name} (random states: plumbing only)")
    fig.tight_layout()
    return fig
