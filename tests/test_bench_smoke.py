"""`make bench` must keep running: every case of the attention benchmark and the nanoGPT
comparison run here at smoke sizes (numbers come from `make bench`, never from tests)."""

from __future__ import annotations

import json

import pytest

from benchmarks import gpt_nanogpt, run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def test_attention_benchmark_runs_every_method(tmp_path):
    assert (
        run.main(["--quick", "--budget-s", "30", "--max-call-s", "2", "--out", str(tmp_path)]) == 0
    )
    res = json.loads((tmp_path / "attention_quick.json").read_text())
    timed = {row["method"] for row in res["rows"] if row.get("time_s")}
    for method in (
        "sdpa",
        "auto",
        "tiled",
        "auto_window256",
        "auto_longformer256",
        "linear_causal",
        "performer256",
        "lsh2x64",
    ):
        assert method in timed, f"{method} was not measured"
    assert (tmp_path / "attention_quick.md").read_text().startswith("# Attention benchmark")


def test_nanogpt_comparison_runs_and_matches(tmp_path):
    r = gpt_nanogpt.main(
        [
            "--steps",
            "4",
            "--chunk",
            "2",
            "--eval-every",
            "2",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    # the reference starts from our weights and sees the same batches: same validation loss
    assert abs(r["final_val_loss"]["ours"] - r["final_val_loss"]["reference"]) < 1e-3
    assert "layers" in (tmp_path / "gpt_nanogpt.md").read_text()
