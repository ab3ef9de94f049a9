"""Drawing attention: static (matplotlib) and interactive (self-contained HTML) views."""

from .static import clean_token, head_grid, heatmap
from .views import AttentionView, attention_heatmap, head_view, model_view, token_view

__all__ = [
    "AttentionView",
    "attention_heatmap",
    "clean_token",
    "head_grid",
    "head_view",
    "heatmap",
    "model_view",
    "token_view",
]
