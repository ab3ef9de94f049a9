"""Programs outside Python the project drives: found on this machine, never assumed.

* **Chromium** (or Google Chrome) runs the browser tests of the app and the views (Playwright
  drives it) — looked for in ``$EXPLORE_ATTENTION_CHROMIUM``, then ``chromium``,
  ``chromium-browser``, ``google-chrome``, ``google-chrome-stable``, ``chrome`` on ``PATH``, then
  the usual install folders of macOS and Windows, then a browser that ``playwright install
  chromium`` downloaded.
* **espeak-ng** speaks the audio lessons' and tests' sentences — ``$EXPLORE_ATTENTION_ESPEAK``,
  then ``espeak-ng`` on ``PATH``, then its Windows install folder.

An environment variable that is set must name an executable file: a wrong one is an error, not
a silent fall-back. When a program is missing, :func:`require` raises :class:`ToolNotFoundError`
whose message gives the install command for this platform (Debian/Ubuntu, Fedora, macOS with
Homebrew, Windows). ``python -m explore_attention.tools`` prints what is found.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CHROMIUM",
    "ESPEAK",
    "TOOLS",
    "Tool",
    "ToolNotFoundError",
    "find",
    "install_command",
    "platform_family",
    "require",
]

PLATFORMS = ("debian", "fedora", "macos", "windows")


@dataclass(frozen=True)
class Tool:
    name: str  # what the user calls it, e.g. "Chromium"
    env: str  # environment variable that names the executable (checked first)
    commands: tuple[str, ...]  # names looked up on PATH, in order
    install: dict[str, str]  # platform family -> the command that installs it
    places: tuple[str, ...] = ()  # absolute paths / globs tried after PATH (~ and %VARS% expand)


CHROMIUM = Tool(
    name="Chromium",
    env="EXPLORE_ATTENTION_CHROMIUM",
    commands=("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"),
    install={
        "debian": "sudo apt-get install chromium",
        "fedora": "sudo dnf install chromium",
        "macos": "brew install --cask google-chrome",
        "windows": "winget install --id Google.Chrome -e",
        "any": "python -m playwright install chromium",
    },
    places=(
        "/Applications/Chromium.app/Contents/MacOS/Chromium",
        "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
        "~/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
        "%PROGRAMFILES%/Google/Chrome/Application/chrome.exe",
        "%PROGRAMFILES(X86)%/Google/Chrome/Application/chrome.exe",
        "%LOCALAPPDATA%/Google/Chrome/Application/chrome.exe",
        # `playwright install chromium` (newest build last, so it is preferred: see _expand)
        "%PLAYWRIGHT_BROWSERS_PATH%/chromium-*/chrome-linux*/chrome",
        "%PLAYWRIGHT_BROWSERS_PATH%/chromium-*/chrome-mac*/Chromium.app/Contents/MacOS/Chromium",
        "%PLAYWRIGHT_BROWSERS_PATH%/chromium-*/chrome-win*/chrome.exe",
        "~/.cache/ms-playwright/chromium-*/chrome-linux*/chrome",
        "~/Library/Caches/ms-playwright/chromium-*/chrome-mac*/Chromium.app/Contents/MacOS/Chromium",
        "%LOCALAPPDATA%/ms-playwright/chromium-*/chrome-win*/chrome.exe",
    ),
)

ESPEAK = Tool(
    name="espeak-ng",
    env="EXPLORE_ATTENTION_ESPEAK",
    commands=("espeak-ng",),
    install={
        "debian": "sudo apt-get install espeak-ng",
        "fedora": "sudo dnf install espeak-ng",
        "macos": "brew install espeak-ng",
        "windows": "winget install --id eSpeak-NG.eSpeak-NG -e",
    },
    places=(
        "%PROGRAMFILES%/eSpeak NG/espeak-ng.exe",
        "%PROGRAMFILES(X86)%/eSpeak NG/espeak-ng.exe",
    ),
)

TOOLS = {"chromium": CHROMIUM, "espeak-ng": ESPEAK}


class ToolNotFoundError(FileNotFoundError):
    """A program the project needs is not installed (the message says how to install it)."""


def _tool(tool: Tool | str) -> Tool:
    if isinstance(tool, Tool):
        return tool
    if tool not in TOOLS:
        raise ValueError(f"tool must be one of {sorted(TOOLS)} or a Tool, got {tool!r}")
    return TOOLS[tool]


def platform_family(system: str | None = None, os_release: str | None = None) -> str:
    """``"debian"``, ``"fedora"``, ``"macos"``, ``"windows"`` or ``"linux"`` (another Linux).

    ``system`` defaults to ``sys.platform``; ``os_release`` to the text of ``/etc/os-release``,
    whose ``ID`` / ``ID_LIKE`` tell the Linux family (Ubuntu is ``ID_LIKE=debian``).
    """
    system = sys.platform if system is None else system
    if system == "darwin":
        return "macos"
    if system in ("win32", "cygwin"):
        return "windows"
    if os_release is None:
        try:
            os_release = Path("/etc/os-release").read_text()
        except OSError:
            os_release = ""
    ids: set[str] = set()
    for line in os_release.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids.update(value.strip().strip('"').lower().split())
    if ids & {"debian", "ubuntu"}:
        return "debian"
    if ids & {"fedora", "rhel", "centos"}:
        return "fedora"
    return "linux"


def install_command(tool: Tool | str, family: str | None = None) -> str:
    """How to install ``tool`` on ``family`` (default: this machine's), as one line."""
    tool = _tool(tool)
    family = platform_family() if family is None else family
    if family in tool.install:
        line = tool.install[family]
    else:  # another Linux: the commands of the families we know
        line = " | ".join(f"{fam}: {tool.install[fam]}" for fam in ("debian", "fedora"))
    if "any" in tool.install:
        line += f"  (or, on any platform: {tool.install['any']})"
    return line


def _is_executable(path: str | os.PathLike) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _expand(pattern: str, environ: dict[str, str]) -> list[str]:
    """Paths matching ``pattern`` after ``~`` and ``%VAR%`` expansion; [] if a VAR is unset."""
    for var in {part for i, part in enumerate(pattern.split("%")) if i % 2}:
        if not environ.get(var):
            return []
        pattern = pattern.replace(f"%{var}%", environ[var])
    if pattern.startswith("~"):
        home = environ.get("HOME") or environ.get("USERPROFILE")
        if not home:
            return []
        pattern = home + pattern[1:]
    # Newest first: Playwright's folders are chromium-<build number>.
    return sorted(glob.glob(pattern), reverse=True)


def find(tool: Tool | str, *, environ: dict[str, str] | None = None) -> str | None:
    """The path of ``tool``'s executable on this machine, or ``None``.

    ``environ`` (default ``os.environ``) supplies the tool's variable, ``PATH`` and the folders
    of :attr:`Tool.places`; tests pass a fake one. Raises ``ValueError`` when the tool's variable
    is set but does not name an executable file.
    """
    tool = _tool(tool)
    environ = dict(os.environ) if environ is None else environ
    given = environ.get(tool.env)
    if given:
        if not _is_executable(given):
            raise ValueError(
                f"{tool.env} must name an executable {tool.name}, got {given!r}, which is "
                "not an executable file"
            )
        return str(Path(given).resolve())
    for command in tool.commands:
        found = shutil.which(command, path=environ.get("PATH", ""))
        if found:
            return found
    for pattern in tool.places:
        for path in _expand(pattern, environ):
            if _is_executable(path):
                return path
    return None


def require(tool: Tool | str, *, environ: dict[str, str] | None = None) -> str:
    """:func:`find` ``tool`` or raise :class:`ToolNotFoundError` saying how to install it."""
    tool = _tool(tool)
    path = find(tool, environ=environ)
    if path is None:
        raise ToolNotFoundError(
            f"{tool.name} not found (looked at ${tool.env}, then {', '.join(tool.commands)} on "
            f"PATH and the usual install folders). Install it: {install_command(tool)} — or set "
            f"{tool.env} to its executable."
        )
    return path


def main() -> int:
    """Print where each tool is, or how to install it; exit 1 if one is missing."""
    missing = 0
    for tool in TOOLS.values():
        try:
            print(f"{tool.name}: {require(tool)}")
        except (ToolNotFoundError, ValueError) as err:
            print(f"{tool.name}: {err}")
            missing += 1
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
