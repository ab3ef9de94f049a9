"""Build-time helpers for the book's benchmark rows: read what ``make bench`` wrote into
``benchmarks/results/`` and return Markdown to print from a ``python exec="on"`` block
(markdown-exec: a helper module's own ``print`` would bypass its capture).

Nothing here types a number: every value comes from the JSON files of the last run. When the
files are absent (a clean clone before ``make bench``), the helpers print how to make them, so
the site still builds.

Usage inside a page::

    import explore_attention, pathlib, sys
    sys.path.insert(0, str(pathlib.Path(explore_attention.__file__).parents[2] / "docs/hooks"))
    from benchrow import family_row
    print(family_row(["sdpa", "tiled"]))
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import explore_attention

ROOT = Path(explore_attention.__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
MISSING = (
    "*No benchmark results in `benchmarks/results/` yet: run `make bench`, then rebuild the site.*"
)


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _run_line(res: dict) -> str:
    cfg, env = res.get("config", {}), res.get("environment", {})
    quick = " (quick run)" if cfg.get("quick") else ""
    return (
        f"From `benchmarks/results/attention.json`{quick}: B={cfg.get('B')}, H={cfg.get('H')}, "
        f"D={cfg.get('D')}, {cfg.get('dtype')}, torch {env.get('torch')}, "
        f"{env.get('torch_threads')} thread(s) on a machine with {env.get('cpu_count')} CPUs. "
        "Time is the median of repeated calls after a warm-up; memory is the rise of peak "
        "resident memory during the call. Full tables: [Benchmarks](../benchmarks.md)."
    )


def family_row(methods: list[str], baseline: str = "sdpa") -> str:
    """Print, for each method of ``methods`` (names as in ``attention.json``), time and peak
    memory at every measured L, plus the error column the runner recorded; ``baseline`` is
    listed first for comparison when it is not already in ``methods``."""
    out: list[str] = []
    p = out.append
    res = _load("attention")
    if res is None:
        return MISSING
    rows = res["rows"]
    wanted = ([baseline] if baseline and baseline not in methods else []) + list(methods)
    lengths = sorted({r["L"] for r in rows if r["method"] in wanted})
    by = {(r["method"], r["L"]): r for r in rows}
    p(_run_line(res) + "\n")
    head = "| method | measure | " + " | ".join(f"L={n}" for n in lengths) + " |"
    p(head)
    p("|---|---|" + "---|" * len(lengths))
    for m in wanted:
        if not any((m, n) in by for n in lengths):
            p(f"| `{m}` | not measured in this run | " + " | ".join("—" for _ in lengths) + " |")
            continue
        cells = {
            "time (ms)": lambda r: f"{1000 * r['time_s']:.1f}",
            "peak (MiB)": lambda r: f"{r['peak_mib']:.1f}",
        }
        err_key = next(
            (
                k
                for n in lengths
                for k in ("max_abs_err_vs_sdpa", "rel_err_vs_exact")
                if k in by.get((m, n), {})
            ),
            None,
        )
        if err_key == "max_abs_err_vs_sdpa":
            cells["max abs error vs SDPA"] = lambda r, k=err_key: f"{r[k]:.1e}" if k in r else "—"
        elif err_key == "rel_err_vs_exact":
            cells["RMS error / RMS(v)"] = lambda r, k=err_key: f"{r[k]:.3f}" if k in r else "—"
        for label, fmt in cells.items():
            vals = [fmt(by[(m, n)]) if (m, n) in by else "—" for n in lengths]
            p(f"| `{m}` | {label} | " + " | ".join(vals) + " |")
    skipped = [s for s in res.get("skipped", []) if s.split(" ")[0] in wanted]
    if skipped:
        p("\nSkipped in this run: " + "; ".join(skipped) + ".")
    return "\n".join(out)


def accuracy_row(implementations: list[str] | None = None) -> str:
    """Return Markdown: the forward/backward error of our core against PyTorch
    (``accuracy_core.json``)."""
    out: list[str] = []
    p = out.append
    res = _load("accuracy_core")
    if res is None:
        return MISSING
    p(
        f"From `benchmarks/results/accuracy_core.json` (torch {res['meta'].get('torch')}): "
        "max abs error (relative in brackets) against PyTorch's own implementation.\n"
    )
    p("| dtype | implementation | forward | backward |")
    p("|---|---|---|---|")
    for dtype, impls in res["results"].items():
        for name, r in impls.items():
            if implementations and name not in implementations:
                continue
            fwd = f"{r['forward']:.2e} ({r['forward_rel']:.1e})"
            bwd = f"{r['backward']:.2e} ({r['backward_rel']:.1e})"
            p(f"| {dtype} | `{name}` | {fwd} | {bwd} |")
    return "\n".join(out)


def include(name: str, image_dir: str = "bench-results") -> str:
    """Return Markdown: ``benchmarks/results/<name>.md`` with its headings moved one level
    down and its image links pointing into ``image_dir`` (the ``docs/bench-results`` link)."""
    out: list[str] = []
    p = out.append
    path = RESULTS / f"{name}.md"
    if not path.is_file():
        p(f"*`benchmarks/results/{name}.md` is not there yet: run `make bench`.*")
        return "\n".join(out)
    text = re.sub(r"^(#+) ", r"#\1 ", path.read_text(), flags=re.M)
    text = re.sub(
        r"!\[([^\]]*)\]\(([^)/]+\.png)\)",
        lambda m: (
            f"![{m.group(1)}]({image_dir}/{m.group(2)})" if (RESULTS / m.group(2)).is_file() else ""
        ),
        text,
    )
    png = RESULTS / f"{name}.png"
    if png.is_file() and f"{name}.png" not in text:
        text += f"\n![{name}: plot written with the table]({image_dir}/{name}.png)\n"
    p(text)
    return "\n".join(out)


def translation_row() -> str:
    """Return Markdown: the shipped numbers→German translators' quality (``docs/results/
    translation_by_length.json``, written by ``python -m explore_attention.tasks.
    translation_report --out docs/results/``): in-range test split and longer sources."""
    out: list[str] = []
    p = out.append
    path = ROOT / "docs" / "results" / "translation_by_length.json"
    if not path.is_file():
        p(
            "*No translation results yet: run `python -m explore_attention.tasks."
            "translation_report --out docs/results/`, then rebuild the site.*"
        )
        return "\n".join(out)
    res = json.loads(path.read_text())
    p(
        "From `docs/results/translation_by_length.json` (shipped checkpoints, 2000 sentences "
        "per split; *long* = sources longer than any seen in training).\n"
    )
    p("| model | parameters | test: exact match | test: char BLEU | long: exact match |")
    p("|---|---:|---:|---:|---:|")
    for model, r in res.items():
        nan = float("nan")
        test, long = r.get("test", {}).get("all", {}), r.get("long", {}).get("all", {})
        em, bleu, em_long = (
            test.get("exact_match", nan),
            test.get("bleu", nan),
            long.get("exact_match", nan),
        )
        p(f"| `{model}` | {r.get('parameters', 0):,} | {em:.3f} | {bleu:.1f} | {em_long:.3f} |")
    return "\n".join(out)
