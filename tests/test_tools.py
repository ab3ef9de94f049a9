"""The Chromium and espeak-ng locators on a fake machine: a tmp folder of fake executables."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from explore_attention import tools
from explore_attention.tools import CHROMIUM, ESPEAK, ToolNotFoundError

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="fake executables here are POSIX files with the x bit"
)


def fake_exe(folder: Path, name: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def env(tmp_path: Path, *dirs: Path, **extra: str) -> dict[str, str]:
    """An environment whose PATH holds only ``dirs`` and whose HOME is an empty tmp folder."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": os.pathsep.join(map(str, dirs)), "HOME": str(home), **extra}


def test_variable_comes_first(tmp_path):
    on_path = fake_exe(tmp_path / "bin", "chromium")
    chosen = fake_exe(tmp_path / "elsewhere", "my-chrome")
    e = env(tmp_path, tmp_path / "bin", EXPLORE_ATTENTION_CHROMIUM=chosen)
    assert tools.find(CHROMIUM, environ=e) == str(Path(chosen).resolve())
    del e["EXPLORE_ATTENTION_CHROMIUM"]
    assert tools.find(CHROMIUM, environ=e) == on_path


def test_variable_naming_no_executable_is_an_error(tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a browser")
    for given in (str(text_file), str(tmp_path / "missing")):
        e = env(tmp_path, EXPLORE_ATTENTION_ESPEAK=given)
        with pytest.raises(ValueError, match=r"EXPLORE_ATTENTION_ESPEAK must name an executable"):
            tools.find(ESPEAK, environ=e)


@pytest.mark.parametrize(
    "names, expected",
    [
        (["chromium"], "chromium"),
        (["chromium-browser"], "chromium-browser"),
        (["google-chrome"], "google-chrome"),
        (["google-chrome-stable", "chromium-browser"], "chromium-browser"),  # order of the list
        (["chrome", "chromium"], "chromium"),
    ],
)
def test_path_names_in_order(tmp_path, names, expected):
    for name in names:
        fake_exe(tmp_path / "bin", name)
    found = tools.find(CHROMIUM, environ=env(tmp_path, tmp_path / "bin"))
    assert found == str(tmp_path / "bin" / expected)


def test_a_non_executable_file_on_path_is_not_taken(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "espeak-ng").write_text("data")
    assert tools.find(ESPEAK, environ=env(tmp_path, tmp_path / "bin")) is None


def test_playwright_browser_newest_build(tmp_path):
    e = env(tmp_path, tmp_path / "empty-bin")
    cache = Path(e["HOME"]) / ".cache" / "ms-playwright"
    fake_exe(cache / "chromium-1100" / "chrome-linux", "chrome")
    newest = fake_exe(cache / "chromium-1200" / "chrome-linux64", "chrome")
    assert tools.find(CHROMIUM, environ=e) == newest
    # PLAYWRIGHT_BROWSERS_PATH, when set, is searched before the default cache.
    custom = fake_exe(tmp_path / "pw" / "chromium-900" / "chrome-linux", "chrome")
    e["PLAYWRIGHT_BROWSERS_PATH"] = str(tmp_path / "pw")
    assert tools.find(CHROMIUM, environ=e) == custom


def test_windows_program_files(tmp_path):
    pf = tmp_path / "Program Files"
    exe = fake_exe(pf / "eSpeak NG", "espeak-ng.exe")
    e = env(tmp_path, tmp_path / "empty-bin", PROGRAMFILES=str(pf))
    assert tools.find(ESPEAK, environ=e) == exe


@pytest.mark.parametrize(
    "system, os_release, family, espeak_line",
    [
        ("linux", 'ID=debian\nVERSION_ID="13"', "debian", "sudo apt-get install espeak-ng"),
        ("linux", "ID=ubuntu\nID_LIKE=debian", "debian", "sudo apt-get install espeak-ng"),
        ("linux", 'ID=fedora\nVERSION_ID="41"', "fedora", "sudo dnf install espeak-ng"),
        ("linux", 'ID="rocky"\nID_LIKE="rhel centos fedora"', "fedora", "sudo dnf install"),
        ("darwin", "", "macos", "brew install espeak-ng"),
        ("win32", "", "windows", "winget install --id eSpeak-NG.eSpeak-NG -e"),
        ("linux", "ID=arch", "linux", "debian: sudo apt-get install espeak-ng | fedora: sudo dnf"),
    ],
)
def test_install_command_per_platform(system, os_release, family, espeak_line):
    assert tools.platform_family(system, os_release) == family
    assert tools.install_command(ESPEAK, family).startswith(espeak_line)


def test_missing_tool_fails_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(tools, "platform_family", lambda: "fedora")
    e = env(tmp_path, tmp_path / "empty-bin")
    with pytest.raises(ToolNotFoundError) as err:
        tools.require("chromium", environ=e)
    msg = str(err.value)
    assert "Chromium not found" in msg and "sudo dnf install chromium" in msg
    assert "python -m playwright install chromium" in msg and "EXPLORE_ATTENTION_CHROMIUM" in msg
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(ValueError, match="tool must be one of"):
        tools.find("firefox")


def test_require_returns_the_path(tmp_path):
    exe = fake_exe(tmp_path / "bin", "espeak-ng")
    assert tools.require("espeak-ng", environ=env(tmp_path, tmp_path / "bin")) == exe
