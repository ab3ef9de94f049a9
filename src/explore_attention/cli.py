"""``explore-attention``: the command line. Each subcommand lives with the code it drives."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module with add_arguments(parser) and run(args) -> int, help)
COMMANDS = {
    "inspect": (
        "explore_attention.inspect.command",
        "capture a model's attention, write PNG + JSON",
    ),
    "demo": ("explore_attention.app.command", "start the Attention Explorer web app"),
    "train": ("explore_attention.train", "train one of the project's models"),
}


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
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
