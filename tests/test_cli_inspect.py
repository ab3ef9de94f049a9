"""``explore-attention inspect`` end to end, in a subprocess, on the bundled model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from explore_attention.cli import main
from explore_attention.inspect import capture


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "explore_attention.cli", "inspect", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.slow  # a fresh interpreter imports torch + transformers and loads MiniLM
def test_inspect_writes_pngs_and_trace(tmp_path):
    text = "The animal didn't cross the street because it was too tired"
    res = _run(text, "--out", "out", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out"
    pngs = sorted(out.glob("layer_*.png"))
    assert [p.name for p in pngs] == [f"layer_{i:02d}.png" for i in range(6)]
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
        assert f"wrote {Path('out') / p.name}" in res.stdout
    assert f"wrote {Path('out') / 'trace.json'}" in res.stdout
    assert not list(out.glob("*.tmp*"))
    data = json.loads((out / "trace.json").read_text())
    L = len(data["tokens"])
    assert data["shape"] == [6, 12, L, L] and data["kind"] == "self"
    att = torch.tensor(data["attentions"])
    assert att.shape == (6, 12, L, L)
    torch.testing.assert_close(att.sum(-1), torch.ones(6, 12, L), atol=1e-5, rtol=1e-5)
    # The file holds exactly what capture() returns in this process.
    ref = capture(None, text)
    assert data["tokens"] == ref.tokens
    torch.testing.assert_close(att, ref.attentions, atol=1e-6, rtol=1e-5)


def test_inspect_offline_hub_name_fails_cleanly(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "o"
    rc = main(
        ["inspect", "hello", "--model", "explore-attention-tests/no-such-model", "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "all-MiniLM-L6-v2" in err
    assert not out.exists()


def test_inspect_empty_text(tmp_path, capsys):
    rc = main(["inspect", "  ", "--out", str(tmp_path / "o")])
    assert rc == 2 and "empty" in capsys.readouterr().err
