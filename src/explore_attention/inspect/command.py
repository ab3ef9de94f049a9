"""``explore-attention inspect TEXT``: capture a model's attention, write PNGs and a JSON trace.

Writes ``layer_00.png`` … (one grid of heads per layer) and ``trace.json``
(:meth:`AttentionTrace.save_json`) into ``--out``, and prints every path it wrote. Top-level
imports stay light so ``explore-attention --help`` is fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import CommandError, add_device_argument, device_from


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
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..viz.static import head_grid
    from .capture import capture
    from .loading import load_model

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is a file; give a folder for the PNGs and trace.json")
    device = device_from(args)
    try:
        model, tokenizer = load_model(args.model)
        name = "all-MiniLM-L6-v2" if args.model is None else str(args.model)
        trace = capture(model.to(device), args.text, tokenizer, model_name=name)
    except (ValueError, TypeError) as err:  # their messages name the model or the text
        raise CommandError(str(err)) from None
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
