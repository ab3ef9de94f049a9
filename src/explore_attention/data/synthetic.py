r"""Synthetic sequence tasks that separate memory from attention: copy, reverse, associative recall.

Every task is a sequence-to-sequence problem on integer tokens with the special ids shared by
the whole project's seq2seq code: ``PAD = 0``, ``BOS = 1``, ``EOS = 2``; symbols start at
:data:`FIRST_SYMBOL`.

* **copy** — output the input. A fixed-size recurrent state must hold all :math:`L` symbols:
  :math:`L \log_2 |V|` bits (Graves et al. 2014, "Neural Turing Machines", arXiv:1410.5401).
* **reverse** — output the input backwards (Sutskever et al. 2014, arXiv:1409.3215, observed that
  reversing makes RNN translation easier because the first outputs sit near their inputs).
* **recall** — ``k1 v1 k2 v2 … kn vn ? kj`` → ``vj``: associative recall (Ba et al. 2016, "Using
  Fast Weights to Attend to the Recent Past", arXiv:1610.06258): one content lookup.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["BOS", "EOS", "FIRST_SYMBOL", "PAD", "pad_batch", "sample"]

PAD, BOS, EOS = 0, 1, 2
FIRST_SYMBOL = 3  # the first ordinary token id

TASK_NAMES = ("copy", "reverse", "recall")


def pad_batch(seqs: list[list[int]], *, bos: bool = False, eos: bool = False) -> Tensor:
    """Right-pad integer sequences with :data:`PAD` into a ``(B, L)`` long tensor."""
    seqs = [([BOS] if bos else []) + list(s) + ([EOS] if eos else []) for s in seqs]
    out = torch.full((len(seqs), max(len(s) for s in seqs)), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out  # (B, L)


def vocab_size(task: str, num_symbols: int) -> int:
    """Token ids used by ``task`` (recall adds one id for the ``?`` separator)."""
    return FIRST_SYMBOL + num_symbols + (1 if task == "recall" else 0)


def sample(
    task: str,
    n: int,
    *,
    min_len: int,
    max_len: int,
    num_symbols: int = 10,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Draw ``n`` examples; return ``(src (n, S), tgt (n, T))``, ``tgt`` framed by BOS … EOS.

    Lengths are uniform in ``[min_len, max_len]`` (for recall: the number of key/value pairs,
    with keys from the first half of the symbols and values from the second half).
    """
    if task not in TASK_NAMES:
        raise ValueError(f"task must be one of {TASK_NAMES}, got {task!r}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
    if task == "recall" and num_symbols < 4:
        raise ValueError(f"recall needs num_symbols >= 4, got {num_symbols}")
    if task == "recall" and max_len > num_symbols // 2:
        raise ValueError(
            f"recall needs max_len <= num_symbols // 2 = {num_symbols // 2} distinct "
            f"keys, got max_len={max_len}"
        )
    g = generator
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=g).tolist()
    srcs, tgts = [], []
    for L in lengths:
        if task == "recall":
            half = num_symbols // 2
            keys = (torch.randperm(half, generator=g)[:L] + FIRST_SYMBOL).tolist()
            vals = (
                torch.randint(0, num_symbols - half, (L,), generator=g) + FIRST_SYMBOL + half
            ).tolist()
            j = int(torch.randint(0, L, (1,), generator=g))
            query = FIRST_SYMBOL + num_symbols  # the "?" separator
            srcs.append([t for kv in zip(keys, vals) for t in kv] + [query, keys[j]])
            tgts.append([vals[j]])
        else:
            seq = (torch.randint(0, num_symbols, (L,), generator=g) + FIRST_SYMBOL).tolist()
            srcs.append(seq)
            tgts.append(seq if task == "copy" else seq[::-1])
    return pad_batch(srcs), pad_batch(tgts, bos=True, eos=True)
