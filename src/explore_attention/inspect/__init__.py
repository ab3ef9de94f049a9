"""Capture attention from Hugging Face models and the project's own models."""
