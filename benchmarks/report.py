"""Markdown table, targets (as measured ratios) and a log-log plot from ``benchmarks.run``."""

from __future__ import annotations

from pathlib import Path

FP32_ATOL, FP32_RTOL = 1e-5, 1e-4


def _get(rows: list[dict], method: str, L: int) -> dict | None:
    for r in rows:
        if r["method"] == method and r["L"] == L:
            return r
    return None


def _targets(res: dict) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) rows, each computed from this run only."""
    rows = res["rows"]
    out: list[tuple[str, str, str]] = []

    def ratio(a: str, b: str, L: int, key: str = "time_s") -> float | None:
        ra, rb = _get(rows, a, L), _get(rows, b, L)
        if ra is None or rb is None or ra.get(key) is None or not rb.get(key):
            return None
        return ra[key] / rb[key]

    def verdict(ok: bool | None) -> str:
        return "not measured" if ok is None else ("met" if ok else "**not met**")

    r = ratio("auto", "sdpa", 4096)
    out.append(
        (
            '`attend(backend="auto")` time / SDPA at L=4096 ≤ 1.1',
            "—" if r is None else f"{r:.2f}×",
            verdict(None if r is None else r <= 1.1),
        )
    )
    errs = [
        x["max_abs_err_vs_sdpa"]
        for x in rows
        if x["method"] in ("tiled", "tiled_causal") and "max_abs_err_vs_sdpa" in x
    ]
    worst = max(errs) if errs else None
    out.append(
        (
            "`tiled` max abs error vs SDPA within float32 tolerance (atol 1e-5, all L)",
            "—" if worst is None else f"{worst:.1e}",
            verdict(None if worst is None else worst <= FP32_ATOL + FP32_RTOL),
        )
    )
    r = ratio("tiled", "sdpa", 4096)
    out.append(
        (
            "`tiled` time / SDPA at L=4096 ≤ 1.5",
            "—" if r is None else f"{r:.2f}×",
            verdict(None if r is None else r <= 1.5),
        )
    )
    r = ratio("tiled", "reference", 4096, "peak_mib")
    out.append(
        (
            "`tiled` peak memory / reference at L=4096 < 0.1",
            "—" if r is None else f"{r:.3f}",
            verdict(None if r is None else r < 0.1),
        )
    )
    w = next((x["method"] for x in rows if x["method"].startswith("tiled_window")), None)
    r = ratio(w, "sdpa_causal", 16384) if w else None
    out.append(
        (
            f"`{w}` (tiled, empty tiles skipped) time / causal SDPA at L=16384 ≤ 0.2",
            "—" if r is None else f"{r:.3f}×",
            verdict(None if r is None else r <= 0.2),
        )
    )
    for kind, label in (("window", "sliding_window(256)"), ("longformer", "longformer(256, [0])")):
        name = next((x["method"] for x in rows if x["method"].startswith(f"auto_{kind}")), None)
        r = ratio(name, "sdpa_causal", 16384) if name else None
        out.append(
            (
                f"`attend(mask_mod={label}, return_weights=False)`, default backend, time / "
                "causal SDPA at L=16384 ≤ 0.15",
                "—" if r is None else f"{r:.3f}×",
                verdict(None if r is None else r <= 0.15),
            )
        )
    r = ratio("tiled_causal", "sdpa_causal", 4096)
    out.append(
        (
            "`tiled` causal time / causal SDPA at L=4096 ≤ 1.25 (default allocator)",
            "—" if r is None else f"{r:.2f}×",
            verdict(None if r is None else r <= 1.25),
        )
    )
    lengths = sorted({x["L"] for x in rows if x["method"] == "linear_causal"})
    wins = [(L, ratio("linear_causal", "sdpa_causal", L)) for L in lengths]
    wins = [(L, r) for L, r in wins if r is not None]
    cross = next((L for i, (L, _) in enumerate(wins) if all(r < 1 for _, r in wins[i:])), None)
    from1024 = [r for L, r in wins if L >= 1024]
    out.append(
        (
            "causal linear attention faster than causal SDPA from L=1024 on",
            "crossover L = "
            + ("none" if cross is None else str(cross))
            + "; ratios "
            + ", ".join(f"{L}: {r:.2f}" for L, r in wins),
            verdict(None if not from1024 else all(r < 1 for r in from1024)),
        )
    )
    growth = []
    for L in (4096, 8192, 16384):
        a, b = _get(rows, "linear_causal", L), _get(rows, "linear_causal", 2 * L)
        if a and b:
            growth.append((L, b["time_s"] / a["time_s"]))
    ok = None if len(growth) < 3 else all(g <= 2.2 for _, g in growth)
    out.append(
        (
            "causal linear time growth per doubling of L, 4096 → 32768, ≤ 2.2×",
            ", ".join(f"{L}→{2 * L}: {g:.2f}×" for L, g in growth) or "—",
            verdict(ok),
        )
    )
    return out


def _matrix(rows: list[dict], key: str, fmt: str) -> list[str]:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lengths = sorted({r["L"] for r in rows})
    lines = [
        "| method | " + " | ".join(str(L) for L in lengths) + " |",
        "|---|" + "---|" * len(lengths),
    ]
    for m in methods:
        cells = []
        for L in lengths:
            r = _get(rows, m, L)
            val = None if r is None else r.get(key)
            cells.append("—" if val is None else format(val, fmt))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def _malloc_line(env: dict) -> str:
    """How the run fixed glibc malloc (small operations are sensitive to the allocator)."""
    if "memory_malloc" not in env:  # a run from before the two-phase setting
        return (
            f"`MALLOC_MMAP_THRESHOLD_={env.get('MALLOC_MMAP_THRESHOLD_')}`, "
            f"`MALLOC_TRIM_THRESHOLD_={env.get('MALLOC_TRIM_THRESHOLD_')}` (glibc malloc fixed)."
        )
    if env.get("timing_allocator") == "default":
        mem = env["memory_malloc"]
        return (
            "Timings use the default allocator (the process has not called `mallopt`, as a "
            "user's plain Python process); peak memory is measured afterwards, with glibc's mmap "
            f"threshold at {mem['mmap_threshold'] // 1024} KiB and trim threshold "
            f"{mem['trim_threshold'] // 1024} KiB, so freed blocks leave the process and the "
            "peak counts only that call."
        )
    if not env.get("malloc_fixed"):
        return "glibc `mallopt` unavailable: the platform's allocator defaults."
    mem, tim = env["memory_malloc"], env["timing_malloc"]
    return (
        "glibc malloc fixed with `mallopt`: during the warm-up call (memory) mmap threshold "
        f"{mem['mmap_threshold'] // 1024} KiB and trim threshold {mem['trim_threshold'] // 1024}"
        " KiB, so freed blocks leave the process and the peak counts only that call; during the "
        "timed calls no block is mmap'd and the trim threshold is "
        f"{tim['trim_threshold'] // 2**20} MiB, so freed blocks are reused as in a steady loop."
    )


def write_report(res: dict, md_path: Path, png_path: Path) -> str:
    cfg, env = res["config"], res["environment"]
    order = {m: i for i, m in enumerate(res.get("methods", []))}
    rows = sorted(res["rows"], key=lambda r: (order.get(r["method"], len(order)), r["L"]))
    lines = [
        "# Attention benchmark (`make bench`)",
        "",
        f"Generated by `python -m benchmarks.run` in {res['total_s']:.0f} s. "
        f"B={cfg['B']}, H={cfg['H']}, D={cfg['D']}, {cfg['dtype']}, torch {env['torch']}, "
        f"{env['torch_threads']} threads, {env['cpu_count']} CPUs; "
        f"`OMP_NUM_THREADS={env['OMP_NUM_THREADS']}`. "
        + _malloc_line(env)
        + " Load average at start: "
        + ", ".join(f"{x:.1f}" for x in env["load_average_at_start"])
        + " (a shared machine makes timings noisy; ratios are from one run).",
        "",
        "Time is the median of repeated calls after a warm-up call; peak memory is the rise of "
        "the process's peak resident set (VmHWM, reset via /proc/self/clear_refs) during the "
        "warm-up call. Sliding window: `tiled` with a `sliding_window"
        f"({cfg['window']})` mask_mod; its block map is built once per shape and cached (like "
        "FlexAttention's BlockMask), build time listed below. Performer: "
        f"{cfg['performer_features']} features; LSH: {cfg['lsh_hashes']} hashes, bucket "
        f"{cfg['lsh_bucket_size']}.",
        "",
        "## Targets (measured ratios, this run)",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in _targets(res)],
        "",
        "## Time (ms)",
        "",
        *_matrix([{**r, "t": r["time_s"] * 1e3} for r in rows], "t", ".1f"),
        "",
        "## Peak memory (MiB above the resident set before the call)",
        "",
        *_matrix(rows, "peak_mib", ".1f"),
        "",
        "## Max |Δ| vs SDPA (exact methods)",
        "",
        *_matrix(rows, "max_abs_err_vs_sdpa", ".1e"),
        "",
        "## Error of approximations: RMS(approx − exact) / RMS(v)",
        "",
        *_matrix(rows, "rel_err_vs_exact", ".3f"),
        "",
        "## Block-map build time for the sliding window (s, once per shape)",
        "",
        *_matrix(rows, "block_map_build_s", ".2f"),
        "",
        "## Skipped",
        "",
        *[f"* {s}" for s in res["skipped"]],
        "",
        f"![time and memory vs L]({png_path.name})",
        "",
    ]
    md = "\n".join(lines)
    md_path.write_text(md)
    _plot(rows, png_path)
    return md


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    colors = plt.cm.tab20(range(len(methods)))
    styles = {m: ("-" if i < 10 else "--", colors[i]) for i, m in enumerate(methods)}
    for key, ax, label in (
        ("time_s", axes[0], "time per call (s)"),
        ("peak_mib", axes[1], "peak memory (MiB)"),
    ):
        for m in methods:
            pts = sorted((r["L"], r[key]) for r in rows if r["method"] == m and r.get(key))
            if pts:
                ax.loglog(*zip(*pts), styles[m][0], marker="o", color=styles[m][1], label=m)
        ax.set_xlabel("sequence length L")
        ax.set_ylabel(label)
        ax.set_xscale("log", base=2)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_title("Time vs L (B=1, 8 heads, D=64, float32)")
    axes[1].set_title("Peak memory vs L")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
