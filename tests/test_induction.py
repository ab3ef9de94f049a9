"""Induction heads (Olsson et al. 2022) appear in a 2-layer attention-only model after a short
run: high induction score in layer 1, a previous-token head in layer 0, and a large in-context
loss drop — none of which the untrained model has."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from explore_attention.tasks.induction import (
    in_context_loss,
    induction_scores,
    periodic_tokens,
    plot_induction,
    previous_token_scores,
    repeated_tokens,
)
from explore_attention.train import get_task, load_checkpoint, train

SHIPPED = Path(__file__).parents[1] / "src/explore_attention/checkpoints/induction-2l"


def test_data_generators() -> None:
    g = torch.Generator().manual_seed(0)
    x = repeated_tokens(5, 7, 11, g)
    assert x.shape == (5, 14) and torch.equal(x[:, :7], x[:, 7:]) and int(x.max()) < 11
    p = periodic_tokens(50, 30, 4, 9, 20, g)
    assert p.shape == (50, 30)
    periods = set()
    for row in p:
        per = next(t for t in range(4, 10) if torch.equal(row[t:], row[:-t]))
        periods.add(per)
    assert len(periods) > 2  # the period really varies
    with pytest.raises(ValueError, match="half_len"):
        repeated_tokens(2, 0, 5)
    with pytest.raises(ValueError, match="min_period"):
        periodic_tokens(2, 10, 5, 4, 3)


def test_scores_reject_non_repeated_input() -> None:
    task = get_task("induction", seed=0, half_len=4, vocab_size=8)
    with pytest.raises(ValueError, match="must repeat"):
        induction_scores(task.model, torch.arange(8).view(1, 8))
    with pytest.raises(ValueError, match=r"\(B, 2T\)"):
        induction_scores(task.model, torch.arange(7).view(1, 7))


@pytest.mark.slow
def test_induction_heads_form_in_a_short_run(one_thread) -> None:
    task = get_task("induction", seed=0, half_len=16, vocab_size=32)
    ev = repeated_tokens(128, 16, 32, torch.Generator().manual_seed(7))
    ind0 = induction_scores(task.model, ev)
    icl0 = in_context_loss(task.model, ev)
    assert ind0.max() < 0.12 and abs(icl0["icl_drop"]) < 0.2  # nothing at init
    cfg = replace(task.defaults, steps=300, eval_every=300, target=None)
    model = train(task, cfg, progress=False).model.eval()
    ind, prev = induction_scores(model, ev), previous_token_scores(model, ev)
    icl = in_context_loss(model, ev)
    assert ind[1].max() > 0.2 and ind[1].max() > 3 * ind0.max(), ind
    assert ind[1].max() > 3 * ind[0].max()  # the induction head sits in the second layer
    # composed with a layer-0 head that looks at the previous token more than any layer-1 head
    assert prev[0].max() > 1.5 * prev[1].max(), prev
    assert icl["icl_drop"] > 1.0, icl
    assert icl["loss_first_half"] > 0.8 * math.log(32)  # the first half stays unpredictable


def test_shipped_checkpoint_has_induction_heads() -> None:
    model, config = load_checkpoint(SHIPPED)
    d = config["data"]
    ev = repeated_tokens(128, d["half_len"], d["vocab_size"], torch.Generator().manual_seed(1))
    ind, prev = induction_scores(model, ev), previous_token_scores(model, ev)
    icl = in_context_loss(model, ev)
    assert ind[1].min() > 0.7 and ind[0].max() < 0.1, ind
    assert prev[0].max() > 0.5, prev
    assert icl["loss_second_half"] < 0.5 < 3.5 < icl["loss_first_half"], icl
    fig = plot_induction(ind, prev, title="induction-2l")
    assert fig.axes[0].get_title() == "induction score" and fig.axes[0].get_xlabel() == "head"
    assert (SHIPPED / "README.md").is_file()


def test_command_writes_checkpoint_and_readme(tmp_path, one_thread, capsys) -> None:
    """``python -m explore_attention.tasks.induction``: a loadable checkpoint, a README whose
    numbers are the printed measurements and whose command reproduces the run; no overwrite."""
    import json

    from explore_attention.tasks.induction.__main__ import main

    out = tmp_path / "ind"
    argv = ["--out", str(out), "--steps", "2", "--no-progress"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    readme = (out / "README.md").read_text()
    assert "python -m explore_attention.tasks.induction --out" in readme
    assert f"{printed['icl_drop']:.3f}" in readme and printed["step"] == 2
    assert not list(out.glob("*.tmp"))
    model, _ = load_checkpoint(out)
    assert model.config.num_layers == 2
    with pytest.raises(FileExistsError):
        main(argv)
