r"""A task whose decisive tokens are known by construction, to measure explanation faithfulness.

Each sequence is ``[CLS]`` followed by ``length - 1`` tokens: random *noise* tokens and exactly one
*marker*. Markers come in two groups; the label is the marker's group. So the marker's position
is, by construction, the only token that decides the label. A tiny transformer classifier of ours
(:class:`~explore_attention.models.blocks.PreLNBlock` pre-norm blocks, read-out
from ``[CLS]``) learns the task in seconds; then each explanation method ranks the tokens of
held-out sequences for the ``[CLS]`` prediction and we count how often the marker comes first
(random ranking: ``1 / (length - 1)``), and the deletion / insertion AUC of the true class's
probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..models.blocks import PreLNBlock
from ..models.output import ModelOutput
from ..tasks.common import quick
from .faithfulness import auc, deletion_curve, insertion_curve, top_k_hit
from .flow import flow
from .gradient import attention_gradients, gradient_relevance
from .rollout import rollout

__all__ = [
    "MarkerTask",
    "TinyClassifier",
    "TinyConfig",
    "evaluate_methods",
    "train_classifier",
]


@dataclass(frozen=True)
class MarkerTask:
    """Sequences with one marker among noise; the marker's group is the label."""

    length: int = 12  # tokens per sequence, [CLS] included
    num_noise: int = 20  # distinct noise tokens
    markers_per_class: int = 2  # distinct marker tokens in each of the two groups

    PAD = 0  # the "removed" token used by deletion / insertion
    CLS = 1

    @property
    def vocab_size(self) -> int:
        return 2 + self.num_noise + 2 * self.markers_per_class

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """``(ids (n, length), labels (n,), marker position (n,))``."""
        L, m = self.length, self.markers_per_class
        ids = torch.randint(2, 2 + self.num_noise, (n, L), generator=generator)  # (n, L)
        ids[:, 0] = self.CLS
        labels = torch.randint(0, 2, (n,), generator=generator)
        pos = torch.randint(1, L, (n,), generator=generator)
        which = torch.randint(0, m, (n,), generator=generator)
        ids[torch.arange(n), pos] = 2 + self.num_noise + labels * m + which
        return ids, labels, pos


@dataclass(frozen=True)
class TinyConfig:
    vocab_size: int  # token ids in [0, vocab_size)
    max_len: int  # positions (learned embeddings)
    d_model: int = 32  # model width
    num_heads: int = 2  # heads per layer
    num_layers: int = 2  # transformer blocks
    num_classes: int = 2  # output classes


class TinyClassifier(nn.Module):
    """Token + position embeddings, pre-norm blocks, a linear read-out of ``[CLS]``."""

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = c = config
        self.tok = nn.Embedding(c.vocab_size, c.d_model)
        self.pos = nn.Embedding(c.max_len, c.d_model)
        self.blocks = nn.ModuleList(
            PreLNBlock(c.d_model, c.num_heads, 4 * c.d_model) for _ in range(c.num_layers)
        )
        self.ln = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.num_classes)

    def forward(self, ids: Tensor, *, return_weights: bool = False) -> ModelOutput:
        """``ids (B, L)`` -> logits ``(B, num_classes)``; with ``return_weights`` also
        ``attentions["encoder"]``, each layer's ``(B, H, L, L)``."""
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))  # (B, L, D)
        weights = []
        for block in self.blocks:
            res = block(x, return_weights=return_weights)
            x = res.output
            weights.append(res.weights)
        logits = self.head(self.ln(x[:, 0]))  # (B, C)
        return ModelOutput(
            logits, attentions={"encoder": tuple(weights)} if return_weights else None
        )


def train_classifier(
    task: MarkerTask | None = None,
    *,
    steps: int | None = None,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool = True,
) -> tuple[TinyClassifier, float]:
    """Train a :class:`TinyClassifier` on ``task``; returns ``(model, held-out accuracy)``."""
    task = task or MarkerTask()
    steps = steps if steps is not None else (300 if quick() else 1000)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = TinyClassifier(TinyConfig(vocab_size=task.vocab_size, max_len=task.length))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    for _ in tqdm(range(steps), desc="train marker classifier", disable=not progress):
        ids, labels, _ = task.sample(batch_size, gen)
        loss = nn.functional.cross_entropy(model(ids).logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    ids, labels, _ = task.sample(1000, torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        acc = (model(ids).logits.argmax(-1) == labels).float().mean().item()
    return model, acc


METHODS = ("raw attention", "rollout", "flow", "gradient (Chefer)", "random")


def evaluate_methods(
    model: TinyClassifier,
    task: MarkerTask,
    *,
    n: int = 200,
    seed: int = 123,
    curves: bool = True,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """For each method: fraction of sequences whose top-ranked token is the marker, and the mean
    deletion / insertion AUC of the true class's probability (removed tokens become PAD).

    Methods rank row 0 (``[CLS]``) of: the last layer's head-mean attention; rollout; flow;
    Chefer et al.'s gradient relevance; a random ranking.
    """
    gen = torch.Generator().manual_seed(seed)
    ids, labels, pos = task.sample(n, gen)
    out = {m: {"top1": 0.0, "deletion_auc": 0.0, "insertion_auc": 0.0} for m in METHODS}
    model.eval()
    cand = torch.ones(task.length, dtype=torch.bool)
    cand[0] = False  # [CLS] is never ranked nor removed
    for b in tqdm(range(n), desc="explain", disable=not progress):
        x, y = ids[b : b + 1], int(labels[b])
        A, G = attention_gradients(model, x, lambda out, y=y: out.logits[0, y])
        rel = {
            "raw attention": A[-1].mean(dim=0)[0],
            "rollout": rollout(A)[0],
            "flow": flow(A, queries=[0])[0],
            "gradient (Chefer)": gradient_relevance(A, G)[0],
            "random": torch.rand(task.length, generator=gen),
        }
        decisive = torch.zeros(task.length, dtype=torch.bool)
        decisive[pos[b]] = True

        def score(keep: Tensor, x=x, y=y) -> float:
            z = torch.where(keep, x[0], torch.full_like(x[0], task.PAD))
            with torch.no_grad():
                return torch.softmax(model(z[None]).logits, -1)[0, y].item()

        for m, r in rel.items():
            out[m]["top1"] += top_k_hit(r, decisive, cand) / n
            if curves:
                out[m]["deletion_auc"] += auc(deletion_curve(score, r, fixed=~cand)) / n
                out[m]["insertion_auc"] += auc(insertion_curve(score, r, fixed=~cand)) / n
    return out


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    """The results of :func:`evaluate_methods` as a markdown table."""
    lines = [
        "| method | marker ranked first | deletion AUC (lower is better) "
        "| insertion AUC (higher is better) |",
        "|---|---|---|---|",
    ]
    for m, r in results.items():
        lines.append(
            f"| {m} | {r['top1']:.3f} | {r['deletion_auc']:.3f} | {r['insertion_auc']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """``python -m explore_attention.explain.synthetic``: train, evaluate, print the table."""
    torch.set_num_threads(1)  # tiny model: one thread is fastest and shares the machine
    task = MarkerTask()
    model, acc = train_classifier(task)
    n = 60 if quick() else 300
    results = evaluate_methods(model, task, n=n)
    print(f"marker task: length {task.length}, classifier accuracy {acc:.3f}, {n} sequences")
    print(f"random ranking puts the marker first with probability 1/{task.length - 1}")
    print(markdown_table(results))


if __name__ == "__main__":
    main()
