"""One small training loop for every model in the project.

A *task* is a function ``make(**options) -> Task`` that builds a model, a batch sampler, a loss
and an evaluation; :data:`TASKS` maps a task name to ``"module:function"`` (imported lazily, so
``explore-attention train --help`` stays fast). :func:`train` then runs AdamW with warmup +
cosine decay, a tqdm progress bar, periodic evaluation, early stopping on a target metric and
atomic safetensors checkpoints that can be resumed.

Reproducibility: the batch of step ``s`` is drawn from a generator seeded with ``(seed, s)``, and
the global RNG (dropout) is reseeded every step, so a resumed run equals an uninterrupted one.

Scaling: under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) the same code wraps the model in
DistributedDataParallel (gloo on CPU, nccl on CUDA); every rank samples the same *global*
batch and trains on its contiguous slice, so ``torchrun --nproc_per_node=N`` computes the
same gradients as one process with the same ``batch_size`` (up to float rounding; exactly so
when every slice holds the same number of loss terms).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import json
import math
import os
import re
import sys
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpointing import load_checkpoint, load_optimizer, save_checkpoint
from .cli import CommandError, add_device_argument, device_from

__all__ = [
    "TASKS",
    "Task",
    "TrainConfig",
    "TrainResult",
    "add_arguments",
    "get_task",
    "load_checkpoint",
    "run",
    "save_checkpoint",
    "task_options",
    "train",
]

# task name -> "module:function"; the function takes keyword options and returns a Task.
TASKS: dict[str, str] = {
    "copy": "explore_attention.tasks.synthetic:make_task",
    "reverse": "explore_attention.tasks.synthetic:make_reverse",
    "recall": "explore_attention.tasks.synthetic:make_recall",
    "numbers-de": "explore_attention.tasks.translation:make_numbers",
    "dates-iso": "explore_attention.tasks.translation:make_dates",
    "tsv": "explore_attention.tasks.translation:make_tsv",
    "vit-digits": "explore_attention.tasks.vit:make_digits",
    "vit-scenes": "explore_attention.tasks.vit:make_scenes",
    "audio-digits": "explore_attention.tasks.audio:make_digits",
    "multimodal-scenes": "explore_attention.tasks.multimodal:make_task",
    "gpt-char": "explore_attention.tasks.gpt:make_char",
    "gpt-bpe": "explore_attention.tasks.gpt:make_bpe",
    "induction": "explore_attention.tasks.induction:make_task",
    "llama-pydoc": "explore_attention.tasks.hf_models:make_llama",
    "t5-numbers-de": "explore_attention.tasks.hf_models:make_t5",
}

Batch = Any  # a Tensor, or a tuple / dict of Tensors with the batch on dim 0


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000  # optimiser steps (the run may stop earlier on `target`)
    batch_size: int = 64  # global batch (split across ranks under torchrun)
    lr: float = 3e-3  # peak learning rate of AdamW
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    warmup: int = 50  # linear warmup steps, then cosine decay to lr / 10
    grad_clip: float = 1.0  # max global gradient norm (0 disables)
    eval_every: int = 100  # evaluate every this many steps (and at the end)
    metric: str = "accuracy"  # key of the eval dict that early stopping watches
    target: float | None = None  # stop once metric >= target (<= for mode "min")
    mode: str = "max"  # "max" or "min": the direction in which `metric` improves
    seed: int = 0  # seeds the model init, every batch and dropout


@dataclass
class Task:
    model: nn.Module  # built by the task; its class must accept **model_config
    model_config: dict  # JSON-able arguments that rebuild the model (saved in config.json)
    sample: Callable[[torch.Generator, int], Batch]  # (generator, batch_size) -> batch on CPU
    loss: Callable[[nn.Module, Batch], Tensor]  # (model, batch) -> scalar mean loss
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None  # model -> metrics
    defaults: TrainConfig = field(default_factory=TrainConfig)  # the task's own settings
    meta: dict = field(default_factory=dict)  # JSON-able extras saved with the checkpoint


@dataclass
class TrainResult:
    model: nn.Module  # the trained model (unwrapped from DDP)
    step: int  # steps done
    history: list[dict]  # one dict per evaluation: step, loss, metrics
    stopped_early: bool  # the target metric was reached


def get_task(name: str, *, seed: int = 0, **options: Any) -> Task:
    """Build a registered task by name (its module is imported only now).

    ``torch.manual_seed(seed)`` runs first, so the model's initial weights follow ``seed``.
    """
    if name not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {name!r}")
    module, fn = TASKS[name].split(":")
    torch.manual_seed(seed)
    return getattr(importlib.import_module(module), fn)(**options)


# ------------------------------------------------------------------ the loop
def _shard(batch: Batch, rank: int, world: int) -> Batch:
    """This rank's contiguous slice of a global batch (dim 0)."""
    if isinstance(batch, Tensor):
        n = batch.shape[0]
        return batch[rank * n // world : (rank + 1) * n // world]
    if isinstance(batch, dict):
        return {k: _shard(v, rank, world) for k, v in batch.items()}
    return type(batch)(_shard(v, rank, world) for v in batch)


def _to(batch: Batch, device: torch.device) -> Batch:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return type(batch)(_to(v, device) for v in batch)


def _lr(cfg: TrainConfig, step: int) -> float:
    r""":math:`\eta_s = \eta\, s/w` for :math:`s < w`, then cosine :math:`\eta \to \eta/10`."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _reached(cfg: TrainConfig, metrics: dict[str, float]) -> bool:
    if cfg.target is None or cfg.metric not in metrics:
        return False
    v = metrics[cfg.metric]
    return v >= cfg.target if cfg.mode == "max" else v <= cfg.target


def _distributed() -> tuple[int, int, torch.device]:
    """Init the process group under torchrun; return ``(rank, world_size, device)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    rank = int(os.environ.get("RANK", "0"))
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def train(
    task: Task | str,
    config: TrainConfig | None = None,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    device: str | torch.device | None = None,
    name: str | None = None,
    until: int | None = None,
) -> TrainResult:
    """Train ``task`` for ``config.steps`` steps (or until ``config.target`` is reached).

    ``out``: checkpoint folder, written at every evaluation and at the end. ``resume=True``
    continues from the checkpoint in ``out``; otherwise an existing ``out`` is an error unless
    ``overwrite=True``. Under torchrun only rank 0 writes.
    """
    config = config or (task.defaults if isinstance(task, Task) else TrainConfig())
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if config.mode not in ("max", "min"):
        raise ValueError(f"config.mode must be 'max' or 'min', got {config.mode!r}")
    rank, world, dev = _distributed()
    dev = torch.device(device) if device is not None else dev
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by WORLD_SIZE {world}")
    if isinstance(task, str):
        name, task = task, get_task(task, seed=config.seed)  # identical init on every rank
    model = task.model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    out = Path(out) if out is not None else None
    start, history = 0, []
    if resume:
        if out is None or not (out / "config.json").is_file():
            raise FileNotFoundError(f"resume=True needs a checkpoint in out, got {out}")
        from safetensors.torch import load_file, load_model

        saved = json.loads((out / "config.json").read_text())
        load_model(model, str(out / "model.safetensors"), device=str(dev))
        flat = load_file(str(out / "optimizer.safetensors"), device=str(dev))
        load_optimizer(opt, flat, saved["optimizer_param_groups"])
        start, history = saved["step"], saved["history"]
    elif out is not None and out.exists() and not overwrite and rank == 0:
        raise FileExistsError(f"checkpoint {out} exists; pass overwrite=True or resume=True")
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None
        )

    def checkpoint(step: int) -> None:
        if out is None or rank != 0:
            return
        meta = {
            "task": name,
            "model_class": f"{type(model).__module__}:{type(model).__qualname__}",
            "model_config": task.model_config,
            "train_config": asdict(config),
            "step": step,
            "history": history,
            **task.meta,
        }
        save_checkpoint(out, model, meta, optimizer=opt, overwrite=True)

    def evaluate(step: int, loss: float) -> dict:
        metrics = {}
        if task.evaluate is not None:
            model.eval()
            with torch.no_grad():
                metrics = task.evaluate(model)
            model.train()
        history.append({"step": step, "loss": loss, **metrics})
        return metrics

    from tqdm.auto import tqdm

    bar = tqdm(
        range(start, config.steps),
        initial=start,
        total=config.steps,
        disable=not progress or rank != 0,
        desc=name or "train",
    )
    model.train()
    stopped, loss_val, done = False, float("nan"), start
    for step in bar:
        g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        batch = _to(_shard(task.sample(g, config.batch_size), rank, world), dev)
        torch.manual_seed(config.seed * 1_000_003 + step + 7919 * rank)  # dropout
        for group in opt.param_groups:
            group["lr"] = _lr(config, step)
        loss = task.loss(net, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        loss_val = loss.item()
        bar.set_postfix(loss=f"{loss_val:.4f}")
        done = step + 1
        pause = until is not None and done >= until
        if done % config.eval_every == 0 or done == config.steps or pause:
            metrics = evaluate(done, loss_val)
            bar.set_postfix(loss=f"{loss_val:.4f}", **{k: f"{v:.3f}" for k, v in metrics.items()})
            stopped = _reached(config, metrics)
            checkpoint(done)
            if stopped or pause:
                break
    bar.close()
    return TrainResult(model=model, step=done, history=history, stopped_early=stopped)


# ------------------------------------------------------------------ CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=sorted(TASKS), help="what to train")
    parser.add_argument("--steps", type=int, help="optimiser steps (default: the task's)")
    parser.add_argument("--out", help="checkpoint folder (safetensors + config.json)")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--batch-size", type=int, help="global batch size")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--eval-every", type=int, help="evaluate every N steps")
    parser.add_argument("--target", type=float, help="stop when the task's metric reaches this")
    parser.add_argument("--resume", action="store_true", help="continue from --out")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_device_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option, e.g. -o model=bahdanau -o hidden=64 (repeatable; a wrong key lists "
        "the valid ones)",
    )


