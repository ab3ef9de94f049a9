"""Exercise solutions (docs/design.md "Lesson template", item 9) run and check themselves.

Each notebook's solutions live in ``notebooks/solutions/<folder>_<notebook stem>.py`` with one
``exercise_<n>()`` function per exercise that computes the answer with the library and asserts
it. The file names do not start with ``test_``, so pytest and nbmake never collect them on their
own; this test imports every file and calls every ``exercise_*`` function.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "notebooks" / "solutions"
NAME = re.compile(r"(\d\d_[a-z0-9_]+?)_(\d\d_[a-z0-9_]+|[a-z][a-z0-9_]*)\.py")


def _files() -> list[Path]:
    return sorted(SOLUTIONS.glob("*.py")) if SOLUTIONS.is_dir() else []


def _notebook_for(path: Path) -> Path | None:
    """The notebook ``<folder>/<stem>.ipynb`` a solutions file belongs to, if it exists."""
    for folder in sorted((ROOT / "notebooks").iterdir()):
        prefix = folder.name + "_"
        if folder.is_dir() and path.stem.startswith(prefix):
            nb = folder / f"{path.stem[len(prefix) :]}.ipynb"
            if nb.is_file():
                return nb
    return None


def test_solution_files_are_named_after_an_existing_notebook():
    for path in _files():
        assert not path.name.startswith("test_"), f"{path.name}: would be collected by pytest"
        assert NAME.fullmatch(path.name), f"{path.name}: expected <folder>_<notebook stem>.py"
        assert _notebook_for(path) is not None, f"{path.name}: no notebook with that folder/stem"


def test_every_exercise_solution_runs_and_checks_itself():
    ran = []
    for path in _files():
        spec = importlib.util.spec_from_file_location(f"solutions_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        names = sorted(n for n in vars(module) if n.startswith("exercise_"))
        assert len(names) >= 3, f"{path.name}: a notebook has >= 3 exercises, found {names}"
        for name in names:
            getattr(module, name)()  # each function asserts its own answer
            ran.append(f"{path.stem}.{name}")
        plt.close("all")
    assert len(ran) == len(set(ran))


def test_a_notebook_with_solutions_says_where_they_are():
    for path in _files():
        nb = _notebook_for(path)
        assert f"solutions/{path.name}" in nb.read_text(), (
            f"{nb.relative_to(ROOT)} must point the reader to solutions/{path.name}"
        )
