"""``make bench``: every attention backend and mechanism against PyTorch's fused SDPA.

For L = 256 … 16384 (32768 for the O(L) mechanisms), batch 1, 8 heads, head dim 64, float32,
on the threads ``OMP_NUM_THREADS`` gives (``make bench`` sets 2), it records per method:

* **time**: median of repeated calls after one warm-up call (up to 5 repeats, fewer once a
  call takes more than a second), with the **default allocator**, as a user's plain Python
  process runs it: every case is timed before the process ever calls ``mallopt``;
* **peak memory**, in a second pass after all timings: the rise of the process's peak resident
  set size (``VmHWM`` in ``/proc/self/status``, reset through ``/proc/self/clear_refs``) during
  one more call, above the resident size before it — real bytes touched, whoever allocates
  them. For this pass glibc's ``mallopt`` mmaps blocks over 64 KiB and returns them at ``free``
  (:data:`MEMORY_MALLOC`), so the peak counts only that call;
* **error**: max |Δ| against SDPA for exact methods; for approximations RMS(approx − exact) /
  RMS(v) against the exact attention they approximate (Performer vs SDPA; LSH vs exact
  shared-QK) — relative to the values' scale, since exact outputs of random inputs are near 0.

Methods whose O(L²) cost would blow the time budget are skipped at larger L (the reference
backend above 4096; any method once one call exceeds ``--max-call-s``), and the table says so.
Results: ``benchmarks/results/attention.json``, ``attention.md`` and ``attention.png``.

Run: ``python -m benchmarks.run`` (``--quick`` for a 1-minute smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from explore_attention.attention import attend, linear, lsh, masks, performer, sparse, tiled

from .report import write_report

RESULTS = Path(__file__).parent / "results"
B, H, D = 1, 8, 64
WINDOW = 256
PERFORMER_FEATURES = 256
LSH_HASHES, LSH_BUCKET = 2, 64
TIMING_SHARE = 0.8  # of --budget-s for the timings; the rest for the peak-memory pass
REFERENCE_MAX_L = 4096  # the reference backend materialises (B, H, L, L) several times
# glibc mallopt parameters and the two settings (bytes; mmap_max = how many blocks may be mmap'd)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
MEMORY_MALLOC = {"mmap_threshold": 64 * 1024, "trim_threshold": 128 * 1024, "mmap_max": 65536}


def _set_malloc(mmap_threshold: int, trim_threshold: int, mmap_max: int) -> bool:
    """Fix glibc malloc's settings (after returning freed heap memory); False elsewhere."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
        return all(
            libc.mallopt(param, value)
            for param, value in (
                (M_MMAP_MAX, mmap_max),
                (M_MMAP_THRESHOLD, mmap_threshold),
                (M_TRIM_THRESHOLD, trim_threshold),
            )
        )
    except (OSError, AttributeError):
        return False


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(fn: Callable[[], torch.Tensor], max_repeats: int = 5) -> dict:
    """Warm-up call, then the median time of repeats (the allocator as the process has it)."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    times = []
    budget = max(1.0, first)
    spent = 0.0
    for _ in range(max_repeats):
        if spent >= 2.0 * budget and len(times) >= 1:
            break
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        spent += times[-1]
        if times[-1] > 1.0 and len(times) >= 3:
            break
    return {
        "time_s": statistics.median(times),
        "repeats": len(times),
        "first_call_s": first,
        "out": out,
    }


def peak_mib(fn: Callable[[], torch.Tensor]) -> float | None:
    """Rise of the peak resident set during one call, freed blocks returned to the OS."""
    _set_malloc(**MEMORY_MALLOC)
    if not _reset_peak():
        return None
    before = _rss_kib("VmRSS")
    out = fn()
    peak = _rss_kib("VmHWM")
    del out
    return max(0, peak - before) / 1024


def inputs(L: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(B, H, L, D, generator=g) for _ in range(3))  # (B, H, L, D)


def methods(quick: bool) -> dict[str, dict]:
    """name → how to run it at length L, and the lengths to try."""
    sw = masks.sliding_window(WINDOW)
    lf = sparse.longformer(WINDOW, [0])
    short = [256, 512, 1024] if quick else [256, 512, 1024, 2048, 4096, 8192, 16384]
    long = [*short, 2048, 4096] if quick else [*short, 32768]
    ng = {"return_weights": False}

    def performer_fn(q, k, v):
        g = torch.Generator().manual_seed(0)
        return performer.performer_attention(
            q, k, v, num_features=PERFORMER_FEATURES, generator=g, return_weights=False
        )

    def lsh_fn(q, k, v):
        g = torch.Generator().manual_seed(0)
        return lsh.lsh_attention(
            q, v, n_hashes=LSH_HASHES, bucket_size=LSH_BUCKET, generator=g, return_weights=False
        )

    return {
        "reference": {
            "fn": lambda q, k, v: attend(q, k, v, backend="reference").output,
            "lengths": [L for L in short if L <= REFERENCE_MAX_L],
            "vs": "sdpa",
        },
        "sdpa": {"fn": lambda q, k, v: F.scaled_dot_product_attention(q, k, v), "lengths": short},
        "auto": {
            "fn": lambda q, k, v: attend(q, k, v, backend="auto", **ng).output,
            "lengths": short,
            "vs": "sdpa",
        },
        "tiled": {
            "fn": lambda q, k, v: attend(q, k, v, backend="tiled", **ng).output,
            "lengths": short,
            "vs": "sdpa",
        },
        "sdpa_causal": {
            "fn": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
            "lengths": short,
        },
        "tiled_causal": {
            "fn": lambda q, k, v: (
                attend(q, k, v, mask_mod=masks.causal, backend="tiled", **ng).output
            ),
            "lengths": short,
            "vs": "sdpa_causal",
        },
        "auto_causal": {
            "fn": lambda q, k, v: attend(q, k, v, mask_mod=masks.causal, **ng).output,
            "lengths": short,
            "vs": "sdpa_causal",
        },
        f"tiled_window{WINDOW}": {
            "fn": lambda q, k, v: attend(q, k, v, mask_mod=sw, backend="tiled", **ng).output,
            "lengths": long,
            "block_map": sw,
        },
        f"auto_window{WINDOW}": {
            "fn": lambda q, k, v: attend(q, k, v, mask_mod=sw, **ng).output,
            "lengths": long,
            "block_map": sw,
        },
        f"tiled_longformer{WINDOW}": {
            "fn": lambda q, k, v: attend(q, k, v, mask_mod=lf, backend="tiled", **ng).output,
            "lengths": long,
            "block_map": lf,
        },
        f"auto_longformer{WINDOW}": {
            "fn": lambda q, k, v: attend(q, k, v, mask_mod=lf, **ng).output,
            "lengths": long,
            "block_map": lf,
        },
        "linear": {
            "fn": lambda q, k, v: linear.linear_attention(q, k, v, return_weights=False).output,
            "lengths": long,
        },
        "linear_causal": {
            "fn": lambda q, k, v: (
                linear.linear_attention(q, k, v, mask_mod=masks.causal, return_weights=False).output
            ),
            "lengths": long,
        },
        f"performer{PERFORMER_FEATURES}": {
            "fn": lambda q, k, v: performer_fn(q, k, v).output,
            "lengths": long,
            "approx_of": "sdpa",
        },
        f"lsh{LSH_HASHES}x{LSH_BUCKET}": {
            "fn": lambda q, k, v: lsh_fn(q, k, v).output,
            "lengths": long,
            "approx_of": "shared_qk",
        },
    }


def exact_shared_qk(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Exact shared-QK attention (normalised keys, self excluded; L > 1) through SDPA."""
    L = q.shape[2]
    keep = ~torch.eye(L, dtype=torch.bool)
    return F.scaled_dot_product_attention(q, F.normalize(q, dim=-1), v, attn_mask=keep)


