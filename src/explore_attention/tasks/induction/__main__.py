"""``python -m explore_attention.tasks.induction --out DIR``: train the ``induction`` task, then
write README.md (per-head scores, in-context loss drop, the command) into the checkpoint folder."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
from torch import Tensor

from ..cli import command, parser, train_task, write_text
from . import in_context_loss, induction_scores, previous_token_scores, repeated_tokens

README = """# induction-2l

A 2-layer attention-only GPT ({params:,} parameters; {num_heads} heads per layer, {d_model} dims,
RoPE positions) trained on random token blocks tiled with random periods (vocabulary
{vocab_size}). It develops induction heads (Olsson et al. 2022, arXiv:2209.11895). Load with
`explore_attention.train.load_checkpoint(path)`.

Measured on 256 held-out sequences `[s, s]`, `s` = {half_len} random tokens, after {step} steps:

* induction score per head (mean attention from a second-half token to the token after its
  first occurrence), layer 0: {ind0}; layer 1: {ind1}
* previous-token score per head, layer 0: {prev0}; layer 1: {prev1}
* next-token loss on the first half {first:.3f} nats (ln {vocab_size} = {lnv:.3f}: unpredictable),
  on the second half {second:.3f} nats: in-context loss drop **{drop:.3f}** nats

Reproduce (from the repository root):

```
{command}
```
"""


def main(argv: list[str] | None = None) -> int:
    """Train the ``induction`` task, then write README.md (scores, command) into the folder."""
    p = parser("python -m explore_attention.tasks.induction", "Train the induction task.")
    args = p.parse_args(argv)
    out = Path(args.out)
    task, res = train_task("induction", args, out, overwrite=args.overwrite)
    model = res.model.cpu().eval()
    d = task.meta["data"]
    ev = repeated_tokens(256, d["half_len"], d["vocab_size"], torch.Generator().manual_seed(4321))
    ind, prev, icl = (
        induction_scores(model, ev),
        previous_token_scores(model, ev),
        in_context_loss(model, ev),
    )

    def fmt(row: Tensor) -> str:
        return ", ".join(f"{v:.2f}" for v in row.tolist())

    text = README.format(
        params=model.num_params(),
        num_heads=model.config.num_heads,
        d_model=model.config.d_model,
        vocab_size=d["vocab_size"],
        half_len=d["half_len"],
        step=res.step,
        ind0=fmt(ind[0]),
        ind1=fmt(ind[-1]),
        prev0=fmt(prev[0]),
        prev1=fmt(prev[-1]),
        first=icl["loss_first_half"],
        second=icl["loss_second_half"],
        lnv=math.log(d["vocab_size"]),
        drop=icl["icl_drop"],
        command=command("explore_attention.tasks.induction", argv),
    )
    write_text(out / "README.md", text)
    print(
        json.dumps({"step": res.step, "induction": ind.tolist(), "previous": prev.tolist(), **icl})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