def _task_function(name: str) -> Callable[..., Task]:
    module, fn_name = TASKS[name].split(":")
    return getattr(importlib.import_module(module), fn_name)


def _named(fn: Callable) -> dict[str, inspect.Parameter]:
    params = inspect.signature(fn, eval_str=True).parameters
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {k: p for k, p in params.items() if p.kind in kinds}


def _referenced(fn: Callable) -> list[Any]:
    """The module-level objects ``fn``'s code names (functions it calls, constants it reads)."""
    module = sys.modules[fn.__module__]
    return [getattr(module, n) for n in fn.__code__.co_names if hasattr(module, n)]


def _config_fields(fn: Callable) -> dict[str, inspect.Parameter]:
    """Fields of the config dataclass instances ``fn`` reads (``replace(VIT_CONFIG, **config)``),
    as keyword parameters whose defaults are that instance's values."""
    fields = {}
    for obj in _referenced(fn):
        # A TrainConfig holds training settings (--steps, --lr, …), not the model's.
        if dataclasses.is_dataclass(obj) and not isinstance(obj, (type, TrainConfig)):
            hints = typing.get_type_hints(type(obj))
            for f in dataclasses.fields(obj):
                fields[f.name] = inspect.Parameter(
                    f.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=getattr(obj, f.name),
                    annotation=hints.get(f.name, inspect.Parameter.empty),
                )
    return fields


