"""The files around the code agree with each other: licence, citation, changelog and version."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import yaml

import explore_attention

ROOT = Path(__file__).resolve().parents[1]
# pyproject's [project] strings (tomllib is Python >= 3.11; the package supports 3.10)
PYPROJECT = dict(
    re.findall(r'^(version|license|name) = "([^"]*)"$', (ROOT / "pyproject.toml").read_text(), re.M)
)


def test_license_is_the_mit_text_pyproject_declares():
    text = (ROOT / "LICENSE").read_text()
    assert PYPROJECT["license"] == "MIT"
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the explore-attention authors" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text


def test_version_agrees_everywhere():
    assert explore_attention.__version__ == PYPROJECT["version"]
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["version"] == PYPROJECT["version"]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{PYPROJECT['version']}]" in changelog


def test_citation_has_the_cff_1_2_0_required_fields():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    # CFF 1.2.0: cff-version, message, title and authors are required.
    assert cff["cff-version"] == "1.2.0"
    assert isinstance(cff["message"], str) and cff["message"]
    assert isinstance(cff["title"], str) and cff["title"]
    assert cff["authors"] and all(
        isinstance(a, dict) and ("name" in a or "family-names" in a) for a in cff["authors"]
    )
    assert cff["type"] in ("software", "dataset")
    assert cff["license"] == PYPROJECT["license"]
    date = cff["date-released"]
    date = date if isinstance(date, datetime.date) else datetime.date.fromisoformat(date)
    assert isinstance(date, datetime.date)


def test_changelog_versions_are_newest_first():
    versions = re.findall(r"^## \[(\d+)\.(\d+)\.(\d+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    parsed = [tuple(map(int, v)) for v in versions]
    assert len(parsed) >= 2 and parsed == sorted(parsed, reverse=True)
