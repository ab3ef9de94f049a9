r"""Linear attention (Katharopoulos et al. 2020) and Performer FAVOR+ (Choromanski et al. 2020).

Softmax attention is a kernel smoother, :math:`o_i = \sum_j \kappa(q_i,k_j) v_j / \sum_j
\kappa(q_i,k_j)` with :math:`\kappa(q,k) = e^{q\cdot k/\sqrt{D}}`. Replacing the kernel by a dot
product of feature maps, :math:`\kappa(q,k) = \phi(q)^\top \phi(k)`, lets the sums be
re-associated (Katharopoulos et al. 2020, "Transformers are RNNs", arXiv:2006.16236, Eq. 4–5):

.. math::

    o_i = \frac{\phi(q_i)^\top \sum_j \phi(k_j) v_j^\top}{\phi(q_i)^\top \sum_j \phi(k_j)}

so the cost is O(L·D·Dv) instead of O(L²·D). Causal attention keeps prefix sums
:math:`S_i = \sum_{j\le i} \phi(k_j) v_j^\top`, :math:`z_i = \sum_{j \le i} \phi(k_j)` (Eq. 10–12);
we compute them chunk by chunk: inside a chunk the masked quadratic form, across chunks the
carried state, streamed over the sequence in passes of a few chunks — O(L·C·D) time, temporaries
of a fixed size, no O(L²) anywhere.

* **linear attention**: :math:`\phi(x) = \operatorname{elu}(x) + 1` (Eq. 7).
* **Performer FAVOR+** (Choromanski et al. 2020, arXiv:2009.14794, Lemma 1 / Eq. 7): positive
  random features :math:`\phi(x) = \frac{1}{\sqrt m} \exp(\omega_r^\top x - \lVert x\rVert^2/2)`,
  :math:`r = 1..m`, with orthogonal :math:`\omega_r` (§2.4), applied to :math:`x/D^{1/4}` so that
  :math:`\mathbb{E}[\phi(q)^\top\phi(k)] = e^{q\cdot k/\sqrt D}` — unbiased softmax attention.

The normaliser is guarded by an epsilon and accumulated in float32 for float16/bfloat16 inputs,
so long low-precision inputs give no NaN. ``return_weights=True`` returns the *implied*
attention matrix :math:`A_{ij} = \phi(q_i)^\top\phi(k_j) / \sum_{j'} \phi(q_i)^\top\phi(k_{j'})`
(O(L²) memory: for drawing and comparing only).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .core import AttentionOutput, check_qkv, repeat_kv

__all__ = [
    "elu_feature_map",
    "favor_features",
    "linear_attention",
    "linear_attention_from_features",
    "orthogonal_random_features",
    "performer_attention",
]

EPS = 1e-6  # guards the normaliser φ(q)ᵀ Σ φ(k)
CHUNK = 64  # rows per chunk of the causal prefix-sum form
SUPER_CHUNKS = 32  # chunks per pass of the causal form (bounds its temporaries)


def elu_feature_map(x: Tensor) -> Tensor:
    r""":math:`\phi(x) = \operatorname{elu}(x) + 1 > 0` (Katharopoulos et al. 2020, Eq. 7)."""
    return F.elu(x) + 1.0


def _check_flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")


def linear_attention_from_features(
    phi_q: Tensor, phi_k: Tensor, v: Tensor, *, causal: bool = False, return_weights: bool = False
) -> AttentionOutput:
    r"""Kernelised attention given the features ``φ(q) (B, H, Lq, M)``, ``φ(k) (B, H, Lk, M)``.

    .. math:: o_i = \frac{\phi(q_i)^\top \sum_{j} \phi(k_j) v_j^\top}
                         {\phi(q_i)^\top \sum_{j} \phi(k_j) + \epsilon}

    with :math:`j \le i` (bottom-right aligned when ``Lq != Lk``) when ``causal``.
    """
    dtype = v.dtype
    if dtype in (torch.float16, torch.bfloat16):  # accumulate sums in float32
        phi_q, phi_k, v = phi_q.float(), phi_k.float(), v.float()
    Lq, Lk = phi_q.shape[2], phi_k.shape[2]
    out = _by_head_groups(lambda a, b, c: _output(a, b, c, causal), dtype, phi_q, phi_k, v)
    weights = None
    if return_weights:
        a = torch.einsum("bhim,bhjm->bhij", phi_q, phi_k)  # (B, H, Lq, Lk)
        if causal:
            qpos = torch.arange(Lq, device=a.device).view(-1, 1) + (Lk - Lq)
            a = a.masked_fill(torch.arange(Lk, device=a.device).view(1, -1) > qpos, 0.0)
        weights = (a / (a.sum(-1, keepdim=True) + EPS)).to(dtype)
    return AttentionOutput(out, weights)


def _output(phi_q: Tensor, phi_k: Tensor, v: Tensor, causal: bool) -> Tensor:
    """The normalised output ``(B, H, Lq, Dv)``, non-causal (Eq. 5) or causal (Eq. 10–12)."""
    if not causal:
        # S = Σ_j φ(k_j) v_jᵀ (B, H, M, Dv);  z = Σ_j φ(k_j) (B, H, M)
        kv = torch.einsum("bhlm,bhld->bhmd", phi_k, v)
        z = phi_k.sum(2)
        num = torch.einsum("bhlm,bhmd->bhld", phi_q, kv)  # (B, H, Lq, Dv)
        den = torch.einsum("bhlm,bhm->bhl", phi_q, z).unsqueeze(-1)  # (B, H, Lq, 1)
        return num / (den + EPS)
    return _causal_output(phi_q, phi_k, v)


def _by_head_groups(fn, dtype: torch.dtype, *tensors: Tensor) -> Tensor:
    """``fn(*tensors)`` → ``(B, H, Lq, Dv)`` of ``dtype``; on a multi-threaded CPU without
    autograd, run on groups of heads in parallel Python threads with single-threaded ops
    instead: a chain of medium-sized operations otherwise pays an OpenMP hand-off per operation
    (costly on a busy machine). Inside a worker ``get_num_threads() == 1``, so nested calls run
    directly."""
    from .threads import run_parallel

    threads = torch.get_num_threads()
    q, v = tensors[0], tensors[-1]
    B, H, Lq = q.shape[:3]
    if threads < 2 or H < 2 or q.device.type != "cpu" or torch.is_grad_enabled():
        return fn(*tensors).to(dtype)
    n = min(threads, H)
    bounds = [(H * t // n, H * (t + 1) // n) for t in range(n)]  # contiguous head ranges
    out = torch.empty(B, H, Lq, v.shape[-1], dtype=dtype, device=q.device)  # (B, H, Lq, Dv)

    def task(a: int, b: int) -> None:
        out[:, a:b] = fn(*(t[:, a:b] for t in tensors))  # disjoint heads: no race

    run_parallel([lambda a=a, b=b: task(a, b) for a, b in bounds])
    return out


def _exclusive_prefix_sum(x: Tensor, start: Tensor) -> tuple[Tensor, Tensor]:
    """``out[:, :, c] = start + Σ_{c' < c} x[:, :, c']`` along dim 2, and the total
    ``start + Σ_c x[:, :, c]``. A running sum: one small add per chunk is cheaper on a CPU than
    ``cumsum`` along a non-innermost dimension."""
    out = torch.empty_like(x)
    run = start.clone()
    for c in range(x.shape[2]):
        out[:, :, c] = run
        run += x[:, :, c]
    return out, run


def _causal_output(
    q: Tensor, k: Tensor, v: Tensor, feature_map: Callable[[Tensor], Tensor] | None = None
) -> Tensor:
    r"""Causal linear attention ``(B, H, Lq, Dv)`` (Eq. 10–12), streamed over the keys.

    Keys are taken in passes of ``SUPER_CHUNKS`` chunks of ``CHUNK`` rows, carrying the running
    state :math:`S = \sum_{j} \phi(k_j)[v_j \mid 1]^\top` from pass to pass. Within a pass, chunk
    :math:`c` gets :math:`(\Phi_{Q,c}\Phi_{K,c}^\top \odot M)[V_c \mid 1] + \Phi_{Q,c} S_{<c}`
    (:math:`M` the causal mask inside the chunk, :math:`S_{<c}` an exclusive prefix sum): the
    numerator, with the denominator riding along as the value column of ones. ``feature_map``
    (if given) is applied to each pass's slice of ``q`` and ``k``, so every temporary has a fixed
    size and time and memory grow linearly with L.
    """
    B, H, Lq, _ = q.shape
    Lk, Dv = k.shape[2], v.shape[-1]
    phi = feature_map or (lambda x: x)
    out = v.new_zeros(B, H, Lq, Dv)
    off = Lk - Lq  # query i sits at key position i + off (bottom-right alignment)
    C, P = CHUNK, CHUNK * SUPER_CHUNKS  # rows per chunk, keys per pass
    state = None  # (B, H, M, Dv + 1)
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
        # per-chunk states Φ_Kᵀ [V | 1] (B, H, n, M, Dv + 1) → S_{<c}
        kv_prev, state = _exclusive_prefix_sum(torch.einsum("bhncm,bhncd->bhnmd", fk, vv), state)
        a = torch.einsum("bhnim,bhnjm->bhnij", fq, fk).tril_()  # (B, H, n, C, C) keys j ≤ i
        o = torch.einsum("bhnij,bhnjd->bhnid", a, vv) + torch.einsum(
            "bhncm,bhnmd->bhncd", fq, kv_prev
        )  # (B, H, n, C, Dv + 1)
        if q1 > q0:
            o = o.reshape(B, H, n * C, Dv + 1)[:, :, k1 - k0 - (q1 - q0) : k1 - k0]
            out[:, :, q0:q1] = o[..., :Dv] / (o[..., Dv:] + EPS)
    return out  # queries that see no key (Lq > Lk) stay 0


def linear_attention(
    q: Tensor, k: Tensor, v: Tensor, *, causal: bool = False, return_weights: bool = False
) -> AttentionOutput:
    r"""Linear attention with :math:`\phi = \operatorname{elu} + 1` (Katharopoulos et al. 2020,
    arXiv:2006.16236, Eq. 6–7; causal: Eq. 10–12 in chunked prefix-sum form).

    .. math:: o_i = \frac{\phi(q_i)^\top \sum_{j} \phi(k_j) v_j^\top}{\phi(q_i)^\top
              \sum_{j} \phi(k_j) + \epsilon}

    Shapes: q ``(B, H, Lq, D)``, k ``(B, Hkv, Lk, D)``, v ``(B, Hkv, Lk, Dv)`` → output
    ``(B, H, Lq, Dv)``; ``weights`` the implied ``(B, H, Lq, Lk)`` matrix when asked.
    """
    check_qkv(q, k, v)
    _check_flag("causal", causal)
    _check_flag("return_weights", return_weights)
    H = q.shape[1]
    k, v = repeat_kv(k, H), repeat_kv(v, H)  # (B, H, Lk, D)
    if return_weights:
        return linear_attention_from_features(
            elu_feature_map(q), elu_feature_map(k), v, causal=causal, return_weights=True
        )

    def heads(q_: Tensor, k_: Tensor, v_: Tensor) -> Tensor:
        if causal:  # features computed pass by pass
            dtype = v_.dtype
            if dtype in (torch.float16, torch.bfloat16):  # accumulate sums in float32
                q_, k_, v_ = q_.float(), k_.float(), v_.float()
            return _causal_output(q_, k_, v_, elu_feature_map).to(dtype)
        phi_q, phi_k = elu_feature_map(q_), elu_feature_map(k_)
        return linear_attention_from_features(phi_q, phi_k, v_).output

    return AttentionOutput(_by_head_groups(heads, v.dtype, q, k, v), None)


# --------------------------------------------------------------------------- Performer


def orthogonal_random_features(
    num_features: int,
    dim: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""Random projections :math:`\omega \in \mathbb{R}^{m\times D}` with orthogonal rows in
    blocks of ``D`` and Gaussian-like norms (Choromanski et al. 2020, §2.4, "ORF").

    Each block is Q from the QR decomposition of a Gaussian matrix; row norms are redrawn as
    the norms of Gaussian vectors (chi distribution with ``D`` degrees of freedom), so every
    row is marginally :math:`\mathcal N(0, I_D)`.
    """
    blocks = []
    for _ in range(math.ceil(num_features / dim)):
        g = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
        qmat, _ = torch.linalg.qr(g)  # (D, D), orthonormal columns
        blocks.append(qmat.T)
    w = torch.cat(blocks, 0)[:num_features]  # (m, D)
    norms = torch.randn(num_features, dim, generator=generator, dtype=torch.float64).norm(dim=1)
    return (w * norms[:, None]).to(dtype)