def _forwards(fn: Callable) -> bool:
    params = inspect.signature(fn).parameters.values()
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def task_options(name: str) -> dict[str, inspect.Parameter]:
    """The keyword options of task ``name``: its function's named parameters, plus the fields of
    the config dataclass its ``**config`` goes to (``replace(SOME_CONFIG, **config)``).

    A thin wrapper such as ``make_reverse(**options)`` has none of its own; then the options of
    the task function it calls (in its module) are returned.
    """
    fn = _task_function(name)
    for _ in range(3):  # follow at most a couple of wrappers
        named = _named(fn)
        if named:
            return {**_config_fields(fn), **named} if _forwards(fn) else named
        callees = [c for c in _referenced(fn) if inspect.isfunction(c) and c is not fn]
        if not callees:
            break
        fn = callees[0]
    return {}


def _accepts_more(name: str) -> bool:
    """Whether task ``name`` passes options it does not list on to the model it builds
    (``**extra`` that is not a config dataclass's fields)."""
    fn = _task_function(name)
    return _forwards(fn) and not _config_fields(fn)


def _types(annotation: Any) -> tuple[type, ...]:
    """The plain types an annotation allows: ``int`` → (int,), ``str | None`` → (str, NoneType)."""
    if isinstance(annotation, type):
        return (annotation,)
    args = typing.get_args(annotation)
    return tuple(a for a in args if isinstance(a, type))


