"""``explore-attention demo``: start the Attention Explorer on a local port."""

from __future__ import annotations

import argparse
import socket

from ..cli import CommandError, add_device_argument, device_from


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
    add_device_argument(parser)


def _check_port(host: str, port: int) -> None:
    """Fail now, in one line, when ``host:port`` cannot be bound (taken, or not an address)."""
    if not 0 <= port < 65536:
        raise CommandError(f"--port must be in [0, 65535], got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind((host, port))
        except OSError as err:
            raise CommandError(
                f"cannot serve on {host}:{port} ({err.strerror}); pick another --port or --host"
            ) from None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from .server import create_app

    _check_port(args.host, args.port)
    device = device_from(args)
    print(f"Attention Explorer: loading the model on {device}…", flush=True)
    try:
        app = create_app(args.model, preload=True, host=args.host, device=device)
    except ValueError as err:
        raise CommandError(str(err)) from None
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"Attention Explorer running at http://{host}:{args.port}/  (Ctrl+C to stop)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
