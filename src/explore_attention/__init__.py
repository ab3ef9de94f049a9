"""explore-attention: learn how attention works by running it."""

__version__ = "0.2.0"
