"""What every "train a task, then report what it learned" command of :mod:`~explore_attention.tasks`
shares: the options, the training run, the command line to print in a README, and writing the
README without ever leaving half a file.

Used by ``python -m explore_attention.tasks.gpt`` and
``python -m explore_attention.tasks.induction``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..train import Task, TrainResult

__all__ = ["command", "parser", "train_task", "write_text"]


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with the shared options ``--out --steps --seed --overwrite --no-progress``."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--steps", type=int, help="training steps (default: the task's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--no-progress", action="store_true")
    return p


def train_task(
    name: str, args: argparse.Namespace, out: Path, *, overwrite: bool
) -> tuple[Task, TrainResult]:
    """Train task ``name`` with its defaults (``--steps``/``--seed`` from ``args``) into ``out``."""
    from ..train import get_task, train

    task = get_task(name, seed=args.seed)
    cfg = replace(task.defaults, seed=args.seed, steps=args.steps or task.defaults.steps)
    res = train(task, cfg, out=out, overwrite=overwrite, progress=not args.no_progress, name=name)
    return task, res


def command(module: str, argv: list[str] | None) -> str:
    """The command line that reproduces this run, for a README."""
    return f"python -m {module} " + shlex.join(sys.argv[1:] if argv is None else argv)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling, so no reader sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
