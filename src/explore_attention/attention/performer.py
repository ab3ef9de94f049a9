r"""Performer FAVOR+ (Choromanski et al. 2020, "Rethinking Attention with Performers",
arXiv:2009.14794): an unbiased random-feature estimate of softmax attention in linear time.

Softmax attention's kernel :math:`\kappa(q, k) = e^{q\cdot k/\sqrt D}` is an expectation over
Gaussian projections :math:`\omega \sim \mathcal N(0, I_D)` (Lemma 1, positive random features):

.. math::

    e^{x^\top y} = \mathbb E_\omega\!\left[e^{\omega^\top x - \lVert x\rVert^2/2}\,
                                          e^{\omega^\top y - \lVert y\rVert^2/2}\right],
    \qquad x = q/D^{1/4},\ y = k/D^{1/4}.

With :math:`m` draws :math:`\omega_1..\omega_m`, :math:`\phi(x)_r = \frac{1}{\sqrt m}
e^{\omega_r^\top x - \lVert x\rVert^2/2}` gives :math:`\phi(q)^\top\phi(k)`, an unbiased,
strictly positive estimate of :math:`\kappa(q, k)`, and attention becomes linear attention with
these features (:func:`.linear.linear_attention_from_features`). Drawing the :math:`\omega_r`
*orthogonal* in blocks of :math:`D` (§2.4, "ORF") keeps the estimate unbiased and lowers its
variance.

**Stabilisation.** :math:`e^{\omega^\top x}` overflows for long vectors, so every feature vector
is stored as :math:`\phi(x) = \hat\phi(x)\, e^{c(x)}` with :math:`c(x) = \max_r(\omega_r^\top x
- \lVert x\rVert^2/2)` and :math:`\hat\phi(x) \in (0, 1/\sqrt m]^m` (:func:`favor_features`).
A query's :math:`e^{c}` multiplies its numerator and denominator alike and is dropped. A key's
:math:`e^{c_j}` differs from key to key and must be kept: linear attention multiplies the keys a
query sees by :math:`e^{c_j - M}` with :math:`M` the largest :math:`c_j` *among those keys* — all
keys without a mask, the prefix :math:`j \le i` with ``masks.causal`` (a running max, as in
FlashAttention's online softmax). So a causal output never depends on a later key; a single
max over all keys would leak the future through the :math:`\epsilon` of the normaliser.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..checks import check_bool, check_int
from .approx import by_head_groups, causal_only
from .core import AttentionOutput, MaskMod, check_qkv, repeat_kv
from .linear import linear_attention_from_features

__all__ = ["favor_features", "orthogonal_random_features", "performer_attention"]


def orthogonal_random_features(
    num_features: int,
    dim: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""Random projections :math:`\omega \in \mathbb{R}^{m\times D}`, orthogonal in blocks of
    ``D`` rows, each row marginally :math:`\mathcal N(0, I_D)` (Choromanski et al. 2020, §2.4).

    Each block is a Haar-random orthogonal matrix: :math:`Q` of the QR decomposition of a
    Gaussian matrix with the signs fixed, :math:`Q \leftarrow Q\,\operatorname{diag}(\operatorname
    {sign} R_{ii})` (Mezzadri 2007, "How to generate random matrices from the classical compact
    groups", arXiv:math-ph/0609050, §5). Without the fix the factorisation's sign convention
    leaks into :math:`Q` (LAPACK's Householder QR sets :math:`R_{11} =
    -\operatorname{sign}(G_{11}) \lVert G_{:,1}\rVert`, so the first row's first coordinate is
    *always* negative), the rows are not isotropic and the kernel estimate is biased. Each row
    is then given the length of an independent Gaussian vector (chi with ``D`` degrees of
    freedom), so a uniform direction times a chi length is exactly :math:`\mathcal N(0, I_D)`
    — the "regular" scaling of the paper's released code.
    """
    check_int("num_features", num_features)
    check_int("dim", dim)
    blocks = []
    for _ in range(math.ceil(num_features / dim)):
        g = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
        qmat, r = torch.linalg.qr(g)  # (D, D), orthonormal columns
        qmat = qmat * torch.sign(torch.diagonal(r)).unsqueeze(0)  # Haar: column i · sign(R_ii)
        blocks.append(qmat.T)  # rows = orthonormal directions
    w = torch.cat(blocks, 0)[:num_features]  # (m, D)
    norms = torch.randn(num_features, dim, generator=generator, dtype=torch.float64).norm(dim=1)
    return (w * norms[:, None]).to(dtype)


