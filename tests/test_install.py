"""The package as a user gets it, in ONE fresh virtualenv (no system site-packages, no ``make``):

1. the README's plain-pip path — ``python -m venv``, ``pip install -r requirements.txt``,
   ``pip install -e .``, ``pytest`` — runs the fast tests;
2. ``python -m build`` makes the sdist and the wheel (the wheel from the sdist, so the sdist is
   complete), and both hold the shipped checkpoints, the app's static files and the views'
   JavaScript;
3. the wheel, installed with the pinned requirements, runs ``explore-attention inspect`` and a
   notebook from a folder outside the checkout, importing the installed copy.

The checkout is copied first (its git-tracked and untracked, not ignored, files), so nothing is
written into it. Slow: about 4 minutes on 2 cores, most of it pip unpacking the requirements
(pip's cache and the machine's find-links make a repeat run download nothing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "explore_attention"
FAST_TESTS = [
    "tests/test_core.py",
    "tests/test_masks.py",
    "tests/test_tools.py",
    "tests/test_device.py",
    "tests/test_cli_errors.py",
    "tests/test_project_files.py",
]
NOTEBOOK = "notebooks/03_demos/01_inspecting_weights.ipynb"  # MiniLM + the views' JavaScript
BIN = "Scripts" if os.name == "nt" else "bin"
EXE = ".exe" if os.name == "nt" else ""


def run(cmd: list, *, cwd: Path, env: dict[str, str], timeout: int) -> str:
    """Run ``cmd``; fail the test with the end of its output unless it exits 0."""
    res = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} exited {res.returncode}:\n{out[-4000:]}"
    return out


def copy_checkout(dest: Path) -> None:
    """Copy the files git would commit (tracked + untracked, not ignored), links as links."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src, dst = ROOT / rel, dest / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)


def user_env(venv: Path) -> dict[str, str]:
    """This machine's environment as a user's shell with the venv activated: no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(
        VIRTUAL_ENV=str(venv),
        PATH=os.pathsep.join([str(venv / BIN), env.get("PATH", "")]),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        EXPLORE_ATTENTION_QUICK="1",
        OMP_NUM_THREADS="1",
        MPLBACKEND="Agg",
    )
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    return env


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A checkout copy and a fresh venv holding exactly ``pip install -r requirements.txt``."""
    base = tmp_path_factory.mktemp("install")
    source, venv = base / "source", base / "venv"
    copy_checkout(source)
    run([sys.executable, "-m", "venv", venv], cwd=base, env=dict(os.environ), timeout=300)
    python = venv / BIN / f"python{EXE}"
    env = user_env(venv)
    # --no-compile: modules are byte-compiled when first imported, not all ~20k now.
    run(
        [python, "-m", "pip", "install", "-q", "--no-compile", "-r", "requirements.txt"],
        cwd=source,
        env=env,
        timeout=1200,
    )
    yield {"base": base, "source": source, "venv": venv, "python": python, "env": env}
    remove_later(venv)


def remove_later(folder: Path) -> None:
    """Delete ``folder`` (~2 GB, ~60k files; pytest would keep it for 3 runs) without waiting:
    on a busy disk that takes minutes, which the suite need not spend."""
    if os.name == "nt":
        shutil.rmtree(folder, ignore_errors=True)
        return
    subprocess.Popen(
        ["rm", "-rf", str(folder)],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def dist(fresh) -> Path:
    """``python -m build`` in the fresh venv: the sdist, then the wheel built from it."""
    out = fresh["base"] / "dist"
    run(
        [fresh["python"], "-m", "build", "--outdir", out, fresh["source"]],
        cwd=fresh["base"],
        env=fresh["env"],
        timeout=600,
    )
    return out


def test_plain_pip_path_runs_the_fast_tests(fresh):
    python, source, env = fresh["python"], fresh["source"], fresh["env"]
    run([python, "-m", "pip", "install", "-q", "-e", "."], cwd=source, env=env, timeout=600)
    where = run(
        [python, "-c", "import explore_attention as e; print(e.__file__)"],
        cwd=source,
        env=env,
        timeout=120,
    )
    assert Path(where.strip()).is_relative_to(source / "src")
    out = run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", *FAST_TESTS],
        cwd=source,
        env=env,
        timeout=900,
    )
    assert " passed" in out and " failed" not in out and " error" not in out


