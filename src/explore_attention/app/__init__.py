"""The Attention Explorer web app."""
