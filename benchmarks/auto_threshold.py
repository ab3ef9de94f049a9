"""Where ``auto`` should switch from SDPA-with-a-lowered-mask to the tiled backend.

For causal and bidirectional sliding windows of growing width at one length: the fraction of
live 128 × 128 tiles, and the time of ``backend="tiled"`` (empty tiles skipped) over
``backend="sdpa"`` (the mask lowered to a dense boolean ``attn_mask``), timed alternately.
``auto`` sends a mask to ``tiled`` when its live fraction is at most
``core.TILED_MAX_LIVE_FRACTION``: pick it below the crossover.

Run: ``OMP_NUM_THREADS=2 python -m benchmarks.auto_threshold`` (``--L 4096``).
"""

from __future__ import annotations

import argparse

import torch

from explore_attention.attention import attend, core, masks

from .targets import ratio


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--L", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    L = args.L
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 8, L, 64, generator=g) for _ in range(3))
    print(f"L={L}, B=1, H=8, D=64, float32, {torch.get_num_threads()} threads")
    print("window  causal  live tiles  tiled / sdpa(lowered mask)")
    widths = [(w, True) for w in (128, 512, 1024, 2048)] + [(w, False) for w in (4096, 6144, 2 * L)]
    for w, causal in widths:
        mm = masks.sliding_window(w, causal=causal)
        live = core.live_tile_fraction(mm, 1, 8, L, L)

        def run(backend, mm=mm):
            return attend(q, k, v, mask_mod=mm, backend=backend, return_weights=False)

        with torch.no_grad():
            r, _, _ = ratio(lambda: run("tiled"), lambda: run("sdpa"), args.repeats)
        print(f"{w:6d}  {causal!s:6}  {live:10.3f}  {r:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
