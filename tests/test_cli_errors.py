"""Every user mistake on ``train``, ``inspect`` and ``demo`` ends in one line in the CLI's own
terms and exit status 2 — never a Python traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from explore_attention.cli import main
from explore_attention.device import available_devices

MISSING_DEVICE = next(d for d in ("cuda", "mps") if d not in available_devices())


def fails(argv: list[str], capsys) -> str:
    """Run the CLI; assert status 2 and one line ``explore-attention CMD: …``; return it."""
    rc = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2, (rc, out, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"explore-attention {argv[0]}: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def checkpoint_dir(tmp_path: Path) -> Path:
    """A folder that looks like a finished run (its config.json is what --resume reads)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    return out


# ------------------------------------------------------------------ train: the output folder
def test_train_existing_checkpoint_names_both_flags(checkpoint_dir, capsys):
    line = fails(["train", "copy", "--out", str(checkpoint_dir)], capsys)
    assert "holds a checkpoint" in line and "--overwrite" in line and "--resume" in line


def test_train_existing_empty_folder(tmp_path, capsys):
    line = fails(["train", "copy", "--out", str(tmp_path)], capsys)
    assert "already exists" in line and "--overwrite" in line


def test_train_resume_without_checkpoint(tmp_path, capsys):
    line = fails(["train", "copy", "--out", str(tmp_path / "none"), "--resume"], capsys)
    assert "--resume" in line and "no checkpoint" in line
    line = fails(["train", "copy", "--resume"], capsys)
    assert "--resume needs --out" in line


def test_train_resume_and_overwrite_together(checkpoint_dir, capsys):
    argv = ["train", "copy", "--out", str(checkpoint_dir), "--resume", "--overwrite"]
    assert "contradict" in fails(argv, capsys)


def test_train_out_is_a_file(tmp_path, capsys):
    file = tmp_path / "f.txt"
    file.write_text("x")
    assert "is a file" in fails(["train", "copy", "--out", str(file)], capsys)


# ------------------------------------------------------------------ train: -o options
def test_train_unknown_option_lists_valid_keys(capsys):
    line = fails(["train", "vit-digits", "-o", "nosuchkey=3"], capsys)
    assert "unknown option -o nosuchkey" in line
    for key in ("d_model", "num_heads", "num_layers", "patch_size", "dropout"):
        assert key in line


def test_train_unknown_option_reaching_the_model(capsys):
    # copy (like numbers-de) passes extra sizes on to the model, whose __init__ used to raise
    # "TypeError: Seq2Seq.__init__() got an unexpected keyword argument".
    line = fails(["train", "copy", "-o", "nosuchkey=3", "-o", "eval_size=4"], capsys)
    assert "unknown option -o nosuchkey" in line and "hidden" in line and "emb_dim" in line


def test_train_wrapper_task_lists_the_options_it_forwards(capsys):
    line = fails(["train", "reverse", "-o", "nosuchkey=3"], capsys)  # make_reverse(**options)
    assert "hidden" in line and "max_len" in line


@pytest.mark.parametrize(
    "task, option, expected",
    [
        ("copy", "hidden=abc", "expects hidden to be int, default 64; got str 'abc'"),
        ("copy", "hidden=1.5", "expects hidden to be int"),
        ("copy", "min_len=True", "expects min_len to be int"),
        ("vit-digits", "dropout=high", "expects dropout to be float"),
        ("gpt-char", "num_layers=two", "expects num_layers to be int"),  # a GPTConfig field
    ],
)
def test_train_option_of_the_wrong_type(task, option, expected, capsys):
    assert expected in fails(["train", task, "-o", option], capsys)


def test_train_option_without_equals(capsys):
    assert "KEY=VALUE" in fails(["train", "copy", "-o", "hidden"], capsys)


def test_train_missing_file(tmp_path, capsys):
    line = fails(["train", "tsv", "-o", f"path={tmp_path / 'missing.tsv'}"], capsys)
    assert "missing.tsv" in line


def test_train_unknown_model(capsys):
    line = fails(["train", "copy", "-o", "model=nosuch"], capsys)
    assert "model must be one of" in line and "bahdanau" in line


def test_train_unknown_task(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "nosuch"])
    assert exit_.value.code == 2
    assert "invalid choice: 'nosuch'" in capsys.readouterr().err


# ------------------------------------------------------------------ devices (all three commands)
@pytest.mark.parametrize("command", [["train", "copy"], ["inspect", "hi"], ["demo"]])
def test_unavailable_and_unknown_device(command, tmp_path, capsys):
    if command[0] == "inspect":
        command = [*command, "--out", str(tmp_path / "o")]
    line = fails([*command, "--device", MISSING_DEVICE], capsys)
    assert "not available on this machine" in line and "cpu" in line
    line = fails([*command, "--device", "tpu"], capsys)
    assert "device must be one of" in line


# ------------------------------------------------------------------ inspect
def test_inspect_missing_model_folder(tmp_path, capsys):
    argv = ["inspect", "hi", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]
    assert "does not exist" in fails(argv, capsys)
    assert not (tmp_path / "o").exists()


def test_inspect_out_is_a_file(tmp_path, capsys):
    file = tmp_path / "f.png"
    file.write_bytes(b"x")
    assert "is a file" in fails(["inspect", "hi", "--out", str(file)], capsys)


# ------------------------------------------------------------------ demo
def test_demo_port_taken(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        line = fails(["demo", "--port", str(port)], capsys)
    assert f"127.0.0.1:{port}" in line and "--port" in line


def test_demo_port_out_of_range(capsys):
    assert "--port must be in [0, 65535]" in fails(["demo", "--port", "70000"], capsys)


def test_demo_unknown_model(tmp_path, capsys):
    line = fails(["demo", "--port", "0", "--model", str(tmp_path / "nope")], capsys)
    assert "unknown model" in line and "nope" in line


# ------------------------------------------------------------------ the real entry point
@pytest.mark.slow  # a fresh interpreter imports torch
def test_no_traceback_through_the_console_entry_point(checkpoint_dir):
    """The issue's case, as a user types it: the installed module, a real process."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    argv = ["train", "numbers-de", "--out", str(checkpoint_dir)]
    res = subprocess.run(
        [sys.executable, "-m", "explore_attention.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"explore-attention train: --out {checkpoint_dir} holds a checkpoint; add --overwrite to "
        "replace it, or --resume to continue training from it"
    ]
