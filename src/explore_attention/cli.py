"""``explore-attention``: the command line. Each subcommand lives with the code it drives.

A subcommand module has ``add_arguments(parser)`` and ``run(args) -> int``. A user's mistake
(an existing output folder, an unknown option, a missing file, an unknown model or device) is
raised as :class:`CommandError` and printed as one line, ``explore-attention CMD: message``,
with exit status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["COMMANDS", "CommandError", "add_device_argument", "build_parser", "device_from", "main"]

# subcommand -> (module with add_arguments(parser) and run(args) -> int, help)
COMMANDS = {
    "inspect": (
        "explore_attention.inspect.command",
        "capture a model's attention, write PNG + JSON",
    ),
    "demo": ("explore_attention.app.command", "start the Attention Explorer web app"),
    "train": ("explore_attention.train", "train one of the project's models"),
}


class CommandError(Exception):
    """A mistake in how a command was called; its message is shown as the command's one line."""


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda|mps`` (``cuda:N`` too), resolved by ``device.resolve_device``."""
    parser.add_argument(
        "--device",
        default="auto",
        metavar="{auto,cpu,cuda,mps}",
        help="where to compute (default auto: CUDA, else Apple MPS, else CPU; cuda:N picks a GPU)",
    )


def device_from(args: argparse.Namespace):
    """``args.device`` as a ``torch.device`` present on this machine, else :class:`CommandError`."""
    from .device import resolve_device

    try:
        return resolve_device(args.device)
    except (TypeError, ValueError) as err:
        raise CommandError(f"--device {args.device}: {err}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="explore-attention", description="Learn how attention works by running it."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            p.set_defaults(_module=None, _missing=module)
            continue
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args._module is None:
        print(
            f"explore-attention {args.command}: not available ({args._missing} missing)",
            file=sys.stderr,
        )
        return 2
    try:
        return int(args._module.run(args) or 0)
    except CommandError as err:
        one_line = " ".join(str(err).split())  # a library message may wrap another's lines
        print(f"explore-attention {args.command}: {one_line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"explore-attention {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # python -m explore_attention.cli: the importable module's classes
    from explore_attention.cli import main as _main

    sys.exit(_main())
