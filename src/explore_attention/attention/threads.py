"""A small persistent pool of Python threads for CPU attention kernels made of many small ops.

On a CPU, a tile-sized operation is too small to split across OpenMP threads: the hand-off
costs more than the work, badly so on a loaded machine. Kernels built from such operations
(tiled attention's query tiles, linear attention's and LSH's groups of heads) instead run
independent pieces on Python threads, each doing single-threaded operations — the way
FlashAttention spreads query tiles over GPU thread blocks. PyTorch releases the GIL inside
its kernels, so the threads run in parallel.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = ["run_parallel"]

_POOL: dict[tuple[int, int], ThreadPoolExecutor] = {}  # (pid, size): a fork gets its own


def run_parallel(tasks: list[Callable[[], object]]) -> None:
    """Run ``tasks`` (callables) on a persistent pool of Python threads, each with one intra-op
    thread and no autograd; the caller's thread count is restored afterwards. Tasks must write
    to disjoint memory."""
    threads = torch.get_num_threads()
    n = len(tasks)
    key = (os.getpid(), n)
    pool = _POOL.get(key)
    if pool is None:
        pool = _POOL[key] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="ea-tiles")

    def wrapped(task) -> None:
        torch.set_num_threads(1)
        with torch.no_grad():
            task()

    torch.set_num_threads(1)
    try:
        for f in [pool.submit(wrapped, t) for t in tasks]:
            f.result()
    finally:
        torch.set_num_threads(threads)
