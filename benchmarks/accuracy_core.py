"""Largest error of ``attend()`` and ``MultiHeadAttention`` against PyTorch, per dtype.

The relative column divides by the largest magnitude of the reference tensor, which makes
bfloat16's numbers readable (weight gradients sum over many positions).

For every case (no mask, causal, random boolean mask, sliding window, GQA, Lq != Lk, key
padding) it runs our backends and PyTorch's own implementation on the same inputs, forward and
backward (d/dq, d/dk, d/dv for a random cotangent; all parameter and input gradients for the
module), and reports the largest absolute difference per dtype:

* ``attend(backend="reference" | "sdpa")`` vs ``F.scaled_dot_product_attention``;
* ``MultiHeadAttention.from_torch(m)`` vs ``nn.MultiheadAttention`` ``m``.

Run: ``python -m benchmarks.accuracy_core`` (writes ``benchmarks/results/accuracy_core.json``
and ``.md``; ``--no-write`` to print only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from explore_attention.attention import MultiHeadAttention, attend, masks, repeat_kv

RESULTS = Path(__file__).parent / "results"
KEYS = ("forward", "backward", "forward_rel", "backward_rel")


def _bf16_ok() -> bool:
    try:
        a = torch.ones(2, 2, dtype=torch.bfloat16)
        return bool(torch.equal((a @ a).float(), torch.full((2, 2), 2.0)))
    except RuntimeError:
        return False


def _cases() -> list[dict]:
    """Each case: shapes and a (mask_mod, dense bool mask or None) pair."""
    L = 113
    d = torch.arange(L)[:, None] - torch.arange(L)[None, :]
    g = torch.Generator().manual_seed(0)
    rand = torch.rand(2, 4, L, L, generator=g) > 0.3
    rand[..., 0] = True
    lq, lk = 15, 113
    i = torch.arange(lq)[:, None] + (lk - lq)
    lengths = torch.tensor([60, 113])
    pad = (torch.arange(L)[None, :] < lengths[:, None])[:, None, None]  # (B, 1, 1, Lk)
    return [
        dict(name="no mask", Hkv=4, Lq=L, Lk=L, D=21, mm=None, mask=None),
        dict(name="causal", Hkv=4, Lq=L, Lk=L, D=21, mm=masks.causal, mask=d >= 0),
        dict(name="bool mask", Hkv=4, Lq=L, Lk=L, D=21, mm=masks.from_bool(rand), mask=rand),
        dict(
            name="sliding window 16",
            Hkv=4,
            Lq=L,
            Lk=L,
            D=21,
            mm=masks.sliding_window(16),
            mask=(d >= 0) & (d < 16),
        ),
        dict(name="GQA 4:1 causal", Hkv=1, Lq=L, Lk=L, D=21, mm=masks.causal, mask=d >= 0),
        dict(
            name="Lq 15 < Lk 113 causal",
            Hkv=2,
            Lq=lq,
            Lk=lk,
            D=3,
            mm=masks.causal,
            mask=torch.arange(lk)[None, :] <= i,
        ),
        dict(name="key padding", Hkv=4, Lq=L, Lk=L, D=21, mm=masks.padding(lengths), mask=pad),
    ]


def _fwd_bwd(fn, tensors, g_seed=1):
    ts = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*ts)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(g_seed)).to(out.dtype)
    (out * g).sum().backward()
    return out.detach(), [t.grad for t in ts]


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference."""
    return (a.double() - b.double()).abs().max().item()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference relative to the largest reference magnitude."""
    return _err(a, b) / max(b.double().abs().max().item(), 1e-300)


def attend_errors(dtype: torch.dtype) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for case in _cases():
        g = torch.Generator().manual_seed(42)
        B, H = 2, 4
        q = torch.randn(B, H, case["Lq"], case["D"], generator=g).to(dtype)
        k = torch.randn(B, case["Hkv"], case["Lk"], case["D"], generator=g).to(dtype)
        v = torch.randn(B, case["Hkv"], case["Lk"], case["D"], generator=g).to(dtype)
        mask = case["mask"]

        def ref(a, b, c, mask=mask, H=H):
            b, c = repeat_kv(b, H), repeat_kv(c, H)  # (B, H, Lk, D)
            return F.scaled_dot_product_attention(a, b, c, attn_mask=mask)

        r_out, r_grads = _fwd_bwd(ref, (q, k, v))
        for backend in ("reference", "sdpa"):

            def ours(a, b, c, backend=backend, mm=case["mm"]):
                return attend(a, b, c, mask_mod=mm, backend=backend, return_weights=False).output

            o_out, o_grads = _fwd_bwd(ours, (q, k, v))
            key = f"attend[{backend}]"
            row = out.setdefault(key, dict.fromkeys(KEYS, 0.0))
            pairs = list(zip(o_grads, r_grads))
            row["forward"] = max(row["forward"], _err(o_out, r_out))
            row["backward"] = max(row["backward"], *(_err(a, b) for a, b in pairs))
            row["forward_rel"] = max(row["forward_rel"], _rel(o_out, r_out))
            row["backward_rel"] = max(row["backward_rel"], *(_rel(a, b) for a, b in pairs))
    return out


def mha_errors(dtype: torch.dtype) -> dict[str, float]:
    torch.manual_seed(0)
    E, H = 48, 4
    ref = nn.MultiheadAttention(E, H, batch_first=True).to(dtype)
    with torch.no_grad():
        for p in ref.parameters():
            if p.dim() == 1:
                p.normal_()
    ours = MultiHeadAttention.from_torch(ref)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 37, E, generator=g).to(dtype)
    ctx = torch.randn(2, 53, E, generator=g).to(dtype)
    kpm = torch.arange(53)[None, :] >= torch.tensor([[53], [20]])  # True = padding
    errs = dict.fromkeys(KEYS, 0.0)

    def note(kind: str, a: torch.Tensor, b: torch.Tensor) -> None:
        errs[kind] = max(errs[kind], _err(a, b))
        errs[kind + "_rel"] = max(errs[kind + "_rel"], _rel(a, b))

    for context, pad in ((None, None), (ctx, None), (ctx, kpm)):
        xs = [x.clone().requires_grad_() for _ in range(2)]
        cs = (
            [None, None]
            if context is None
            else [context.clone().requires_grad_() for _ in range(2)]
        )
        kv = xs[0] if cs[0] is None else cs[0]
        r_out, r_w = ref(xs[0], kv, kv, key_padding_mask=pad, average_attn_weights=False)
        res = ours(xs[1], cs[1], key_padding_mask=pad)
        o_out, o_w = res.output, res.weights
        note("forward", o_out, r_out)
        note("forward", o_w, r_w)
        cot = torch.randn(r_out.shape, generator=torch.Generator().manual_seed(5)).to(dtype)
        ref.zero_grad()
        ours.zero_grad()
        (r_out * cot).sum().backward()
        (o_out * cot).sum().backward()
        E_ = E
        theirs = dict(
            zip(
                ("q_proj.weight", "k_proj.weight", "v_proj.weight"),
                ref.in_proj_weight.grad.split(E_),
            )
        )
        theirs |= dict(
            zip(("q_proj.bias", "k_proj.bias", "v_proj.bias"), ref.in_proj_bias.grad.split(E_))
        )
        theirs |= {
            "out_proj.weight": ref.out_proj.weight.grad,
            "out_proj.bias": ref.out_proj.bias.grad,
        }
        for n, p in ours.named_parameters():
            if n == "k_proj.bias":
                # Its exact gradient is 0 (softmax ignores a shift shared by all keys), so both
                # sides hold rounding noise: count it in the absolute error only.
                errs["backward"] = max(errs["backward"], _err(p.grad, theirs[n]))
                continue
            note("backward", p.grad, theirs[n])
        note("backward", xs[1].grad, xs[0].grad)
        if cs[0] is not None:
            note("backward", cs[1].grad, cs[0].grad)
    return errs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    dtypes = [torch.float64, torch.float32] + ([torch.bfloat16] if _bf16_ok() else [])
    results = {}
    for dtype in dtypes:
        name = str(dtype).replace("torch.", "")
        results[name] = attend_errors(dtype)
        results[name]["MultiHeadAttention"] = mha_errors(dtype)
    lines = [
        "| dtype | implementation | reference | forward: max abs (rel) | backward: max abs (rel) |",
        "|---|---|---|---|---|",
    ]
    for dtype, rows in results.items():
        for impl, errs in rows.items():
            against = (
                "nn.MultiheadAttention"
                if impl == "MultiHeadAttention"
                else "F.scaled_dot_product_attention"
            )
            lines.append(
                f"| {dtype} | {impl} | {against} | {errs['forward']:.2e} "
                f"({errs['forward_rel']:.1e}) | {errs['backward']:.2e} "
                f"({errs['backward_rel']:.1e}) |"
            )
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        meta = {
            "torch": torch.__version__,
            "machine": platform.machine(),
            "threads": torch.get_num_threads(),
        }
        for path, text in (
            (
                RESULTS / "accuracy_core.json",
                json.dumps({"meta": meta, "results": results}, indent=2),
            ),
            (RESULTS / "accuracy_core.md", "# Core accuracy vs PyTorch\n\n" + table + "\n"),
        ):
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
