"""``explore-attention inspect TEXT``: capture a model's attention, write PNGs and a JSON trace.

Writes ``layer_00.png`` … (one grid of heads per layer) and ``trace.json``
(:meth:`AttentionTrace.save_json`) into ``--out``, and prints every path it wrote. Top-level
imports stay light so ``explore-attention --help`` is fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="the sentence to run through the model")
    parser.add_argument(
        "--model",
        default=None,
        help="hub name or local Hugging Face folder (default: the bundled all-MiniLM-L6-v2)",
    )
    parser.add_argument(
        "--out", default="attention-out", help="output folder (default: ./attention-out)"
    )


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..viz.static import head_grid
    from .capture import capture

    try:
        trace = capture(args.model, args.text)
    except (ValueError, TypeError) as err:
        print(f"explore-attention inspect: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"{trace.model_name}: {trace.num_layers} layers × {trace.num_heads} heads, "
        f"{len(trace.tokens)} tokens"
    )
    for layer in range(trace.num_layers):
        fig = head_grid(trace, layer)
        path = out / f"layer_{layer:02d}.png"
        tmp = path.with_name(path.stem + ".tmp.png")
        fig.savefig(tmp, dpi=110)
        plt.close(fig)
        tmp.replace(path)
        print(f"wrote {path}")
    print(f"wrote {trace.save_json(out / 'trace.json')}")
    return 0
