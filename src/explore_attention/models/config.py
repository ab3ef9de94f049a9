"""How every model of the project takes its hyper-parameters.

A model is built from its config dataclass, from that dataclass's ``asdict`` (how
``config.json`` stores it: ``{"config": {...}}``) or from the fields as keywords::

    VisionTransformer(ViTConfig(d_model=32))
    VisionTransformer({"d_model": 32})          # what load_checkpoint passes as config=
    VisionTransformer(d_model=32)
"""

from __future__ import annotations

from typing import Any, TypeVar

C = TypeVar("C")


def resolve_config(cls: type[C], config: C | dict | None, fields: dict[str, Any]) -> C:
    """Return a ``cls`` instance from ``config`` (an instance or a dict) or from ``fields``."""
    if config is None:
        return cls(**fields)
    if fields:
        raise TypeError(
            f"pass a {cls.__name__} (or a dict of its fields) or its fields as keywords, not "
            f"both; got config and {sorted(fields)}"
        )
    if isinstance(config, dict):
        return cls(**config)
    if isinstance(config, cls):
        return config
    raise TypeError(
        f"config must be a {cls.__name__} or a dict of its fields, got {type(config).__name__}"
    )
