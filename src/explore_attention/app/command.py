"""``explore-attention demo``: start the Attention Explorer on a local port."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)"
    )
    parser.add_argument(
        "--model",
        default=None,
        help="model shown first: a hub name, a local folder, or an image checkpoint such as "
        "vit-digits (default: bundled all-MiniLM-L6-v2)",
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from .server import create_app

    if not 0 <= args.port < 65536:
        print(f"--port must be in [0, 65535], got {args.port}", file=sys.stderr)
        return 2
    print("Attention Explorer: loading the model…", flush=True)
    try:
        app = create_app(args.model, preload=True, host=args.host)
    except ValueError as err:
        print(f"explore-attention demo: {err}", file=sys.stderr)
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"Attention Explorer running at http://{host}:{args.port}/  (Ctrl+C to stop)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