def favor_features(x: Tensor, omega: Tensor) -> tuple[Tensor, Tensor]:
    r"""Positive random features (Lemma 1) of ``x (B, H, L, D)``, already scaled by
    :math:`D^{-1/4}`, as ``(phi_hat (B, H, L, m), log_scale (B, H, L))``:

    .. math:: \phi(x)_r = \frac{1}{\sqrt m} e^{\omega_r^\top x - \lVert x\rVert^2/2}
              = \hat\phi(x)_r\, e^{c(x)}, \qquad c(x) = \max_r\big(\omega_r^\top x
              - \lVert x\rVert^2/2\big),

    so every entry of ``phi_hat`` lies in :math:`(0, 1/\sqrt m]` however long ``x`` is.
    ``log_scale`` is detached: it cancels in the attention ratio (see the module docstring).
    """
    m = omega.shape[0]
    wx = torch.einsum("bhld,md->bhlm", x, omega.to(x.dtype))  # (B, H, L, m)
    sq = (x * x).sum(-1, keepdim=True) / 2  # (B, H, L, 1)
    c = (wx.amax(-1, keepdim=True) - sq).detach()  # max_r log(√m φ_r)  (B, H, L, 1)
    # log φ̂ = ωx − ‖x‖²/2 − c − ½ log m, every (B, H, L, 1) term in one shift: a single pass
    # over the (B, H, L, m) features
    return torch.exp(wx - (sq + c + 0.5 * math.log(m))), c.squeeze(-1)


def performer_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    num_features: int,
    mask_mod: MaskMod | None = None,
    generator: torch.Generator | None = None,
    return_weights: bool = True,
) -> AttentionOutput:
    r"""Performer FAVOR+ attention: an unbiased random-feature estimate of softmax attention
    (Choromanski et al. 2020, arXiv:2009.14794).

    .. math:: \widehat{\operatorname{Att}}(Q,K,V) = \hat D^{-1}\big(\phi(Q)(\phi(K)^\top V)\big),
              \quad \hat D = \operatorname{diag}(\phi(Q)\phi(K)^\top \mathbf 1)

    with :math:`\phi` from :func:`favor_features` on :math:`q/D^{1/4}, k/D^{1/4}` and
    ``num_features`` orthogonal random features drawn from ``generator``. The error against
    exact attention shrinks as ``num_features`` grows (roughly as :math:`1/\sqrt m`).

    Shapes as :func:`~explore_attention.attention.core.attend`: q ``(B, H, Lq, D)``, k ``(B, Hkv,
    Lk, D)``, v ``(B, Hkv, Lk, Dv)``. ``mask_mod``: None or ``masks.causal`` (prefix sums, Eq. 10–12
    of Katharopoulos et al. 2020); any other mask raises ``NotImplementedError``.
    ``return_weights=True`` (the default) also returns the implied ``(B, H, Lq, Lk)`` matrix
    (O(L²) memory); pass False for the linear-memory path.
    """
    check_qkv(q, k, v)
    causal_only(mask_mod, "Performer attention")
    check_bool("return_weights", return_weights)
    check_int("num_features", num_features)
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
        phi_q, _ = favor_features(q_.to(work) * s, omega)  # (B, H, Lq, m); its scale cancels
        phi_k, c_k = favor_features(k_.to(work) * s, omega)  # (B, H, Lk, m), (B, H, Lk)
        return linear_attention_from_features(
            phi_q, phi_k, v_.to(work), mask_mod=mask_mod, key_log_scale=c_k, return_weights=weights
        )

    if return_weights:
        res = heads(q, k, v, True)
        return AttentionOutput(res.output.to(q.dtype), res.weights.to(q.dtype))
    out = by_head_groups(lambda a, b, c: heads(a, b, c).output, q.dtype, q, k, v)
    return AttentionOutput(out, None)