def shipped(folder: str, suffixes: tuple[str, ...] = ()) -> list[str]:
    """Files under the package's ``folder``, relative to ``src/``, as a wheel names them."""
    found = [
        p.relative_to(PACKAGE.parent).as_posix()
        for p in (PACKAGE / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]
    return [f for f in found if not suffixes or f.endswith(suffixes)]


def test_wheel_and_sdist_hold_checkpoints_static_files_and_views_js(dist):
    expected = (
        shipped("checkpoints")
        + shipped("app/static")
        + shipped("viz/assets", (".js",))
        + ["explore_attention/cli.py", "explore_attention/tools.py"]
    )
    assert any(f.endswith("model.safetensors") for f in expected)
    assert "explore_attention/viz/assets/views.js" in expected
    (wheel,) = dist.glob("explore_attention-*.whl")
    (sdist,) = dist.glob("explore_attention-*.tar.gz")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert not [f for f in expected if f not in in_wheel]
    with tarfile.open(sdist) as tar:
        in_sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert not [f for f in expected if f"src/{f}" not in in_sdist]
    assert {"LICENSE", "README.md", "pyproject.toml"} <= in_sdist
    dist_info = "-".join(wheel.name.split("-")[:2]) + ".dist-info"  # name-version.dist-info
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: MIT" in metadata
    for name in in_wheel:  # the wheel's files match the checkout's bytes
        if name in expected:
            assert zipfile.ZipFile(wheel).read(name) == (PACKAGE.parent / name).read_bytes()


NOTEBOOK_CHECK = """
import sys, explore_attention
assert sys.prefix == {venv!r}, sys.prefix
assert explore_attention.__file__.startswith({venv!r}), explore_attention.__file__
"""
RUN_NOTEBOOK = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
nb.cells.append(nbformat.v4.new_code_cell(sys.argv[2]))  # the kernel imported the wheel
NotebookClient(nb, timeout=300, kernel_name="python3").execute()
print("notebook ran:", len(nb.cells), "cells")
"""


def test_wheel_outside_the_checkout_runs_inspect_and_a_notebook(fresh, dist):
    python, env, venv = fresh["python"], fresh["env"], fresh["venv"]
    user = fresh["base"] / "user"  # a folder that is neither the checkout nor its copy
    user.mkdir()
    (wheel,) = dist.glob("explore_attention-*.whl")
    run(
        [python, "-m", "pip", "uninstall", "-q", "-y", "explore-attention"],
        cwd=user,
        env=env,
        timeout=300,
    )
    run(
        [python, "-m", "pip", "install", "-q", wheel, "-r", fresh["source"] / "requirements.txt"],
        cwd=user,
        env=env,
        timeout=900,
    )
    where = run(
        [python, "-c", "import explore_attention as e; print(e.__file__)"],
        cwd=user,
        env=env,
        timeout=120,
    )
    assert Path(where.strip()).is_relative_to(venv), where

    cli = venv / BIN / f"explore-attention{EXE}"
    out = run(
        [cli, "inspect", "The cat sat on the mat", "--out", "out"], cwd=user, env=env, timeout=300
    )
    assert "6 layers × 12 heads" in out
    assert sorted(p.name for p in (user / "out").iterdir()) == [
        *(f"layer_{i:02d}.png" for i in range(6)),
        "trace.json",
    ]

    notebook = user / Path(NOTEBOOK).name
    shutil.copy2(fresh["source"] / NOTEBOOK, notebook)
    check = textwrap.dedent(NOTEBOOK_CHECK.format(venv=str(venv)))
    out = run([python, "-c", RUN_NOTEBOOK, notebook, check], cwd=user, env=env, timeout=600)
    assert "notebook ran:" in out
