"""Explaining predictions with attention: rollout, flow, gradient relevance, faithfulness."""

from .faithfulness import auc, deletion_curve, insertion_curve, ranking, top_k_hit
from .flow import attention_graph, flow
from .gradient import attention_gradients, gradient_relevance, relevance_from_model
from .rollout import fuse_heads, rollout

__all__ = [
    "attention_gradients",
    "attention_graph",
    "auc",
    "deletion_curve",
    "flow",
    "fuse_heads",
    "gradient_relevance",
    "insertion_curve",
    "ranking",
    "relevance_from_model",
    "rollout",
    "top_k_hit",
]
