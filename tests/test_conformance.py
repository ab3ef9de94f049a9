"""One answer on every backend: every mask_mod and score_mod the library ships × every backend
× forward and backward × awkward shapes, against ``backend="reference"`` in float64.

The mods are found by introspection of ``explore_attention.attention`` (a function shaped like a
mask_mod, a function or method annotated to return ``MaskMod`` / ``ScoreMod``, a module whose
``forward`` is a score_mod), so a new one fails :func:`test_every_shipped_mod_has_an_example`
until it has an entry in :data:`EXAMPLES` — and then runs through the whole matrix.

Shapes (issue 11): ``Lq = Lk = 300`` (not a multiple of any block size), ``Lq = 77 < Lk = 300``
(a KV cache), ``Lq = 300 > Lk = 345``; ``B = 2``; GQA with 4 query and 2 key/value heads.
A backend that cannot honour a combination must raise a ``ValueError`` naming itself and the
reason (SDPA with a score_mod; FlexAttention's backward on CPU), never crash or answer wrong.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable

import pytest
import torch
from conftest import DEVICES, TOL

import explore_attention.attention as attention_pkg
from explore_attention.attention import attend, core, masks, positional, sinks, sparse
from explore_attention.attention.core import index_grids

B, H, HKV, D = 2, 4, 2, 8
SHAPES = [(300, 300), (77, 300), (300, 345)]  # (Lq, Lk)
# "flex" runs in tests/test_conformance_flex.py (eager FlexAttention is slow: its own file lets
# `make test`'s two workers share the matrix)
BACKENDS = ["reference", "sdpa", "tiled", "auto"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _module(cls: type, *args, **kw) -> torch.nn.Module:
    """A parametrised score_mod module with reproducible, non-trivial float64 weights."""
    torch.manual_seed(3)
    m = cls(*args, **kw).double()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.5)
    return m


def _key_padding_mask(Lk: int) -> torch.Tensor:
    pad = torch.rand(B, Lk, generator=_gen(5)) < 0.3  # (B, Lk), True = padding
    pad[:, 0] = False
    return pad


# A builder gets (q, Lq, Lk) and returns (mask_mod, score_mod, modules whose parameters must
# receive the same gradients). q is passed so a score_mod built from the queries (Shaw) is built
# from the very tensor being differentiated.
Builder = Callable[[torch.Tensor, int, int], tuple]


def _mask(fn: Callable[[int, int], object]) -> Builder:
    return lambda q, Lq, Lk: (fn(Lq, Lk), None, [])


def _score(fn: Callable[[int, int], object]) -> Builder:
    def build(q, Lq, Lk):
        mod = fn(Lq, Lk)
        return None, mod, [mod] if isinstance(mod, torch.nn.Module) else []

    return build


def _shaw(q: torch.Tensor, Lq: int, Lk: int) -> tuple:
    shaw = _module(positional.ShawRelativePosition, D, 5)
    return None, shaw.score_mod(q, None, Lk), [shaw]


def _alibi_causal(q: torch.Tensor, Lq: int, Lk: int) -> tuple:
    return masks.causal, positional.alibi(H), []


# qualified name of a shipped mod → {case id: builder}
EXAMPLES: dict[str, dict[str, Builder]] = {
    "masks.full": {"full": _mask(lambda Lq, Lk: masks.full)},
    "masks.causal": {"causal": _mask(lambda Lq, Lk: masks.causal)},
    "masks.sliding_window": {
        "window37": _mask(lambda Lq, Lk: masks.sliding_window(37)),
        "window37_bi": _mask(lambda Lq, Lk: masks.sliding_window(37, causal=False)),
    },
    "masks.padding": {
        "padding": _mask(lambda Lq, Lk: masks.padding(torch.tensor([Lk - 50, Lk // 3])))
    },
    "masks.key_padding": {
        "key_padding": _mask(lambda Lq, Lk: masks.key_padding(_key_padding_mask(Lk)))
    },
    "masks.from_bool": {
        "from_bool": _mask(
            lambda Lq, Lk: masks.from_bool(torch.rand(B, 1, Lq, Lk, generator=_gen(6)) < 0.7)
        )
    },
    "masks.and_masks": {
        "causal&padding": _mask(
            lambda Lq, Lk: masks.and_masks(masks.causal, masks.padding(torch.tensor([Lk, 90])))
        )
    },
    "masks.or_masks": {
        "window|key_padding": _mask(
            lambda Lq, Lk: masks.or_masks(
                masks.sliding_window(16), masks.key_padding(~_key_padding_mask(Lk))
            )
        )
    },
    "masks.named": {"named": _mask(lambda Lq, Lk: masks.named(masks.sliding_window(9), "w9"))},
    "masks.key_bias": {
        "key_bias": _score(
            lambda Lq, Lk: masks.key_bias(
                torch.randn(B, Lk, generator=_gen(7), dtype=torch.float64)
            )
        )
    },
    "sparse.block": {"block50": _mask(lambda Lq, Lk: sparse.block(50))},
    "sparse.global_tokens": {
        "global3": _mask(lambda Lq, Lk: sparse.global_tokens(3)),
        "global_list": _mask(lambda Lq, Lk: sparse.global_tokens([0, 7, 260])),
    },
    "sparse.strided": {"strided17": _mask(lambda Lq, Lk: sparse.strided(17))},
    "sparse.fixed": {"fixed20": _mask(lambda Lq, Lk: sparse.fixed(20, 3))},
    "sparse.longformer": {"longformer": _mask(lambda Lq, Lk: sparse.longformer(32, [0, 9]))},
    "sparse.bigbird": {
        "bigbird": _mask(lambda Lq, Lk: sparse.bigbird(16, 2, 3, seed=1, length=Lk)),
        "bigbird_no_random": _mask(lambda Lq, Lk: sparse.bigbird(16, 2, 0)),
    },
    "sinks.sink_window": {"sink_window": _mask(lambda Lq, Lk: sinks.sink_window(4, 32))},
    "positional.alibi": {
        "alibi": _score(lambda Lq, Lk: positional.alibi(H)),
        "alibi+causal": _alibi_causal,
    },
    "positional.T5RelativeBias": {
        "t5_bidirectional": _score(lambda Lq, Lk: _module(positional.T5RelativeBias, H)),
        "t5_decoder": _score(
            lambda Lq, Lk: _module(positional.T5RelativeBias, H, bidirectional=False)
        ),
    },
    "positional.ShawRelativePosition.score_mod": {"shaw": _shaw},
}

CASES = [(cid, build) for per in EXAMPLES.values() for cid, build in per.items()]


# --------------------------------------------------------------------------- discovery


def _is_mask_signature(fn: object) -> bool:
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False
    return params == ["b", "h", "q_idx", "kv_idx"]


def _returns_mod(fn: object) -> bool:
    ann = getattr(fn, "__annotations__", {}).get("return")
    return ann in ("MaskMod", "ScoreMod", core.MaskMod, core.ScoreMod)


def shipped_mods() -> set[str]:
    """Every public mask_mod, mask_mod/score_mod factory and score_mod module in the package."""
    found: set[str] = set()
    for info in pkgutil.iter_modules(attention_pkg.__path__):
        if info.name == "core":
            continue  # the machinery (index grids, attend), not mods
        mod = importlib.import_module(f"{attention_pkg.__name__}.{info.name}")
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            where = f"{info.name}.{name}"
            if inspect.isfunction(obj) and (_is_mask_signature(obj) or _returns_mod(obj)):
                found.add(where)
            elif inspect.isclass(obj):
                fwd = getattr(obj, "forward", None)
                if fwd is not None and list(inspect.signature(fwd).parameters)[1:] == [
                    "score",
                    "b",
                    "h",
                    "q_idx",
                    "kv_idx",
                ]:
                    found.add(where)
                for meth_name, meth in vars(obj).items():
                    if not meth_name.startswith("_") and _returns_mod(meth):
                        found.add(f"{where}.{meth_name}")
    return found


def test_every_shipped_mod_has_an_example():
    shipped = shipped_mods()
    missing = sorted(shipped - set(EXAMPLES))
    assert not missing, f"add these mods to EXAMPLES in tests/test_conformance.py: {missing}"
    stale = sorted(set(EXAMPLES) - shipped)
    assert not stale, f"EXAMPLES names mods the library no longer ships: {stale}"
    assert len(shipped) >= 20  # discovery itself works


# --------------------------------------------------------------------------- the index contract


@pytest.mark.parametrize(("case", "build"), CASES, ids=[c for c, _ in CASES])
def test_index_contract_full_grid_tiles_and_scalars(case, build):
    """Any index shape gives the same answer: the full grid, scattered non-contiguous tiles of
    any width, and 0-d scalars (FlexAttention's vmap)."""
    Lq, Lk = 77, 300
    q = torch.randn(B, H, Lq, D, generator=_gen(0), dtype=torch.float64)
    mask_mod, score_mod, _ = build(q, Lq, Lk)
    b, h, qi, kv = index_grids(B, H, Lq, Lk)
    score = torch.randn(B, H, Lq, Lk, generator=_gen(1), dtype=torch.float64)
    with torch.no_grad():
        full_m = mask_mod(b, h, qi, kv).expand(B, H, Lq, Lk) if mask_mod else None
        full_s = score_mod(score, b, h, qi, kv) if score_mod else None
        g = _gen(2)
        for rows, cols in ((5, 7), (64, 1), (1, 128), (33, 200)):
            r = torch.randperm(Lq, generator=g)[:rows]  # scattered query rows
            c = torch.randperm(Lk, generator=g)[:cols]
            tq, tk = qi[:, :, r], kv[..., c]
            if mask_mod:
                got = mask_mod(b, h, tq, tk).expand(B, H, len(r), len(c))
                assert torch.equal(got, full_m[:, :, r][..., c]), (rows, cols)
            if score_mod:
                got = score_mod(score[:, :, r][..., c], b, h, tq, tk)
                torch.testing.assert_close(got, full_s[:, :, r][..., c], rtol=0, atol=1e-12)
        for _ in range(40):
            i = [int(torch.randint(n, (1,), generator=g)) for n in (B, H, Lq, Lk)]
            sb, sh, sk = (torch.tensor(x) for x in (i[0], i[1], i[3]))
            sq = torch.tensor(i[2] + Lk - Lq)  # position convention
            if mask_mod:
                assert bool(mask_mod(sb, sh, sq, sk)) == bool(full_m[tuple(i)])
            if score_mod:
                got = score_mod(score[tuple(i)], sb, sh, sq, sk)
                assert abs(float(got) - float(full_s[tuple(i)])) < 1e-12


# --------------------------------------------------------------------------- the matrix


def _inputs(Lq: int, Lk: int, device: str):
    g = _gen(Lq * 1000 + Lk)
    q = torch.randn(B, H, Lq, D, generator=g, dtype=torch.float64)
    k = torch.randn(B, HKV, Lk, D, generator=g, dtype=torch.float64)
    v = torch.randn(B, HKV, Lk, D, generator=g, dtype=torch.float64)
    cot = torch.randn(B, H, Lq, D, generator=g, dtype=torch.float64)
    return (t.to(device) for t in (q, k, v, cot))


def _run(backend: str, build: Builder, Lq: int, Lk: int, device: str, grad: bool):
    """Output, and with ``grad`` the gradients of ⟨out, cot⟩ w.r.t. q, k, v and parameters."""
    q, k, v, cot = _inputs(Lq, Lk, device)
    if grad:
        q, k, v = (t.requires_grad_() for t in (q, k, v))
    mask_mod, score_mod, modules = build(q, Lq, Lk)
    modules = [m.to(device) for m in modules]
    out = attend(
        q, k, v, mask_mod=mask_mod, score_mod=score_mod, backend=backend, return_weights=False
    ).output
    if not grad:
        return [out]
    params = [p for m in modules for p in m.parameters()]
    wrt = [q, k, v, *params]
    grads = torch.autograd.grad((out * cot).sum(), wrt, allow_unused=True)
    return [out.detach(), *(torch.zeros_like(x) if g is None else g for x, g in zip(wrt, grads))]


_REFERENCE: dict[tuple, list] = {}


def _reference(case: str, build: Builder, Lq: int, Lk: int, device: str) -> list:
    key = (case, Lq, Lk, device)
    if key not in _REFERENCE:
        _REFERENCE[key] = _run("reference", build, Lq, Lk, device, grad=True)
    return _REFERENCE[key]


def _assert_same(got: list, want: list, dtype: torch.dtype) -> None:
    names = ["output", "dq", "dk", "dv"] + [f"dparam{i}" for i in range(len(want) - 4)]
    assert len(got) <= len(want)
    for name, a, b in zip(names, got, want):
        assert not torch.isnan(a).any(), f"{name} has NaN"
        torch.testing.assert_close(a, b, **TOL[dtype], msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("Lq", "Lk"), SHAPES, ids=[f"{a}x{b}" for a, b in SHAPES])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("case", "build"), CASES, ids=[c for c, _ in CASES])
def test_backend_matches_reference_forward_and_backward(case, build, backend, Lq, Lk, device):
    if backend not in core.BACKENDS and backend != "auto":
        pytest.fail(f"backend {backend!r} is not registered")
    want = _reference(case, build, Lq, Lk, device)
    _, score_mod, _ = build(torch.zeros(B, H, Lq, D, dtype=torch.float64), Lq, Lk)
    impl = core.BACKENDS.get(backend)
    if impl is not None and score_mod is not None and not impl.supports_score_mod:
        with pytest.raises(ValueError, match=f"backend='{backend}' cannot apply a score_mod"):
            _run(backend, build, Lq, Lk, device, grad=False)
        return
    _assert_same(_run(backend, build, Lq, Lk, device, grad=True), want, torch.float64)
    # without autograd some backends take another path (tiled: threads, masks added in place)
    _assert_same(_run(backend, build, Lq, Lk, device, grad=False), want[:1], torch.float64)
