"""Drawing attention: static (matplotlib) and interactive (self-contained HTML) views."""
