"""Bahdanau et al. 2014, Fig. 2, measured here: translation quality vs source length, with and
without attention; and attention alignments drawn for sample sentences.

Bahdanau, Cho & Bengio 2014, "Neural Machine Translation by Jointly Learning to Align and
Translate" (arXiv:1409.0473), Fig. 2: the fixed-vector encoder-decoder (RNNencdec) degrades as
sentences get longer; the attention model (RNNsearch) does not. Here the sentences are English
number words → German, the models are the shipped checkpoints, quality is exact match and
character BLEU on the test split (lengths seen in training) and on the ``long`` split (longer
than any training sentence).

Run: ``python -m explore_attention.tasks.translation_report --out docs/results/`` — writes
``translation_by_length.json`` / ``.md`` / ``.png``, ``alignment_*.png`` and ``dates_iso.json``
(the dates translator's exact match, separating the short dates that English and Spanish write
identically with different meanings).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from ..data import translation as tr
from .common import quick
from .translation import CHECKPOINTS, evaluate_by_length, load_translator, translate

__all__ = ["alignment_figure", "measure"]

DEFAULT = ("numbers-de-gru", "numbers-de-bahdanau")
SAMPLES = ("forty two", "three hundred and twenty one", "seventy five thousand and sixty eight")


def measure(names=DEFAULT, limit: int | None = None) -> dict:
    """Evaluate each checkpoint on the test and long splits, by source length."""
    out = {}
    for name in names:
        model, sv, tv, cfg = load_translator(name)
        d = cfg["data"]
        data = tr.numbers(train_size=d["train_size"], max_train_len=d["max_train_len"])
        res = {}
        for split in ("test", "long"):
            pairs = data.splits[split][:limit]
            res[split] = {str(k): v for k, v in evaluate_by_length(model, sv, tv, pairs).items()}
            hyps = translate(model, sv, tv, [a for a, _ in pairs])[0]
            refs = [b for _, b in pairs]
            from ..decoding import bleu

            res[split]["all"] = {
                "n": len(pairs),
                "exact_match": sum(h == r for h, r in zip(hyps, refs)) / len(refs),
                "bleu": bleu(hyps, refs, char_level=True),
            }
        out[name] = {"parameters": sum(p.numel() for p in model.parameters()), **res}
    return out


def ambiguous_date(text: str) -> bool:
    """True for short dates that English (M/D/YY) and Spanish (D/M/YY) write identically with
    different meanings (``3/10/24``): no model can know which was meant."""
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{2})", text)
    return bool(m) and int(m[1]) <= 12 and int(m[2]) <= 12 and m[1] != m[2]


def measure_dates(name: str = "dates-iso-bahdanau", limit: int | None = None) -> dict:
    """Exact match of a dates translator on the test split, split by :func:`ambiguous_date`."""
    model, sv, tv, cfg = load_translator(name)
    pairs = tr.dates(train_size=cfg["data"]["train_size"]).splits["test"][:limit]
    hyps = translate(model, sv, tv, [a for a, _ in pairs])[0]
    out = {}
    for label, keep in (
        ("all", lambda a: True),
        ("unambiguous", lambda a: not ambiguous_date(a)),
        ("ambiguous en/es short", ambiguous_date),
    ):
        sel = [(h, b) for h, (a, b) in zip(hyps, pairs) if keep(a)]
        out[label] = {"n": len(sel), "exact_match": sum(h == b for h, b in sel) / max(1, len(sel))}
    return out


def alignment_figure(name: str, text: str, ax=None):
    """Draw a translator's attention for ``text``: rows = output tokens, columns = source words."""
    from ..viz import heatmap

    model, sv, tv, _ = load_translator(name)
    (out,), w = translate(model, sv, tv, [text])
    if w is None:
        raise ValueError(f"{name} has no attention to draw")
    rows = [*out, "</s>"]
    return heatmap(
        w[0, : len(rows), : len(sv.pieces(text))],
        rows,
        sv.pieces(text),
        ax=ax,
        title=f"{name}: '{text}' → '{out}'",
    )


def write(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "translation_by_length.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "| model | params | split | source words | n | exact match | char BLEU |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        for split in ("test", "long"):
            for k, v in r[split].items():
                lines.append(
                    f"| {name} | {r['parameters']:,} | {split} | {k} | {v['n']} | "
                    f"{v['exact_match']:.3f} | {v['bleu']:.1f} |"
                )
    (out / "translation_by_length.md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, r in results.items():
        pts = sorted((int(k), v) for s in ("test", "long") for k, v in r[s].items() if k != "all")
        xs = [k for k, _ in pts]
        axes[0].plot(xs, [v["exact_match"] for _, v in pts], marker="o", label=name)
        axes[1].plot(xs, [v["bleu"] for _, v in pts], marker="o", label=name)
    for ax, label in zip(axes, ("exact match", "character BLEU")):
        held = max(int(k) for r in results.values() for k in r["test"] if k != "all")
        ax.axvspan(held + 0.5, xs[-1] + 0.5, color="0.9", label="longer than training")
        ax.set(xlabel="source length (English words)", ylabel=label, title=f"{label} vs length")
        ax.legend(fontsize=8)
    fig.suptitle(
        "English → German number words: with vs without attention "
        "(cf. Bahdanau et al. 2014, Fig. 2)"
    )
    fig.tight_layout()
    fig.savefig(out / "translation_by_length.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m explore_attention.tasks.translation_report")
    p.add_argument("--out", default="docs/results")
    p.add_argument("--models", nargs="+", default=list(DEFAULT), help="checkpoint names or folders")
    p.add_argument("--limit", type=int, help="examples per split (default: all 2000)")
    args = p.parse_args(argv)
    if quick() and args.limit is None:
        args.limit = 200
    torch.set_grad_enabled(False)
    results = measure(args.models, args.limit)
    out = Path(args.out)
    write(results, out)
    import matplotlib.pyplot as plt

    for name in args.models:
        if (
            (Path(name) if Path(name).exists() else CHECKPOINTS / name).exists()
            and "gru" not in name
            and "lstm" not in name
        ):
            for i, text in enumerate(SAMPLES):
                fig = alignment_figure(name, text)
                fig.savefig(out / f"alignment_{Path(name).name}_{i}.png", dpi=120)
                plt.close(fig)
    if (CHECKPOINTS / "dates-iso-bahdanau").exists():
        dates = measure_dates(limit=args.limit)
        (out / "dates_iso.json").write_text(json.dumps(dates, indent=2) + "\n")
        print("dates-iso-bahdanau, test split:", json.dumps(dates))
    print((out / "translation_by_length.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