def _convert(task: str, key: str, raw: str, param: inspect.Parameter | None) -> Any:
    """``raw`` as the type ``param`` expects (a Python literal when the type is unknown)."""
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    if param is None:
        return value
    types = _types(param.annotation)
    if not types and param.default is not inspect.Parameter.empty and param.default is not None:
        types = (type(param.default),)
    if not types or (value is None and type(None) in types):
        return value
    if str in types and not isinstance(value, str):
        return raw  # -o path=2024 is the file "2024"
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, types) and not (isinstance(value, bool) and bool not in types):
        return value
    want = " or ".join("None" if t is type(None) else t.__name__ for t in types)
    default = "" if param.default is inspect.Parameter.empty else f", default {param.default!r}"
    raise CommandError(
        f"-o {key}={raw}: task {task} expects {key} to be {want}{default}; got "
        f"{type(value).__name__} {value!r}"
    )


def _parse_options(task: str, items: list[str]) -> dict[str, Any]:
    """``-o KEY=VALUE`` items as keyword options of ``task``, checked against its signature."""
    known = task_options(task)
    options = {}
    for item in items:
        if "=" not in item:
            raise CommandError(f"-o must look like KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in known and not _accepts_more(task):
            raise CommandError(_unknown_key(task, key))
        options[key] = _convert(task, key, raw, known.get(key))
    return options


def _unknown_key(task: str, key: str) -> str:
    valid = ", ".join(sorted(task_options(task))) or "(none)"
    more = " and the settings of the model it builds" if _accepts_more(task) else ""
    return f"unknown option -o {key}=… for task {task}; valid keys: {valid}{more}"


def _check_out(args: argparse.Namespace) -> None:
    """The output folder's state against --resume / --overwrite, before anything is built."""
    if args.resume and args.overwrite:
        raise CommandError("--resume and --overwrite contradict each other; pass one of them")
    if args.out is None:
        if args.resume:
            raise CommandError("--resume needs --out DIR, the folder of the run to continue")
        return
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is a file; give a folder for the checkpoint")
    has_checkpoint = (out / "config.json").is_file()
    if args.resume and not has_checkpoint:
        raise CommandError(f"--resume: {out} holds no checkpoint (no config.json) to continue")
    if out.exists() and not args.resume and not args.overwrite:
        what = "holds a checkpoint" if has_checkpoint else "already exists"
        raise CommandError(
            f"--out {out} {what}; add --overwrite to replace it, or --resume to continue training"
            " from it"
        )


def run(args: argparse.Namespace) -> int:
    _check_out(args)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    # Under torchrun, "auto" leaves each rank on its own GPU (LOCAL_RANK) or the CPU.
    device = None if world > 1 and args.device == "auto" else device_from(args)
    options = _parse_options(args.task, args.option)
    seed = 0 if args.seed is None else args.seed
    try:
        task = get_task(args.task, seed=seed, **options)
    except TypeError as err:
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        if unknown and unknown.group(1) in options:
            raise CommandError(_unknown_key(args.task, unknown.group(1))) from None
        raise CommandError(f"task {args.task}: {err}") from None
    except (ValueError, FileNotFoundError) as err:
        raise CommandError(f"task {args.task}: {err}") from None
    given = {
        "steps": args.steps,
        "seed": seed,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "eval_every": args.eval_every,
        "target": args.target,
    }
    config = replace(task.defaults, **{k: v for k, v in given.items() if v is not None})
    try:
        result = train(
            task,
            config,
            out=args.out,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            device=device,
            name=args.task,
        )
    except ValueError as err:  # a config the loop rejects, e.g. a batch size for WORLD_SIZE
        raise CommandError(str(err)) from None
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"step": result.step, **(result.history[-1] if result.history else {})}))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":  # `python -m` / `torchrun -m explore_attention.train TASK ...`
    from explore_attention.cli import main  # the importable modules, not __main__'s copy

    sys.exit(main(["train", *sys.argv[1:]]))
