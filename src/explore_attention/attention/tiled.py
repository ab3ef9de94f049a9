r"""Tiled ("flash") attention with an online softmax, in pure PyTorch: O(L·block) memory.

Dao et al. 2022, "FlashAttention" (arXiv:2205.14135). Exact attention never needs the whole
``(Lq, Lk)`` score matrix: split queries into blocks :math:`Q_i` and keys/values into blocks
:math:`K_j, V_j`, and keep for every query row a running maximum :math:`m`, a running
normaliser :math:`\ell` and an unnormalised output :math:`\tilde O` (Algorithm 1, lines 9–12):

.. math::

    S_{ij} = \alpha\, Q_i K_j^\top, \qquad
    m^{\text{new}} = \max\!\big(m,\ \operatorname{rowmax}(S_{ij})\big), \qquad
    \tilde P_{ij} = e^{S_{ij} - m^{\text{new}}}

.. math::

    \ell^{\text{new}} = e^{m - m^{\text{new}}}\,\ell + \operatorname{rowsum}(\tilde P_{ij}), \qquad
    \tilde O^{\text{new}} = e^{m - m^{\text{new}}}\,\tilde O + \tilde P_{ij} V_j

and at the end :math:`O_i = \tilde O / \ell`, with the log-sum-exp
:math:`L_i = m + \log \ell` kept for the backward pass. The backward pass (Algorithm 2)
recomputes :math:`P_{ij} = e^{S_{ij} - L_i}` block by block instead of storing it:

.. math::

    D_i = \operatorname{rowsum}(dO_i \circ O_i), \quad
    dV_j \mathrel{+}= P_{ij}^\top dO_i, \quad
    dS_{ij} = P_{ij} \circ (dO_i V_j^\top - D_i), \quad
    dQ_i \mathrel{+}= \alpha\, dS_{ij} K_j, \quad
    dK_j \mathrel{+}= \alpha\, dS_{ij}^\top Q_i .

**Block skipping.** A ``mask_mod`` is reduced once to a *block map* (:func:`block_map`): each
(query block, key block) tile is ``EMPTY`` (skipped: never multiplied), ``FULL`` (no mask
evaluated) or ``PARTIAL`` (mask evaluated on that tile only). The map is exact — built by
evaluating the mask one query block at a time, O(block · Lk) memory — and cached per
``(mask_mod, shape)`` like FlexAttention's ``BlockMask``, so a causal sliding window of ``w``
costs O(L · (w + block)) instead of O(L²). With the map, each query tile's *steps* are planned
and cached too (:func:`_steps`): neighbouring tiles merged into one step, each partial tile's
mask kept as an additive bias over its own columns, the few live keys of otherwise empty tiles
(global tokens) gathered into a step, and tiles only a few queries see (a global query row)
run for those queries alone, merged by log-sum-exp.

With a ``score_mod`` the backward pass goes through autograd instead, one query block at a
time under activation checkpointing (memory still O(block · Lk)), so parameters captured by the
``score_mod`` (a learned bias table, ALiBi slopes) receive gradients too.

**On a CPU**, tile operations are small, and with several intra-op threads each one pays an
OpenMP hand-off. Without autograd, query tiles are therefore spread over a small pool of
Python threads running single-threaded operations
(:func:`~explore_attention.attention.threads.run_parallel`), the way
FlashAttention spreads query tiles over GPU thread blocks.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import types
import weakref
from collections import OrderedDict

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

from . import core
from .core import AttentionOutput, MaskMod, ScoreMod, check_qkv
from .threads import run_parallel

__all__ = [
    "EMPTY",
    "FULL",
    "PARTIAL",
    "block_map",
    "clear_block_map_cache",
    "tiled_attention",
]

EMPTY, PARTIAL, FULL = 0, 1, 2  # block map states
DEFAULT_BLOCK_SIZE = 128
RUN_KEYS = 4096  # at most this many keys per online-softmax step (neighbouring tiles merged)

# --------------------------------------------------------------------------- block map

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CACHE_PER_MASK = 8


def clear_block_map_cache() -> None:
    """Forget every cached block map (e.g. after mutating a tensor a mask_mod reads)."""
    _CACHE.clear()


class _UncacheableError(Exception):
    """A mask_mod captures something whose changes we cannot see: do not cache its map."""


def _fingerprint(obj: object, depth: int = 0) -> object:
    """Everything a mask_mod's answer can depend on, as a hashable key.

    Walks closures (and their defaults), tuples, lists, dicts, ``functools.partial``, bound
    methods and modules' tensors; a tensor contributes its identity, storage and version
    counter, so an in-place edit (``lengths[0] = 3``) changes the key. Anything else — an
    object whose state we cannot see — raises :class:`_UncacheableError`: such a mask is evaluated
    afresh on every call rather than risk a stale map. (Module-level globals a function reads
    are assumed fixed.)
    """
    if depth > 12:
        raise _UncacheableError
    if obj is None or isinstance(obj, (bool, int, float, str, torch.dtype, torch.device)):
        return obj
    if isinstance(obj, Tensor):
        return ("tensor", id(obj), obj.data_ptr(), obj._version, tuple(obj.shape), obj.dtype)
    if isinstance(obj, (tuple, list)):
        return tuple(_fingerprint(x, depth + 1) for x in obj)
    if isinstance(obj, dict):
        return tuple((k, _fingerprint(x, depth + 1)) for k, x in obj.items())
    if isinstance(obj, types.ModuleType):
        return ("module", obj.__name__)
    if isinstance(obj, (types.BuiltinFunctionType, type)):
        return ("builtin", id(obj))
    if isinstance(obj, functools.partial):
        return tuple(_fingerprint(x, depth + 1) for x in (obj.func, obj.args, obj.keywords))
    if isinstance(obj, types.MethodType):
        return (_fingerprint(obj.__self__, depth + 1), _fingerprint(obj.__func__, depth + 1))
    if isinstance(obj, nn.Module):
        return (
            "nn",
            id(obj),
            tuple(_fingerprint(t) for t in obj.state_dict(keep_vars=True).values()),
        )
    if isinstance(obj, types.FunctionType):
        cells = []
        for cell in obj.__closure__ or ():
            try:
                cells.append(_fingerprint(cell.cell_contents, depth + 1))
            except ValueError:  # an empty cell
                cells.append("<empty>")
        defaults = (obj.__defaults__, obj.__kwdefaults__)
        return ("fn", id(obj.__code__), tuple(cells), _fingerprint(defaults, depth + 1))
    raise _UncacheableError


def _eval_mask(mask_mod: MaskMod, B: int, H: int, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
    """mask_mod on one tile: a bool tensor of shape (B|1, H|1, rows, cols)."""
    dev = q_idx.device
    b = torch.arange(B, device=dev).view(B, 1, 1, 1)
    h = torch.arange(H, device=dev).view(1, H, 1, 1)
    m = mask_mod(b, h, q_idx.view(1, 1, -1, 1), kv_idx.view(1, 1, 1, -1))
    rows, cols = q_idx.numel(), kv_idx.numel()
    m = core.checked_mask(mask_mod, m, (B, H, rows, cols), dev)
    return m.expand(m.shape[0], m.shape[1], rows, cols)  # (B|1, H|1, rows, cols)


def block_map(
    mask_mod: MaskMod | None,
    B: int,
    H: int,
    Lq: int,
    Lk: int,
    block_q: int = DEFAULT_BLOCK_SIZE,
    block_k: int = DEFAULT_BLOCK_SIZE,
    device: torch.device | str | None = None,
) -> Tensor:
    """Which tiles a mask leaves empty, full or partial: an ``(nq, nk)`` int8 tensor.

    ``nq = ceil(Lq / block_q)``, ``nk = ceil(Lk / block_k)``; entries are :data:`EMPTY`,
    :data:`PARTIAL` or :data:`FULL` (over every batch element and head). Exact: the mask is
    evaluated on every (query, key) pair, one query block at a time. Cached per mask_mod.
    """
    return _cache_entry(mask_mod, B, H, Lq, Lk, block_q, block_k, device)["map"]


def _cache_entry(
    mask_mod: MaskMod | None,
    B: int,
    H: int,
    Lq: int,
    Lk: int,
    block_q: int,
    block_k: int,
    device: torch.device | str | None,
) -> dict:
    """The cached ``{"map": block map, ...}`` of a mask and shape (a fresh dict if uncacheable;
    the plan adds every query tile's steps to it, see :func:`_steps`)."""
    nq, nk = math.ceil(Lq / block_q), math.ceil(Lk / block_k)
    if mask_mod is None:
        return {"map": torch.full((nq, nk), FULL, dtype=torch.int8)}
    try:
        key = (B, H, Lq, Lk, block_q, block_k, str(device), _fingerprint(mask_mod))
        per_mask = _CACHE.setdefault(mask_mod, OrderedDict())
    except (_UncacheableError, TypeError):  # unseen state, or not weak-referenceable: no cache
        key, per_mask = None, OrderedDict()
    if key in per_mask:
        per_mask.move_to_end(key)
        return per_mask[key]
    kv_idx = torch.arange(Lk, device=device)
    pad = nk * block_k - Lk
    state = torch.empty(nq, nk, dtype=torch.int8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small reductions: OpenMP hand-offs would dominate
    try:
        _fill_block_map(state, mask_mod, B, H, Lq, Lk, block_q, block_k, kv_idx, pad, device)
    finally:
        torch.set_num_threads(threads)
    entry = {"map": state, "cached": key is not None}
    per_mask[key] = entry
    while len(per_mask) > _CACHE_PER_MASK:
        per_mask.popitem(last=False)
    return entry


def _fill_block_map(state, mask_mod, B, H, Lq, Lk, block_q, block_k, kv_idx, pad, device) -> None:
    nk = state.shape[1]
    for i in range(state.shape[0]):
        q0, q1 = i * block_q, min(Lq, (i + 1) * block_q)
        q_idx = torch.arange(q0, q1, device=device) + (Lk - Lq)  # position convention
        m = _eval_mask(mask_mod, B, H, q_idx, kv_idx)  # (B|1, H|1, bq, Lk)
        flat = m.reshape(-1, Lk)  # (B·H·bq, Lk)
        col_any, col_all = flat.any(0), flat.all(0)  # (Lk,)
        if pad:
            col_any = torch.cat([col_any, col_any.new_zeros(pad)])
            col_all = torch.cat([col_all, col_all.new_ones(pad)])
        any_blk = col_any.view(nk, block_k).any(-1).cpu()  # (nk,)
        all_blk = col_all.view(nk, block_k).all(-1).cpu()
        state[i] = torch.where(all_blk, FULL, torch.where(any_blk, PARTIAL, EMPTY))


# --------------------------------------------------------------------------- steps

EXP_FLOOR = -80.0  # exp() of anything below about -87 is a denormal or 0, and ~7x slower on x86
DROP_CACHE_ELEMENTS = 2**25  # at most 128 MiB of cached masks (float32 biases) per (mask, shape)
SPARSE_FRACTION = 4  # a partial tile with <= 1/4 of its keys (or queries) live is gathered


@dataclasses.dataclass(frozen=True)
class _Run:
    """One online-softmax step of a query tile: neighbouring tiles' keys ``k0:k1``, then the
    *gathered* keys ``cols`` (the few live keys of otherwise empty tiles, such as Longformer's
    global key column: they ride along with a step rather than pay for one of their own).

    ``spans`` are the partial tiles' column ranges within the step's keys (full tiles need no
    mask); ``biases`` their masks, cached as additive ``(B|1, H|1, rows, c1 - c0)`` float32
    tensors (0 kept, -inf dropped) as a compiled kernel bakes its mask in, or None: evaluate the
    mask_mod on the spot.
    """

    k0: int
    k1: int
    spans: tuple[tuple[int, int], ...] = ()
    biases: tuple[Tensor, ...] | None = None
    cols: Tensor | None = None


@dataclasses.dataclass(frozen=True)
class _TileSteps:
    """What one query tile computes: ``runs`` over all its rows, then ``row_runs`` over only
    ``rows`` (offsets in the tile): tiles in which a few queries see keys (a global query row)
    are done for those queries alone and merged by log-sum-exp."""

    runs: tuple[_Run, ...]
    rows: Tensor | None = None
    row_runs: tuple[_Run, ...] = ()


def _runs(tiles: list[tuple[int, Tensor | None, bool]], block_k: int, Lk: int, cached: bool):
    """Merge neighbouring key tiles ``(j, bias, partial)`` into runs of at most :data:`RUN_KEYS`
    keys, so a CPU pays per-operation overhead less often while empty tiles stay skipped."""
    runs: list[list] = []  # [k0, k1, spans, biases]
    width = max(RUN_KEYS, block_k)
    for j, bias, partial in tiles:
        k0, k1 = j * block_k, min(Lk, (j + 1) * block_k)
        if not (runs and runs[-1][1] == k0 and k1 - runs[-1][0] <= width):
            runs.append([k0, k0, [], []])
        run = runs[-1]
        if partial:
            run[2].append((k0 - run[0], k1 - run[0]))
            run[3].append(bias)
        run[1] = k1
    return tuple(_Run(a, b, tuple(sp), tuple(bs) if cached else None) for a, b, sp, bs in runs)


def _with_gathered(runs: tuple[_Run, ...], pieces: list[tuple[Tensor, Tensor]]) -> tuple:
    """``runs`` with the few live keys ``cols`` of several tiles (and their masks) appended to
    the last step (or as a step of their own)."""
    cols = torch.cat([c for c, _ in pieces])
    lead = torch.broadcast_shapes(*(b.shape[:2] for _, b in pieces))
    bias = torch.cat([b.expand(*lead, *b.shape[2:]) for _, b in pieces], dim=-1)
    last = runs[-1] if runs else _Run(0, 0, (), ())
    w = last.k1 - last.k0
    last = dataclasses.replace(
        last, spans=(*last.spans, (w, w + cols.numel())), biases=(*last.biases, bias), cols=cols
    )
    return (*runs[:-1], last)


def _bias(drop: Tensor) -> Tensor:
    """A bool mask of dropped entries as an additive float32 bias: 0 kept, -inf dropped."""
    return torch.zeros(drop.shape, dtype=torch.float32, device=drop.device).masked_fill_(
        drop, float("-inf")
    )


def _tile_steps(plan: _Plan, i: int, mask_mod: MaskMod | None, device, cached: bool):
    """The steps of query tile ``i``. With ``cached``, each partial tile's mask is evaluated
    now and sorted: few live keys → gathered onto a step; few live queries → the tile's row pass;
    else a masked span of a run. Returns the steps and the number of mask entries they hold."""
    states = plan.map[i].tolist()
    if not cached:
        tiles = [(j, None, st == PARTIAL) for j, st in enumerate(states) if st != EMPTY]
        return _TileSteps(_runs(tiles, plan.bk, plan.Lk, False)), 0
    q_idx = plan.q_idx(i, device)
    dense, few_rows, gathered, held = [], [], [], 0
    for j, st in enumerate(states):
        if st == EMPTY:
            continue
        if st == FULL:
            dense.append((j, None, False))
            continue
        k0, k1 = j * plan.bk, min(plan.Lk, (j + 1) * plan.bk)
        keep = _eval_mask(mask_mod, plan.B, plan.H, q_idx, torch.arange(k0, k1, device=device))
        seen_by = keep.any(2).flatten(0, 1).any(0)  # (bk,): keys some query of the tile sees
        seeing = keep.any(3).flatten(0, 1).any(0)  # (bq,): queries that see some key
        if int(seen_by.sum()) * SPARSE_FRACTION <= k1 - k0:
            cols = seen_by.nonzero().flatten()
            gathered.append((cols + k0, _bias(~keep[..., cols])))
            held += gathered[-1][1].numel()
        elif int(seeing.sum()) * SPARSE_FRACTION <= q_idx.numel():
            few_rows.append((j, ~keep, seeing))
        else:
            dense.append((j, _bias(~keep), True))
            held += dense[-1][1].numel()
    runs = _runs(dense, plan.bk, plan.Lk, True)
    runs = _with_gathered(runs, gathered) if gathered else runs
    if not few_rows:
        return _TileSteps(runs), held
    rows = torch.stack([s for _, _, s in few_rows]).any(0).nonzero().flatten()
    tiles = [(j, _bias(drop[:, :, rows]), True) for j, drop, _ in few_rows]
    held += sum(b.numel() for _, b, _ in tiles)
    return _TileSteps(runs, rows, _runs(tiles, plan.bk, plan.Lk, True)), held


def _steps(entry: dict, mask_mod: MaskMod | None, plan: _Plan, device) -> list[_TileSteps]:
    """Every query tile's steps, cached with the block map when the mask can be cached and its
    partial tiles hold at most :data:`DROP_CACHE_ELEMENTS` entries (else masks are evaluated
    during each call, tile by tile)."""
    if "steps" not in entry:
        cached = entry.get("cached", False) and bool((plan.map == PARTIAL).any())
        steps, total = [], 0
        for i in range(plan.nq):
            tile, held = _tile_steps(plan, i, mask_mod, device, cached)
            steps.append(tile)
            total += held
            if total > DROP_CACHE_ELEMENTS:  # too big to keep: evaluate the mask per call
                steps = [_tile_steps(plan, i, mask_mod, device, False)[0] for i in range(plan.nq)]
                break
        entry["steps"] = steps
    return entry["steps"]


# --------------------------------------------------------------------------- forward


def _zero_dead_keys(vj: Tensor, drop: Tensor, B: int, H: int) -> Tensor:
    """Zero key/value rows of a tile that no query of that (batch, kv head) may see: ``0·NaN``.

    ``vj`` is ``(B·Hkv, bk, ·)``; ``drop`` the tile's masked-out entries ``(B|1, H|1, bq, bk)``.
    """
    dead = drop.all(2)  # (B|1, H|1, bk)
    if not bool(dead.any()):
        return vj
    Hkv = vj.shape[0] // B
    if dead.shape[1] == H and Hkv != H:  # a kv head is dead only if its whole group is
        dead = dead.view(dead.shape[0], Hkv, H // Hkv, -1).all(2)  # (B|1, Hkv, bk)
    dead = dead.expand(B, Hkv, dead.shape[-1]).reshape(B * Hkv, -1, 1)  # (B·Hkv, bk, 1)
    return vj.masked_fill(dead, 0.0)


_SCRATCH = threading.local()  # one score buffer per thread, reused by every tile


def _scores_buffer(shape: tuple[int, int, int], like: Tensor) -> Tensor:
    """A ``shape`` view of this thread's reusable score buffer (no autograd: the caller
    overwrites it every step). Reusing it spares the allocator a multi-MiB block per step,
    whose fresh pages a default ``malloc`` would fault in again and again."""
    n = shape[0] * shape[1] * shape[2]
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.numel() < n or buf.dtype != like.dtype or buf.device != like.device:
        buf = _SCRATCH.buf = like.new_empty(n)
    return buf[:n].view(shape)


def _run_masks(run: _Run, mask_mod, B: int, H: int, q_idx: Tensor) -> list[Tensor]:
    """Each span's mask: the cached float bias, or the mask_mod's dropped entries (bool)."""
    if run.biases is not None:
        return list(run.biases)
    dev = q_idx.device
    return [
        ~_eval_mask(mask_mod, B, H, q_idx, torch.arange(run.k0 + c0, run.k0 + c1, device=dev))
        for c0, c1 in run.spans
    ]


def _whole_drop(run: _Run, span_masks: list[Tensor], width: int) -> Tensor:
    """The masked-out entries of the whole step, ``(B|1, H|1, rows, width)`` bool."""
    drops = [m if m.dtype == torch.bool else torch.isinf(m) for m in span_masks]
    lead = torch.broadcast_shapes(*(d.shape[:2] for d in drops))
    drop = drops[0].new_zeros(*lead, drops[0].shape[2], width)
    for (c0, c1), d in zip(run.spans, drops):
        drop[..., c0:c1] = d
    return drop


@dataclasses.dataclass(frozen=True)
class _Call:
    """What every query tile of one call shares: ``kt`` (B·Hkv, D, Lk), ``v3`` (B·Hkv, Lk, Dv),
    the mods, the scale, whether Q, K, V are ``finite`` (masks can then be added in place and
    masked keys need no zeroing), and whether the log-sum-exp is wanted (training saves it)."""

    kt: Tensor
    v3: Tensor
    mask_mod: MaskMod | None
    score_mod: ScoreMod | None
    scale: float
    finite: bool
    need_lse: bool = True


def _pieces(run: _Run, kt: Tensor, v3: Tensor) -> tuple[list[Tensor], list[Tensor], list[int]]:
    """A step's keys in pieces — the slice ``k0:k1``, then the gathered ``cols`` — as
    ``(B·Hkv, D, w)`` views of Kᵀ and ``(B·Hkv, w, Dv)`` of V, with their widths."""
    kts, vs = [], []
    if run.k1 > run.k0:
        kts.append(kt[:, :, run.k0 : run.k1])
        vs.append(v3[:, run.k0 : run.k1])
    if run.cols is not None:
        kts.append(kt.index_select(2, run.cols))
        vs.append(v3.index_select(1, run.cols))
    return kts, vs, [x.shape[2] for x in kts]


def _zero_dead_pieces(kts, vs, drop: Tensor, widths: list[int], B: int, H: int, keys: bool):
    """Zero the keys (if ``keys``) and values no query of the step may see: their scores are
    masked, but P·V and dQ = dS·K still multiply them by 0, and 0·NaN = NaN."""
    parts = drop.split(widths, dim=-1)
    vs = [_zero_dead_keys(x, d, B, H) for x, d in zip(vs, parts)]
    if keys:
        kts = [_zero_dead_keys(x.mT, d, B, H).mT for x, d in zip(kts, parts)]
    return kts, vs


def _products_into(out: Tensor, a: Tensor, bs: list[Tensor], alpha: float = 1.0) -> Tensor:
    """``out[..., piece] = alpha · a @ b`` for each piece ``b`` in turn: one buffer, no cat."""
    for b, part in zip(bs, out.split([b.shape[2] for b in bs], dim=-1)):
        part.baddbmm_(a, b, beta=0.0, alpha=alpha)
    return out


def _mask_in_place(s4: Tensor, run: _Run, span_masks: list[Tensor], drop: Tensor | None) -> None:
    """Mask a step's scores ``(B, H, rows, width)`` without autograd: the whole-step ``drop``
    when given (non-finite inputs), else each partial tile's bias added where it is."""
    if drop is not None:
        s4.masked_fill_(drop, float("-inf"))
        return
    for (c0, c1), m in zip(run.spans, span_masks):
        part = s4[..., c0:c1]
        part.add_(m) if m.dtype != torch.bool else part.masked_fill_(m, float("-inf"))


def _group_rows(rows: Tensor, G: int, bq: int) -> Tensor:
    """Rows ``rows`` of a query tile in the grouped layout, every head: head g's row r is
    g·bq + r.                                                                   (G·nr,)"""
    return (torch.arange(G, device=rows.device).view(G, 1) * bq + rows).flatten()


def _row(
    qg: Tensor, tile: _TileSteps, q_idx: Tensor, shape: tuple[int, int, int], call: _Call
) -> tuple[Tensor, Tensor | None]:
    """One query tile: its runs over all rows, then its few-row pass, merged by log-sum-exp.

    ``qg`` is ``(B·Hkv, G·bq, D)``: the query block of every head sharing a key head stacked,
    so GQA needs no copy of K/V. Returns the block's output ``(B·Hkv, G·bq, Dv)`` and
    log-sum-exp ``(B·Hkv, G·bq, 1)`` (``-inf`` on rows that see no key; None if not
    ``call.need_lse``).
    """
    few = tile.rows is not None
    out, lse = _online_softmax(qg, tile.runs, q_idx, shape, call, need_lse=call.need_lse or few)
    if not few:
        return out, lse
    B, H, bq = shape
    rows_g = _group_rows(tile.rows, qg.shape[1] // bq, bq)
    nr = tile.rows.numel()
    o2, l2 = _online_softmax(qg[:, rows_g], tile.row_runs, q_idx[tile.rows], (B, H, nr), call)
    # O = (e^{L1} O1 + e^{L2} O2) / (e^{L1} + e^{L2}),  L = log(e^{L1} + e^{L2})
    l1, o1 = lse[:, rows_g], out[:, rows_g]
    m = torch.maximum(l1, l2)
    m = torch.where(torch.isinf(m), 0.0, m)
    w1, w2 = torch.exp(l1 - m), torch.exp(l2 - m)
    total = w1 + w2
    live = total > 0
    merged = torch.where(live, (w1 * o1 + w2 * o2) / torch.where(live, total, 1.0), 0.0)
    merged_lse = torch.where(live, m + torch.log(torch.where(live, total, 1.0)), float("-inf"))
    return out.index_copy(1, rows_g, merged), lse.index_copy(1, rows_g, merged_lse)


def _online_softmax(
    qg: Tensor,
    runs: tuple[_Run, ...],
    q_idx: Tensor,
    shape: tuple[int, int, int],
    call: _Call,
    need_lse: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Online softmax of query rows ``qg`` over their runs (Algorithm 1, lines 7–15).

    Without autograd, a tile whose keys are one step with a full tile among them (so every row
    sees a key), no score_mod and no log-sum-exp wanted takes one in-place softmax instead. Else
    masked scores are clamped to :data:`EXP_FLOOR` before ``exp`` (contributing e^-80 ≈ 2e-35
    of a row's weight instead of an exact 0, and sparing the CPU's slow underflow path);
    liveness is read from the max.
    """
    B, H, bq = shape
    kt, v3, mask_mod, score_mod, scale = call.kt, call.v3, call.mask_mod, call.score_mod, call.scale
    finite = call.finite
    grad = torch.is_grad_enabled()
    one_softmax = (
        not grad
        and not need_lse
        and score_mod is None
        and len(runs) == 1
        and _has_full_tile(runs[0])
    )
    m_i = l_i = acc = None
    for run in runs:
        kts, vs, widths = _pieces(run, kt, v3)
        width = sum(widths)
        span_masks = _run_masks(run, mask_mod, B, H, q_idx) if run.spans else []
        drop = None
        if span_masks and (grad or not finite):
            drop = _whole_drop(run, span_masks, width)  # (B|1, H|1, bq, width)
            if not finite:
                kts, vs = _zero_dead_pieces(kts, vs, drop, widths, B, H, keys=grad)
        # S_ij = α Q_i K_jᵀ                                          (B·Hkv, G·bq, width)
        if grad:
            s = torch.cat([torch.bmm(qg, x) * scale for x in kts], dim=-1)
        else:
            s = _scores_buffer((qg.shape[0], qg.shape[1], width), qg)
            _products_into(s, qg, kts, scale)
        s4 = s.view(B, H, bq, width)  # (B, H, bq, width)
        if score_mod is not None:
            kv_idx = torch.arange(run.k0, run.k1, device=qg.device)
            if run.cols is not None:
                kv_idx = torch.cat([kv_idx, run.cols])
            b = torch.arange(B, device=s.device).view(B, 1, 1, 1)
            h = torch.arange(H, device=s.device).view(1, H, 1, 1)
            s4 = score_mod(s4, b, h, q_idx.view(1, 1, -1, 1), kv_idx.view(1, 1, 1, -1))
        if grad:
            s4 = s4 if drop is None else s4.masked_fill(drop, float("-inf"))
        else:  # in place: out of place would copy the step
            _mask_in_place(s4, run, span_masks, drop)
        s = s4.reshape(s.shape)
        if one_softmax:  # O = softmax(S) V: every row sees a key, no lse wanted
            p = torch.ops.aten._softmax.out(s, -1, False, out=s)
            out = torch.bmm(p[..., : widths[0]], vs[0])
            for pp, x in zip(p.split(widths, dim=-1)[1:], vs[1:]):
                out.baddbmm_(pp, x)
            return out, None
        # m_new = max(m, rowmax(S_ij)); shift by 0 where the row is still all -inf
        row_max = s.amax(-1, keepdim=True)
        m_new = row_max if m_i is None else torch.maximum(m_i, row_max)
        m_safe = torch.where(torch.isinf(m_new), 0.0, m_new)
        # P̃_ij = exp(S_ij − m_new)
        if grad:
            p = torch.exp(s - m_safe)
        else:
            s.sub_(m_safe)
            for c0, c1 in run.spans:  # -inf lives only in partial tiles
                s4[..., c0:c1].clamp_min_(EXP_FLOOR)
            p = s.exp_()
        p_parts = p.split(widths, dim=-1)
        if m_i is None:
            l_i = p.sum(-1, keepdim=True)
            acc = torch.bmm(p_parts[0], vs[0])  # (B·Hkv, G·bq, Dv)
            p_parts, vs = p_parts[1:], vs[1:]
        else:
            # ℓ_new = e^{m − m_new} ℓ + rowsum(P̃);  Õ_new = e^{m − m_new} Õ + P̃ V_j
            corr = torch.exp(m_i - m_safe)
            if grad:
                l_i = corr * l_i + p.sum(-1, keepdim=True)
                acc = corr * acc
            else:
                l_i.mul_(corr).add_(p.sum(-1, keepdim=True))
                acc.mul_(corr)
        for pp, x in zip(p_parts, vs):  # P̃_ij V_j, piece by piece
            acc = torch.baddbmm(acc, pp, x) if grad else acc.baddbmm_(pp, x)
        m_i = m_new
    if m_i is None:  # no key block at all
        rows = qg.shape[1]
        zeros = qg.new_zeros(qg.shape[0], rows, v3.shape[-1])
        return zeros, qg.new_full((qg.shape[0], rows, 1), float("-inf"))
    live = m_i > float("-inf")  # the row saw a key (its max is finite)
    l_safe = torch.where(live, l_i, 1.0)
    out = torch.where(live, acc / l_safe, 0.0)  # O_i = Õ / ℓ; rows with no key stay 0
    if not need_lse:
        return out, None
    return out, torch.where(live, m_i + torch.log(l_safe), float("-inf"))


def _has_full_tile(run: _Run) -> bool:
    """Whether the run's key range holds a full tile (then every query of the tile sees a key):
    its partial tiles' spans (the gathered keys' span lies past ``k1 - k0``) do not cover it."""
    n = run.k1 - run.k0
    return sum(c1 - c0 for c0, c1 in run.spans if c1 <= n) < n


class _Plan:
    """Shapes, blocks, the block map and every query tile's steps of one call."""

    def __init__(self, q: Tensor, k: Tensor, v: Tensor, mask_mod, block_q: int, block_k: int):
        self.B, self.H, self.Lq, self.D = q.shape
        self.Hkv, self.Lk, self.Dv = k.shape[1], k.shape[2], v.shape[-1]
        self.G = self.H // self.Hkv
        self.bs, self.bk = block_q, block_k
        self.nq = math.ceil(self.Lq / block_q)
        entry = _cache_entry(mask_mod, self.B, self.H, self.Lq, self.Lk, block_q, block_k, q.device)
        self.map = entry["map"]
        partial = bool((self.map == PARTIAL).any())
        # Masks can be added in place, and masked keys need no zeroing, only if Q, K and V are
        # finite (-inf + inf, 0·NaN). A sum is one cheap pass and is non-finite whenever an
        # entry is (or on overflow: then we take the careful path).
        self.finite = not partial or bool(torch.isfinite(q.sum() + k.sum() + v.sum()))
        self.steps = _steps(entry, mask_mod, self, q.device)

    def q_block(self, x: Tensor, i: int) -> Tensor:
        """Rows of block ``i`` of a (B, H, Lq, ·) tensor, grouped: (B·Hkv, G·bq, ·)."""
        q0, q1 = i * self.bs, min(self.Lq, (i + 1) * self.bs)
        return x[:, :, q0:q1].reshape(self.B * self.Hkv, self.G * (q1 - q0), x.shape[-1])

    def q_idx(self, i: int, device) -> Tensor:
        q0, q1 = i * self.bs, min(self.Lq, (i + 1) * self.bs)
        return torch.arange(q0, q1, device=device) + (self.Lk - self.Lq)

    def row_inputs(self, q: Tensor, i: int) -> tuple:
        """:func:`_row`'s per-block arguments for query block ``i``: the grouped queries, the
        block's steps, its positions and its ``(B, H, bq)`` shape."""
        qg = self.q_block(q, i)
        shape = (self.B, self.H, qg.shape[1] // self.G)
        return qg, self.steps[i], self.q_idx(i, q.device), shape

    def call(self, k: Tensor, v: Tensor, mask_mod, score_mod, scale, need_lse: bool) -> _Call:
        """The per-call constants every query tile reads."""
        v3 = v.reshape(self.B * self.Hkv, self.Lk, self.Dv)  # (B·Hkv, Lk, Dv)
        kt = _keys_transposed(k, self)  # (B·Hkv, D, Lk)
        return _Call(kt, v3, mask_mod, score_mod, scale, self.finite, need_lse)

    def unblock(self, x: Tensor, i: int) -> Tensor:
        """Inverse of :meth:`q_block`: (B·Hkv, G·bq, ·) → (B, H, bq, ·)."""
        return x.view(self.B, self.H, -1, x.shape[-1])


TRANSPOSE_REUSE = 16  # copy Kᵀ once when each key tile is read by at least this many steps


def _keys_transposed(k: Tensor, plan: _Plan) -> Tensor:
    """``(B, Hkv, Lk, D)`` → ``(B·Hkv, D, Lk)``. MKL multiplies ``Q_i`` by a row-major slice
    of Kᵀ ~20 % faster than by a transposed view of K, so when key tiles are read by many query
    tiles (causal: half of them) Kᵀ is copied once, 128 keys at a time (a whole-tensor
    transposing copy is ~6x slower), with rows a multiple of 16 floats apart but not a power of
    two (which would map every row of a slice to the same cache sets). Otherwise: a view."""
    k3 = k.reshape(plan.B * plan.Hkv, plan.Lk, plan.D)
    live_tiles = int((plan.map != EMPTY).sum())
    if live_tiles < TRANSPOSE_REUSE * plan.map.shape[1] or torch.is_grad_enabled():
        return k3.transpose(1, 2)
    stride = plan.Lk + (-plan.Lk) % 16 + 16
    kt = k3.new_empty(k3.shape[0], plan.D, stride)[:, :, : plan.Lk]
    for k0 in range(0, plan.Lk, DEFAULT_BLOCK_SIZE):
        kt[:, :, k0 : k0 + DEFAULT_BLOCK_SIZE].copy_(k3[:, k0 : k0 + DEFAULT_BLOCK_SIZE].mT)
    return kt


def _forward(
    q, k, v, plan: _Plan, mask_mod, score_mod, scale, need_lse: bool = True
) -> tuple[Tensor, Tensor | None]:
    """Algorithm 1 over every query tile; output ``(B, H, Lq, Dv)`` and lse ``(B, H, Lq, 1)``
    (None unless ``need_lse``).

    On a CPU with several intra-op threads, query tiles are spread over that many Python
    threads, each running single-threaded operations (as FlashAttention spreads query tiles
    over thread blocks): small tile operations then pay no OpenMP hand-off per call.
    """
    call = plan.call(k, v, mask_mod, score_mod, scale, need_lse)
    out = q.new_empty(plan.B, plan.H, plan.Lq, plan.Dv)
    lse = q.new_empty(plan.B, plan.H, plan.Lq, 1) if need_lse else None

    def one(i: int) -> None:
        qg, steps, q_idx, shape = plan.row_inputs(q, i)
        o, l_ = _row(qg, steps, q_idx, shape, call)
        q0 = i * plan.bs
        out[:, :, q0 : q0 + shape[2]] = plan.unblock(o, i)  # disjoint rows: no race
        if need_lse:
            lse[:, :, q0 : q0 + shape[2]] = plan.unblock(l_, i)

    threads = torch.get_num_threads()
    if threads < 2 or plan.nq < 2 or q.device.type != "cpu" or torch.is_grad_enabled():
        for i in range(plan.nq):
            one(i)
        return out, lse
    # Each thread takes the next query tile, costliest first (causal: the last rows have the
    # most key tiles), so no thread is left with a long tile at the end.
    cost = (plan.map != EMPTY).sum(1).tolist()
    todo = iter(sorted(range(plan.nq), key=lambda i: -cost[i]))  # next() is atomic under the GIL
    run_parallel([lambda: [one(i) for i in todo] for _ in range(min(threads, plan.nq))])
    return out, lse


class _TiledAttention(torch.autograd.Function):
    """Forward = Algorithm 1; backward = Algorithm 2 (recompute P block by block)."""

    @staticmethod
    def forward(ctx, q, k, v, plan, mask_mod, scale):  # type: ignore[override]
        with torch.no_grad():
            out, lse = _forward(q, k, v, plan, mask_mod, None, scale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.plan, ctx.mask_mod, ctx.scale = plan, mask_mod, scale
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):  # type: ignore[override]
        q, k, v, out, lse = ctx.saved_tensors
        plan = ctx.plan
        call = plan.call(k, v, ctx.mask_mod, None, ctx.scale, need_lse=False)
        # D_i = rowsum(dO ∘ O)                                          (B, H, Lq, 1)
        Di = (dout * out).sum(-1, keepdim=True)
        # Rows with no key have lse = -inf; use +inf there so P = e^{S − L} = 0, not NaN.
        lse = torch.where(torch.isinf(lse), float("inf"), lse)
        dq = torch.empty_like(q)
        dk3 = torch.zeros(plan.B * plan.Hkv, plan.Lk, plan.D, dtype=k.dtype, device=k.device)
        dv3 = torch.zeros(plan.B * plan.Hkv, plan.Lk, plan.Dv, dtype=v.dtype, device=v.device)
        for i in range(plan.nq):  # the forward's steps: each live (query, key) pair once
            qg, tile, q_idx, shape = plan.row_inputs(q, i)
            rows = (qg, plan.q_block(dout, i), plan.q_block(Di, i), plan.q_block(lse, i))
            dqg = qg.new_zeros(qg.shape)  # contiguous (zeros_like would copy qg's strides)
            for run in tile.runs:
                _backward_step(*rows, run, q_idx, shape, call, dqg, dk3, dv3)
            if tile.rows is not None:  # the few-row pass: its rows alone
                rows_g = _group_rows(tile.rows, plan.G, shape[2])
                sub = [x[:, rows_g] for x in rows]
                dsub = torch.zeros_like(sub[0])
                sub_shape = (plan.B, plan.H, tile.rows.numel())
                for run in tile.row_runs:
                    _backward_step(*sub, run, q_idx[tile.rows], sub_shape, call, dsub, dk3, dv3)
                dqg.index_add_(1, rows_g, dsub)
            q0 = i * plan.bs
            dq[:, :, q0 : q0 + shape[2]] = plan.unblock(dqg, i)
        dk = dk3.view(plan.B, plan.Hkv, plan.Lk, plan.D)
        dv = dv3.view(plan.B, plan.Hkv, plan.Lk, plan.Dv)
        return dq, dk, dv, None, None, None


def _backward_step(qg, dog, dig, lseg, run: _Run, q_idx, shape, call: _Call, dqg, dk3, dv3):
    r"""Algorithm 2's updates for the rows ``qg`` of a query tile over one step's keys:

    .. math::

        P = e^{S - L}, \quad dV \mathrel{+}= P^\top dO, \quad
        dS = P \circ (dO\, V^\top - D), \quad
        dQ \mathrel{+}= \alpha\, dS\, K, \quad dK \mathrel{+}= \alpha\, dS^\top Q

    ``dqg`` (the rows' dQ) is added to in place, as are ``dk3`` and ``dv3`` at the step's keys
    (a slice, then the gathered ``cols``). Masked scores are clamped before ``exp`` as in the
    forward pass (their P is e^-80, not 0)."""
    B, H, bq = shape
    kts, vs, widths = _pieces(run, call.kt, call.v3)
    width = sum(widths)
    span_masks = _run_masks(run, call.mask_mod, B, H, q_idx) if run.spans else []
    drop = None
    if span_masks and not call.finite:
        drop = _whole_drop(run, span_masks, width)  # (B|1, H|1, bq, width)
        kts, vs = _zero_dead_pieces(kts, vs, drop, widths, B, H, keys=True)
    # S = α Q Kᵀ, masked                                           (B·Hkv, G·bq, width)
    s = _products_into(qg.new_empty(qg.shape[0], qg.shape[1], width), qg, kts, call.scale)
    s4 = s.view(B, H, bq, width)
    _mask_in_place(s4, run, span_masks, drop)
    # P = e^{S − L}
    s.sub_(lseg)
    for c0, c1 in run.spans:
        s4[..., c0:c1].clamp_min_(EXP_FLOOR)
    p = s.exp_()
    # dS = P ∘ (dO Vᵀ − D)
    dp = _products_into(torch.empty_like(p), dog, [x.mT for x in vs])
    p_parts = p.split(widths, dim=-1)
    for pp, x in zip(p_parts, _slots(run, dv3)):  # dV += Pᵀ dO
        x(torch.bmm(pp.mT, dog))
    ds = dp.sub_(dig).mul_(p)
    for dsp, x, kt_piece in zip(ds.split(widths, dim=-1), _slots(run, dk3), kts):
        dqg.baddbmm_(dsp, kt_piece.mT, alpha=call.scale)  # dQ += α dS K
        x(torch.bmm(dsp.mT, qg).mul_(call.scale))  # dK += α dSᵀ Q


def _slots(run: _Run, acc3: Tensor) -> list:
    """Adders into a step's keys of a ``(B·Hkv, Lk, ·)`` gradient: the slice, then the
    gathered columns."""
    slots = []
    if run.k1 > run.k0:
        slots.append(acc3[:, run.k0 : run.k1].add_)
    if run.cols is not None:
        slots.append(lambda x, cols=run.cols: acc3.index_add_(1, cols, x))
    return slots


def _with_score_mod_grad(q, k, v, plan: _Plan, mask_mod, score_mod, scale) -> Tensor:
    """Autograd through tiles, one query block at a time under checkpointing."""
    call = plan.call(k, v, mask_mod, score_mod, scale, need_lse=False)
    outs = []
    for i in range(plan.nq):
        qg, steps, q_idx, shape = plan.row_inputs(q, i)
        o, _ = checkpoint(_row, qg, steps, q_idx, shape, call, use_reentrant=False)
        outs.append(plan.unblock(o, i))
    return torch.cat(outs, dim=2)  # (B, H, Lq, Dv)


def _tiled(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask_mod: MaskMod | None,
    score_mod: ScoreMod | None,
    scale: float,
    block_size: int | tuple[int, int] = DEFAULT_BLOCK_SIZE,
) -> Tensor:
    dtype = q.dtype
    if dtype in (torch.float16, torch.bfloat16):  # accumulate the softmax in float32
        q, k, v = q.float(), k.float(), v.float()
    bq, bk = block_size if isinstance(block_size, tuple) else (block_size, block_size)
    plan = _Plan(q, k, v, mask_mod, bq, bk)
    if not plan.finite and plan.G > 1:
        # A non-finite key that the mask hides from some heads of its group but not from others
        # must be zeroed for those heads only (0·NaN): give each query head its own K and V.
        k, v = (x.repeat_interleave(plan.G, dim=1) for x in (k, v))
        plan = _Plan(q, k, v, mask_mod, bq, bk)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    if score_mod is not None and needs_grad:
        out = _with_score_mod_grad(q, k, v, plan, mask_mod, score_mod, scale)
    elif needs_grad:
        out = _TiledAttention.apply(q, k, v, plan, mask_mod, scale)
    else:
        with torch.no_grad():
            out, _ = _forward(q, k, v, plan, mask_mod, score_mod, scale, need_lse=False)
    return out.to(dtype)


def tiled_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    mask_mod: MaskMod | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> AttentionOutput:
    r"""Exact softmax attention computed tile by tile (FlashAttention, Dao et al. 2022,
    arXiv:2205.14135, Algorithms 1 and 2), never materialising the ``(Lq, Lk)`` matrix.

    .. math:: O = \operatorname{softmax}\!\left(\frac{QK^\top}{\sqrt{D}}\right) V

    Args:
        q: ``(B, H, Lq, D)``; k: ``(B, Hkv, Lk, D)``; v: ``(B, Hkv, Lk, Dv)`` (GQA allowed).
        mask_mod: any mask (``masks.causal`` for causal attention, bottom-right aligned when
            ``Lq != Lk``); its empty ``block_size`` tiles are skipped.
        block_size: rows and columns per tile; memory is O((Lq + Lk)·D + block_size·H·RUN_KEYS).

    Returns:
        :class:`AttentionOutput` with ``output (B, H, Lq, Dv)`` and ``weights=None`` (the
        whole point is never to form them; use ``attend(backend="reference")`` to draw them).
        ``attend(..., backend="tiled")`` is this with the default ``block_size`` (and
        ``score_mod`` support); this function exists to choose the tile size.
    """
    check_qkv(q, k, v)
    if isinstance(block_size, bool) or not isinstance(block_size, int):
        raise TypeError(f"block_size must be an int, got {type(block_size).__name__}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if mask_mod is not None and not callable(mask_mod):
        raise TypeError(f"mask_mod must be a mask function or None, got {type(mask_mod).__name__}")
    scale = 1.0 / math.sqrt(q.shape[-1])
    out = _tiled(q, k, v, mask_mod, None, scale, block_size)
    return AttentionOutput(out, None)


def _backend(q, k, v, mask_mod, score_mod, scale, dropout_p, return_weights) -> AttentionOutput:
    """``attend(..., backend="tiled")``: any mask_mod (empty tiles skipped) and score_mod."""
    return AttentionOutput(_tiled(q, k, v, mask_mod, score_mod, scale), None)


core.register_backend(
    "tiled", _backend, gives_weights=False, supports_score_mod=True, supports_dropout=False
)
