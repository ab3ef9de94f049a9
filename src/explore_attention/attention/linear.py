r"""Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs", arXiv:2006.16236).

Softmax attention is a kernel smoother, :math:`o_i = \sum_j \kappa(q_i,k_j) v_j / \sum_j
\kappa(q_i,k_j)` with :math:`\kappa(q,k) = e^{q\cdot k/\sqrt{D}}`. Replacing the kernel by a dot
product of feature maps, :math:`\kappa(q,k) = \phi(q)^\top \phi(k)`, lets the sums be
re-associated (Eq. 4–5):

.. math::

    o_i = \frac{\phi(q_i)^\top \sum_j \phi(k_j) v_j^\top}{\phi(q_i)^\top \sum_j \phi(k_j)}

so the cost is O(L·D·Dv) instead of O(L²·D). Causal attention keeps prefix sums
:math:`S_i = \sum_{j\le i} \phi(k_j) v_j^\top`, :math:`z_i = \sum_{j \le i} \phi(k_j)` (Eq. 10–12);
we compute them chunk by chunk: inside a chunk the masked quadratic form, across chunks the
carried state, streamed over the sequence in passes of a few chunks — O(L·C·D) time, temporaries
of a fixed size, no O(L²) anywhere.

:func:`linear_attention` uses :math:`\phi(x) = \operatorname{elu}(x) + 1` (Eq. 7);
:func:`linear_attention_from_features` takes any positive features, which is how Performer
(:mod:`.performer`) runs. Causal is a mask (``mask_mod=masks.causal``, bottom-right aligned when
``Lq != Lk``); no other mask is supported.

The normaliser is guarded by an epsilon and accumulated in float32 for float16/bfloat16 inputs,
so long low-precision inputs give no NaN. ``return_weights=True`` (the default, as for every
mechanism) returns the *implied* attention matrix :math:`A_{ij} = \phi(q_i)^\top\phi(k_j) /
\sum_{j'} \phi(q_i)^\top\phi(k_{j'})` (O(L²) memory: for drawing and comparing; pass
``return_weights=False`` for the O(L) path).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_bool
from .approx import by_head_groups, causal_only
from .core import AttentionOutput, MaskMod, check_qkv, repeat_kv

__all__ = ["elu_feature_map", "linear_attention", "linear_attention_from_features"]

EPS = 1e-6  # guards the normaliser φ(q)ᵀ Σ φ(k)
CHUNK = 64  # rows per chunk of the causal prefix-sum form
SUPER_CHUNKS = 32  # chunks per pass of the causal form (bounds its temporaries)


def elu_feature_map(x: Tensor) -> Tensor:
    r""":math:`\phi(x) = \operatorname{elu}(x) + 1 > 0` (Katharopoulos et al. 2020, Eq. 7)."""
    return F.elu(x) + 1.0


def linear_attention_from_features(
    phi_q: Tensor,
    phi_k: Tensor,
    v: Tensor,
    *,
    mask_mod: MaskMod | None = None,
    key_log_scale: Tensor | None = None,
    return_weights: bool = True,
) -> AttentionOutput:
    r"""Kernelised attention given positive features ``φ(q) (B, H, Lq, M)``, ``φ(k) (B, H, Lk, M)``.

    .. math:: o_i = \frac{\phi(q_i)^\top \sum_{j} \phi(k_j) v_j^\top}
                         {\phi(q_i)^\top \sum_{j} \phi(k_j) + \epsilon}

    with :math:`j \le i` (bottom-right aligned when ``Lq != Lk``) for ``mask_mod=masks.causal``.

    ``key_log_scale (B, H, Lk)``, if given, says the true key features are
    :math:`\phi(k_j) = \hat\phi_j e^{c_j}` with ``phi_k`` holding :math:`\hat\phi_j` — features
    too large for floating point (Performer's exponentials) travel as a bounded vector and a
    log-scale. A factor common to every key a query sees cancels in the ratio above, so query
    :math:`i` uses :math:`\hat\phi_j e^{c_j - M_i}` with :math:`M_i = \max c_j` over *the keys it
    sees*: over all keys without a mask, over the prefix :math:`j \le i` with the causal mask (a
    running max, as FlashAttention's online softmax keeps). Every factor is then at most 1, and
    the result for query :math:`i` never depends on a later key — not even through
    :math:`\epsilon`.
    """
    check_qkv(phi_q, phi_k, v)
    causal = causal_only(mask_mod, "linear attention")
    check_bool("return_weights", return_weights)
    if phi_k.shape[1] != phi_q.shape[1]:
        raise ValueError(
            f"phi_q and phi_k must have the same heads (repeat_kv first): phi_q "
            f"{tuple(phi_q.shape)}, phi_k {tuple(phi_k.shape)}"
        )
    if key_log_scale is not None and key_log_scale.shape != phi_k.shape[:3]:
        raise ValueError(
            f"key_log_scale must have shape (B, H, Lk) = {tuple(phi_k.shape[:3])}, got "
            f"{tuple(key_log_scale.shape)}"
        )
    dtype = v.dtype
    if dtype in (torch.float16, torch.bfloat16):  # accumulate sums in float32
        phi_q, phi_k, v = phi_q.float(), phi_k.float(), v.float()
        key_log_scale = None if key_log_scale is None else key_log_scale.float()
    if causal:
        out = by_head_groups(_causal_output, dtype, phi_q, phi_k, key_log_scale, v)
    else:
        if key_log_scale is not None:  # one constant per head cancels
            c = key_log_scale - key_log_scale.amax(-1, keepdim=True)  # (B, H, Lk) ≤ 0
            phi_k = phi_k * torch.exp(c).unsqueeze(-1)
        out = by_head_groups(_full_output, dtype, phi_q, phi_k, v)
    weights = None
    if return_weights:
        weights = _implied_weights(phi_q, phi_k, key_log_scale if causal else None, causal)
        weights = weights.to(dtype)
    return AttentionOutput(out, weights)


def _implied_weights(
    phi_q: Tensor, phi_k: Tensor, key_log_scale: Tensor | None, causal: bool
) -> Tensor:
    """The ``(B, H, Lq, Lk)`` matrix :math:`A_{ij} = φ(q_i)ᵀφ(k_j) / (Σ_j φ(q_i)ᵀφ(k_j) + ε)`,
    with the same stabilisation as the output (see :func:`linear_attention_from_features`)."""
    Lq, Lk = phi_q.shape[2], phi_k.shape[2]
    a = torch.einsum("bhim,bhjm->bhij", phi_q, phi_k)  # (B, H, Lq, Lk)
    if causal:
        kpos = torch.arange(Lk, device=a.device)
        qpos = torch.arange(Lq, device=a.device) + (Lk - Lq)  # query i's key position
        future = kpos.view(1, -1) > qpos.view(-1, 1)  # (Lq, Lk)
        if key_log_scale is not None:
            run = key_log_scale.cummax(-1).values  # (B, H, Lk) max over keys 0..p
            top = run[:, :, qpos.clamp(min=0)]  # (B, H, Lq) M_i (rows with qpos < 0 see nothing)
            c = (key_log_scale.unsqueeze(-2) - top.unsqueeze(-1)).clamp(max=0)  # (B, H, Lq, Lk)
            a = a * torch.exp(c)
        a = a.masked_fill(future, 0.0)
    return a / (a.sum(-1, keepdim=True) + EPS)


def _full_output(phi_q: Tensor, phi_k: Tensor, v: Tensor) -> Tensor:
    """The unmasked output ``(B, H, Lq, Dv)`` (Eq. 5)."""
    # S = Σ_j φ(k_j) v_jᵀ (B, H, M, Dv);  z = Σ_j φ(k_j) (B, H, M)
    kv = torch.einsum("bhlm,bhld->bhmd", phi_k, v)
    z = phi_k.sum(2)
    num = torch.einsum("bhlm,bhmd->bhld", phi_q, kv)  # (B, H, Lq, Dv)
    den = torch.einsum("bhlm,bhm->bhl", phi_q, z).unsqueeze(-1)  # (B, H, Lq, 1)
    return num / (den + EPS)


def _exclusive_prefix_sum(
    x: Tensor, start: Tensor, ends: Tensor | None = None, top: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """``out[:, :, c] = start + Σ_{c' < c} x[:, :, c']`` along dim 2, and the total.

    A running sum: one small add per chunk is cheaper on a CPU than ``cumsum`` along a
    non-innermost dimension. With log-scales — chunk ``c``'s ``x`` is scaled by
    ``exp(-ends[:, :, c])``, ``start`` by ``exp(-top)`` — the running sum is brought to each
    chunk's scale before the chunk is added, and ``starts[:, :, c]`` is ``out[:, :, c]``'s scale.
    Returns ``(out, total, starts, total's scale)``.
    """
    out = torch.empty_like(x)
    if ends is None:
        run = start.clone()
        for c in range(x.shape[2]):
            out[:, :, c] = run
            run += x[:, :, c]
        return out, run, None, None
    run, starts = start, torch.empty_like(ends)
    for c in range(x.shape[2]):
        out[:, :, c], starts[:, :, c] = run, top
        run = run * torch.exp(top - ends[:, :, c])[..., None, None] + x[:, :, c]
        top = ends[:, :, c]
    return out, run, starts, top


def _causal_output(
    q: Tensor,
    k: Tensor,
    key_log_scale: Tensor | None,
    v: Tensor,
    feature_map: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    r"""Causal linear attention ``(B, H, Lq, Dv)`` (Eq. 10–12), streamed over the keys.

    Keys are taken in passes of ``SUPER_CHUNKS`` chunks of ``CHUNK`` rows, carrying the running
    state :math:`S = \sum_{j} \phi(k_j)[v_j \mid 1]^\top` from pass to pass. Within a pass, chunk
    :math:`c` gets :math:`(\Phi_{Q,c}\Phi_{K,c}^\top \odot M)[V_c \mid 1] + \Phi_{Q,c} S_{<c}`
    (:math:`M` the causal mask inside the chunk, :math:`S_{<c}` an exclusive prefix sum): the
    numerator, with the denominator riding along as the value column of ones. ``feature_map``
    (if given) is applied to each pass's slice of ``q`` and ``k``, so every temporary has a fixed
    size and time and memory grow linearly with L.

    With ``key_log_scale`` (see :func:`linear_attention_from_features`) every state carries the
    running max :math:`M` of the log-scales it has seen and is rescaled by :math:`e^{M - M'}`
    when the max grows to :math:`M'`; row :math:`p` is brought to its own prefix max
    :math:`M_p`, so it reads keys :math:`0..p` only.
    """
    B, H, Lq, _ = q.shape
    Lk, Dv = k.shape[2], v.shape[-1]
    phi = feature_map or (lambda x: x)
    out = v.new_zeros(B, H, Lq, Dv)
    off = Lk - Lq  # query i sits at key position i + off (bottom-right alignment)
    C, P = CHUNK, CHUNK * SUPER_CHUNKS  # rows per chunk, keys per pass
    state = None  # (B, H, M, Dv + 1)
    top = torch.full((B, H), -math.inf, dtype=v.dtype, device=v.device)  # state's log-scale
    for k0 in range(0, Lk, P):
        k1 = min(Lk, k0 + P)
        n, pad = math.ceil((k1 - k0) / C), -(k1 - k0) % C
        q0, q1 = max(0, k0 - off), k1 - off  # queries at key positions [k0, k1)
        fk = phi(k[:, :, k0:k1])  # (B, H, p, M)
        if state is None:
            state = fk.new_zeros(B, H, fk.shape[-1], Dv + 1)
        # query rows aligned with the pass's keys: zeros stand in for positions < off
        fq = F.pad(
            phi(q[:, :, q0:q1]) if q1 > 0 else fk[:, :, :0], (0, 0, k1 - k0 - max(q1 - q0, 0), pad)
        )
        fk = F.pad(fk, (0, 0, 0, pad)).view(B, H, n, C, -1)  # (B, H, n, C, M)
        fq = fq.view(B, H, n, C, -1)
        vv = F.pad(F.pad(v[:, :, k0:k1], (0, 1), value=1.0), (0, 0, 0, pad))  # [V | 1], 0 rows
        vv = vv.view(B, H, n, C, Dv + 1)  # (B, H, n, C, Dv + 1)
        a = torch.einsum("bhnim,bhnjm->bhnij", fq, fk)  # (B, H, n, C, C)
        if key_log_scale is None:
            # per-chunk states Φ_Kᵀ [V | 1] (B, H, n, M, Dv + 1) → S_{<c}
            chunk_states = torch.einsum("bhncm,bhncd->bhnmd", fk, vv)
            kv_prev, state, _, _ = _exclusive_prefix_sum(chunk_states, state)
            prev_scale = None
        else:
            ls = F.pad(key_log_scale[:, :, k0:k1], (0, pad), value=-math.inf)  # (B, H, n·C)
            run = torch.maximum(ls.cummax(-1).values, top.unsqueeze(-1))  # M_p, (B, H, n·C)
            ls, run = ls.view(B, H, n, C), run.view(B, H, n, C)
            ends = run[..., -1]  # (B, H, n): chunk c's state is scaled by e^{-M at its end}
            fk_end = fk * torch.exp(ls - ends.unsqueeze(-1)).unsqueeze(-1)  # factors ≤ 1
            chunk_states = torch.einsum("bhncm,bhncd->bhnmd", fk_end, vv)
            kv_prev, state, starts, top = _exclusive_prefix_sum(chunk_states, state, ends, top)
            # row p: keys of its chunk at e^{c_j − M_p}, the carried state at e^{start − M_p}
            a = a * torch.exp((ls.unsqueeze(-2) - run.unsqueeze(-1)).clamp(max=0))
            prev_scale = torch.exp(starts.unsqueeze(-1) - run).unsqueeze(-1)  # (B, H, n, C, 1)
        a = a.tril_()  # keys j ≤ i inside the chunk
        carried = torch.einsum("bhncm,bhnmd->bhncd", fq, kv_prev)  # (B, H, n, C, Dv + 1)
        if prev_scale is not None:
            carried = carried * prev_scale
        o = torch.einsum("bhnij,bhnjd->bhnid", a, vv) + carried  # (B, H, n, C, Dv + 1)
        if q1 > q0:
            o = o.reshape(B, H, n * C, Dv + 1)[:, :, k1 - k0 - (q1 - q0) : k1 - k0]
            out[:, :, q0:q1] = o[..., :Dv] / (o[..., Dv:] + EPS)
    return out  # queries that see no key (Lq > Lk) stay 0


def linear_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    mask_mod: MaskMod | None = None,
    return_weights: bool = True,
) -> AttentionOutput:
    r"""Linear attention with :math:`\phi = \operatorname{elu} + 1` (Katharopoulos et al. 2020,
    arXiv:2006.16236, Eq. 6–7; ``mask_mod=masks.causal``: Eq. 10–12 in chunked prefix-sum form).

    .. math:: o_i = \frac{\phi(q_i)^\top \sum_{j} \phi(k_j) v_j^\top}{\phi(q_i)^\top
              \sum_{j} \phi(k_j) + \epsilon}

    Shapes: q ``(B, H, Lq, D)``, k ``(B, Hkv, Lk, D)``, v ``(B, Hkv, Lk, Dv)`` → output
    ``(B, H, Lq, Dv)``; ``weights`` the implied ``(B, H, Lq, Lk)`` matrix, or None with
    ``return_weights=False`` (the O(L)-memory path). ``mask_mod``: None or ``masks.causal``;
    any other mask raises ``NotImplementedError``.
    """
    check_qkv(q, k, v)
    causal = causal_only(mask_mod, "linear attention")
    check_bool("return_weights", return_weights)
    H = q.shape[1]
    k, v = repeat_kv(k, H), repeat_kv(v, H)  # (B, H, Lk, D)
    if return_weights:
        return linear_attention_from_features(
            elu_feature_map(q), elu_feature_map(k), v, mask_mod=mask_mod, return_weights=True
        )

    def heads(q_: Tensor, k_: Tensor, v_: Tensor) -> Tensor:
        if v_.dtype in (torch.float16, torch.bfloat16):  # accumulate sums in float32
            q_, k_, v_ = q_.float(), k_.float(), v_.float()
        if causal:  # features computed pass by pass
            return _causal_output(q_, k_, None, v_, elu_feature_map)
        return _full_output(elu_feature_map(q_), elu_feature_map(k_), v_)

    return AttentionOutput(by_head_groups(heads, v.dtype, q, k, v), None)
