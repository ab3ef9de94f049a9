"""The training loop: DDP under torchrun equals one process, resume equals uninterrupted,
checkpoints are atomic and never silently overwritten, and a short run actually learns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import DEVICES
from safetensors.torch import load_file

from explore_attention import train as tr
from explore_attention.cli import CommandError

pytestmark = pytest.mark.usefixtures("one_thread")


ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
# Fixed length, so every rank's slice holds the same number of loss terms.
OPTS = [
    "-o",
    "model=gru",
    "-o",
    "hidden=16",
    "-o",
    "emb_dim=8",
    "-o",
    "min_len=5",
    "-o",
    "max_len=5",
    "-o",
    "eval_size=32",
]
ARGS = [
    "reverse",
    "--steps",
    "8",
    "--batch-size",
    "16",
    "--eval-every",
    "4",
    "--no-progress",
    "--seed",
    "3",
    *OPTS,
]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}


def _final(out: Path) -> tuple[dict[str, torch.Tensor], dict]:
    return load_file(str(out / "model.safetensors")), json.loads((out / "config.json").read_text())


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path: Path) -> None:
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    cmd = [sys.executable, "-m", "explore_attention.train", *ARGS, "--out", str(single)]
    subprocess.run(cmd, check=True, env=_env(), capture_output=True, timeout=120)
    cmd = [
        str(TORCHRUN),
        "--nproc_per_node=2",
        "--standalone",
        "-m",
        "explore_attention.train",
        *ARGS,
        "--out",
        str(ddp),
    ]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=150)
    assert res.returncode == 0, res.stderr[-3000:]
    w1, c1 = _final(single)
    w2, c2 = _final(ddp)
    assert c1["step"] == c2["step"] == 8
    assert set(w1) == set(w2)
    for k in w1:  # same global batch -> same updates, up to all-reduce rounding
        torch.testing.assert_close(w2[k], w1[k], atol=1e-5, rtol=1e-4)
    l1, l2 = c1["history"][-1]["loss"], c2["history"][-1]["loss"]
    # rank 0 reports the loss of its half of the batch; the model after training is equal
    assert abs(l1 - l2) < 0.5 and c1["history"][0]["step"] == 4
    # and training moved the weights
    t0 = tr.get_task(
        "reverse",
        seed=3,
        **{
            o.split("=")[0]: eval(o.split("=")[1])
            if o.split("=")[1][0].isdigit()
            else o.split("=")[1]
            for o in OPTS[1::2]
        },
    ).model.state_dict()
    assert any(not torch.allclose(t0[k], w1[k]) for k in w1)


def _task() -> tr.Task:
    return tr.get_task(
        "reverse", seed=1, model="gru", hidden=16, emb_dim=8, max_len=5, eval_size=32
    )


CFG = tr.TrainConfig(steps=12, batch_size=16, eval_every=4, seed=1)


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    full = tr.train(_task(), CFG, out=tmp_path / "a", progress=False)
    part = tr.train(_task(), CFG, out=tmp_path / "b", progress=False, until=6)
    assert part.step == 6
    assert json.loads((tmp_path / "b" / "config.json").read_text())["step"] == 6
    rest = tr.train(_task(), CFG, out=tmp_path / "b", progress=False, resume=True)
    assert rest.step == full.step == 12
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(rest.model.state_dict()[k], v, atol=1e-6, rtol=1e-5)
    assert [h["step"] for h in rest.history] == [4, 6, 8, 12]


def test_checkpoint_atomic_and_no_silent_overwrite(tmp_path: Path, monkeypatch) -> None:
    task = _task()
    out = tmp_path / "ckpt"
    tr.save_checkpoint(
        out,
        task.model,
        {
            "model_class": "explore_attention.models.seq2seq:Seq2Seq",
            "model_config": task.model_config,
            "tag": 1,
        },
    )
    with pytest.raises(FileExistsError, match="exists"):
        tr.save_checkpoint(out, task.model, {"tag": 2})
    with pytest.raises(FileExistsError, match="exists"):
        tr.train(task, CFG, out=out, progress=False)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", boom)
    with pytest.raises(OSError, match="disk full"):
        tr.save_checkpoint(out, task.model, {"tag": 3}, overwrite=True)
    monkeypatch.undo()
    # the old checkpoint is intact and no temporary folder is left behind
    assert json.loads((out / "config.json").read_text())["tag"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    model, _ = tr.load_checkpoint(out)
    src = torch.tensor([[3, 4, 5, 6]])
    tgt = torch.tensor([[1, 6, 5, 4, 3]])
    task.model.eval()
    torch.testing.assert_close(model(src, tgt).logits, task.model(src, tgt).logits)


@pytest.mark.parametrize("device", DEVICES)
def test_short_run_learns_and_stops_early(device: str) -> None:
    task = tr.get_task(
        "reverse", seed=0, model="bahdanau", hidden=32, emb_dim=16, max_len=6, eval_size=128
    )
    res = tr.train(
        task,
        tr.TrainConfig(steps=600, batch_size=32, eval_every=50, target=0.95),
        progress=False,
        device=device,
    )
    assert next(res.model.parameters()).device.type == device
    assert res.stopped_early and res.history[-1]["accuracy"] >= 0.95
    assert res.step < 600
    assert res.history[-1]["loss"] < 0.5 * res.history[0]["loss"]


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="task must be one of"):
        tr.get_task("nope")
    with pytest.raises(ValueError, match="mode"):
        tr.train(_task(), tr.TrainConfig(mode="up"), progress=False)
    with pytest.raises(CommandError, match="KEY=VALUE"):
        tr._parse_options("copy", ["model"])
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        tr.load_checkpoint("/nonexistent/x")


def test_cli_train(tmp_path: Path, capsys) -> None:
    from explore_attention import cli

    out = tmp_path / "run"
    argv = [
        "train",
        "copy",
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--eval-every",
        "3",
        "--no-progress",
        "--out",
        str(out),
        "-o",
        "model=gru",
        "-o",
        "hidden=8",
        "-o",
        "eval_size=4",
    ]
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 3
    _, cfg = tr.load_checkpoint(out)
    assert cfg["task"] == "copy" and cfg["model_config"]["config"]["hidden"] == 8
    assert cli.main(argv) == 2  # the folder holds a checkpoint now: one line, no traceback
    assert "--overwrite" in capsys.readouterr().err
