"""Notebooks are committed without outputs and import the library (DESIGN §6)."""

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").rglob("*.ipynb"))
NOTEBOOKS = [p for p in NOTEBOOKS if ".ipynb_checkpoints" not in p.parts]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found under notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_notebook_is_stripped_and_thin(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        assert not cell.get("outputs"), f"{path.name}: code cell {i} has outputs; strip them"
        assert cell.get("execution_count") is None, f"{path.name}: cell {i} has an execution count"
    assert any("explore_attention" in c.source for c in code), (
        f"{path.name} must import the library"
    )
