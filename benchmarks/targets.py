"""The issue-11 speed targets in a plain process (default allocator, no ``mallopt``), quickly.

Ratios of median times, each method timed in alternation with its baseline so a shared
machine's load hits both alike. B = 1, H = 8, D = 64, float32, the threads torch is given
(``OMP_NUM_THREADS``; ``make bench`` uses 2).

Run: ``OMP_NUM_THREADS=2 python -m benchmarks.targets`` (``--repeats N``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from explore_attention.attention import attend, masks, sparse

B, H, D = 1, 8, 64


def _inputs(L: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(B, H, L, D, generator=g) for _ in range(3))


def ratio(fn: Callable[[], object], base: Callable[[], object], repeats: int) -> tuple:
    """Median time of ``fn`` / median time of ``base``, timed alternately after a warm-up."""
    fn(), base()
    t_fn, t_base = [], []
    for _ in range(repeats):
        for f, acc in ((fn, t_fn), (base, t_base)):
            t0 = time.perf_counter()
            f()
            acc.append(time.perf_counter() - t0)
    a, b = statistics.median(t_fn), statistics.median(t_base)
    return a / b, a, b


def targets() -> dict[str, tuple[int, Callable, Callable, float]]:
    """name → (L, method, baseline, target ratio)."""

    def default(mask_mod):
        return lambda q, k, v: attend(q, k, v, mask_mod=mask_mod, return_weights=False)

    def tiled_causal(q, k, v):
        return attend(q, k, v, mask_mod=masks.causal, backend="tiled", return_weights=False)

    def sdpa_causal(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    return {
        "sliding_window(256), default backend": (
            16384,
            default(masks.sliding_window(256)),
            sdpa_causal,
            0.15,
        ),
        "longformer(256, [0]), default backend": (
            16384,
            default(sparse.longformer(256, [0])),
            sdpa_causal,
            0.15,
        ),
        "tiled causal": (4096, tiled_causal, sdpa_causal, 1.25),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--only", default=None, help="run the targets whose name contains this")
    args = p.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={B} H={H} D={D}")
    for name, (L, fn, base, target) in targets().items():
        if args.only and args.only not in name:
            continue
        q, k, v = _inputs(L)
        with torch.no_grad():
            r, a, b = ratio(
                lambda fn=fn, q=q, k=k, v=v: fn(q, k, v),
                lambda base=base, q=q, k=k, v=v: base(q, k, v),
                args.repeats,
            )
        verdict = "met" if r <= target else "NOT met"
        print(
            f"{name} at L={L}: {a * 1e3:.1f} ms vs causal SDPA {b * 1e3:.1f} ms = {r:.3f}x "
            f"(target <= {target}x: {verdict})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