def _rms(x: torch.Tensor) -> float:
    return x.pow(2).mean().sqrt().item()


def run(quick: bool, max_call_s: float, budget_s: float) -> dict:
    torch.manual_seed(0)
    specs = methods(quick)
    rows: list[dict] = []  # in the order measured (targets first)
    skipped: list[str] = []
    start = time.perf_counter()
    lengths = sorted({L for s in specs.values() for L in s["lengths"]})
    slow: dict[str, int] = {}  # method → the shortest L at which one call exceeded max_call_s
    # The cases the targets need run first, so a slow machine still measures them.
    window = f"tiled_window{WINDOW}"
    priority = [("sdpa", 4096), ("auto", 4096), ("tiled", 4096), ("reference", 4096)]
    priority += [("sdpa_causal", 16384), (window, 16384)]
    priority += [(f"auto_window{WINDOW}", 16384), (f"auto_longformer{WINDOW}", 16384)]
    priority += [("sdpa_causal", 4096), ("tiled_causal", 4096)]
    priority += [(m, L) for L in (1024, 2048, 4096, 8192) for m in ("sdpa_causal", "linear_causal")]
    priority += [("linear_causal", 16384), ("linear_causal", 32768)]
    priority = [(m, L) for m, L in priority if L in specs[m]["lengths"]]
    rest = [(m, L) for L in lengths for m in specs if L in specs[m]["lengths"]]
    jobs = [(L, m) for m, L in dict.fromkeys(priority + rest)]
    exact: dict[tuple[str, int], torch.Tensor] = {}
    for L, name in tqdm(jobs, desc="bench", unit="case"):
        spec = specs[name]
        if name in slow and slow[name] < L:
            skipped.append(
                f"{name} at L={L}: a call at L={slow[name]} took more than {max_call_s:.0f} s"
            )
            continue
        if time.perf_counter() - start > budget_s * TIMING_SHARE:
            skipped.append(f"{name} at L={L}: total time budget ({budget_s:.0f} s) spent")
            continue
        q, k, v = inputs(L)
        row: dict = {"method": name, "L": L}
        if "block_map" in spec:  # built once per (mask, shape) and cached, like a BlockMask
            t0 = time.perf_counter()
            tiled.block_map(
                spec["block_map"], B, H, L, L, tiled.DEFAULT_BLOCK_SIZE, tiled.DEFAULT_BLOCK_SIZE
            )
            row["block_map_build_s"] = time.perf_counter() - t0
        with torch.no_grad():
            m = measure(lambda spec=spec, q=q, k=k, v=v: spec["fn"](q, k, v))
        out = m.pop("out")
        row.update(m)
        if name in ("sdpa", "sdpa_causal"):
            exact[(name, L)] = out
        if "vs" in spec and (spec["vs"], L) in exact:
            row["max_abs_err_vs_sdpa"] = (out - exact[(spec["vs"], L)]).abs().max().item()
        if spec.get("approx_of") == "sdpa" and ("sdpa", L) in exact:
            ref = exact[("sdpa", L)]
            row["rel_err_vs_exact"] = _rms(out - ref) / _rms(v)
        if spec.get("approx_of") == "shared_qk" and L <= 8192:
            with torch.no_grad():
                ref = exact_shared_qk(q, v)
            row["rel_err_vs_exact"] = _rms(out - ref) / _rms(v)
        rows.append(row)
        if m["time_s"] > max_call_s:
            slow[name] = min(L, slow.get(name, L))
        del out
    # Peak memory last: mallopt changes the allocator for the rest of the process.
    for row in tqdm(rows, desc="peak memory", unit="case"):
        if time.perf_counter() - start > budget_s:
            skipped.append(f"peak memory of {row['method']} at L={row['L']}: budget spent")
            continue
        q, k, v = inputs(row["L"])
        with torch.no_grad():
            fn = specs[row["method"]]["fn"]
            row["peak_mib"] = peak_mib(lambda fn=fn, q=q, k=k, v=v: fn(q, k, v))
    skipped.append(
        f"reference above L={REFERENCE_MAX_L}: it materialises (B, H, L, L) float32 "
        f"several times ({H * 16384**2 * 4 / 2**30:.0f} GiB per copy at L=16384)"
    )
    return {
        "config": {
            "B": B,
            "H": H,
            "D": D,
            "dtype": "float32",
            "window": WINDOW,
            "performer_features": PERFORMER_FEATURES,
            "lsh_hashes": LSH_HASHES,
            "lsh_bucket_size": LSH_BUCKET,
            "tiled_block_size": tiled.DEFAULT_BLOCK_SIZE,
            "quick": quick,
            "max_call_s": max_call_s,
            "budget_s": budget_s,
        },
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_at_start": os.getloadavg(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "timing_allocator": "default",
            "malloc_fixed": _set_malloc(**MEMORY_MALLOC),
            "memory_malloc": MEMORY_MALLOC,
        },
        "methods": list(specs),
        "rows": rows,
        "skipped": skipped,
        "total_s": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short lengths only (smoke run)")
    p.add_argument(
        "--max-call-s",
        type=float,
        default=20.0,
        help="stop growing L for a method once one call takes longer",
    )
    p.add_argument("--budget-s", type=float, default=480.0, help="total measuring time")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    p.add_argument(
        "--report-only", action="store_true", help="re-draw the table and plot from the JSON"
    )
    args = p.parse_args(argv)
    name = "attention_quick" if args.quick else "attention"
    if args.report_only:
        res = json.loads((args.out / f"{name}.json").read_text())
    else:
        res = run(args.quick, args.max_call_s, args.budget_s)
        args.out.mkdir(parents=True, exist_ok=True)
        tmp = args.out / f".{name}.json.tmp"
        tmp.write_text(json.dumps(res, indent=2))
        tmp.replace(args.out / f"{name}.json")
    md = write_report(res, args.out / f"{name}.md", args.out / f"{name}.png")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