def favor_features(x: Tensor, omega: Tensor, *, is_query: bool) -> Tensor:
    r"""Positive random features :math:`\phi(x) = \frac{1}{\sqrt m}\exp(\omega x - \lVert
    x\rVert^2/2 - c)` (Choromanski et al. 2020, Lemma 1), ``x`` already scaled by
    :math:`D^{-1/4}`.

    The stabiliser :math:`c` cancels in the attention ratio: per row for queries, one constant
    over all keys (a per-key shift would not cancel).
    """
    m = omega.shape[0]
    wx = torch.einsum("bhld,md->bhlm", x, omega.to(x.dtype))  # (B, H, L, m)
    sq = (x * x).sum(-1, keepdim=True) / 2  # (B, H, L, 1)
    logits = wx - sq
    if is_query:
        c = logits.amax(-1, keepdim=True).detach()
    else:
        c = logits.amax(dim=(-2, -1), keepdim=True).detach()
    return torch.exp(logits - c) / math.sqrt(m) + 1e-8


def performer_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    num_features: int,
    causal: bool = False,
    generator: torch.Generator | None = None,
    return_weights: bool = False,
) -> AttentionOutput:
    r"""Performer FAVOR+ attention: an unbiased random-feature estimate of softmax attention
    (Choromanski et al. 2020, arXiv:2009.14794).

    .. math:: \widehat{\operatorname{Att}}(Q,K,V) = \hat D^{-1}\big(\phi(Q)(\phi(K)^\top V)\big),
              \quad \hat D = \operatorname{diag}(\phi(Q)\phi(K)^\top \mathbf 1)

    with :math:`\phi` from :func:`favor_features` on :math:`q/D^{1/4}, k/D^{1/4}` and
    ``num_features`` orthogonal random features drawn from ``generator``. The error against
    exact attention shrinks as ``num_features`` grows (roughly as :math:`1/\sqrt m`).
    """
    check_qkv(q, k, v)
    _check_flag("causal", causal)
    _check_flag("return_weights", return_weights)
    if isinstance(num_features, bool) or not isinstance(num_features, int):
        raise TypeError(f"num_features must be an int, got {type(num_features).__name__}")
    if num_features < 1:
        raise ValueError(f"num_features must be >= 1, got {num_features}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    H, D = q.shape[1], q.shape[-1]
    k, v = repeat_kv(k, H), repeat_kv(v, H)  # (B, H, Lk, D)
    work = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a few small QR decompositions: OpenMP hand-offs would dominate
    try:
        omega = orthogonal_random_features(num_features, D, generator=generator, dtype=work)
    finally:
        torch.set_num_threads(threads)
    omega = omega.to(q.device)
    s = D**-0.25  # q·k/√D = (q/D^{1/4})·(k/D^{1/4})

    def heads(q_: Tensor, k_: Tensor, v_: Tensor, weights: bool = False) -> AttentionOutput:
        phi_q = favor_features(q_.to(work) * s, omega, is_query=True)  # (B, H, Lq, m)
        phi_k = favor_features(k_.to(work) * s, omega, is_query=False)  # (B, H, Lk, m)
        return linear_attention_from_features(
            phi_q, phi_k, v_.to(work), causal=causal, return_weights=weights
        )

    if return_weights:
        res = heads(q, k, v, True)
        return AttentionOutput(res.output.to(q.dtype), res.weights.to(q.dtype))
    out = _by_head_groups(lambda a, b, c: heads(a, b, c).output, q.dtype, q, k, v)
    return AttentionOutput(out, None)
