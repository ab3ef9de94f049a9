"""Argument checks shared by the whole package: one place, one wording.

Every public function validates what a user passes with these, so errors read the same
everywhere: the argument's name, what was given and what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) and ``>= minimum``.

    Raises ``TypeError`` for a non-integer and ``ValueError`` for one below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_probability(name: str, value: object) -> float:
    """Return ``value`` as a float if it lies in ``[0, 1)`` (a dropout rate)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float in [0, 1), got {type(value).__name__} {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def check_tokens(name: str, tokens: object, length: int | None = None) -> list[str]:
    """Return ``tokens`` as a list of strings, optionally of exactly ``length`` items."""
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(tokens).__name__}")
    out = list(tokens)
    bad = [i for i, t in enumerate(out) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"{name} must hold strings; item {bad[0]} is {type(out[bad[0]]).__name__}")
    if length is not None and len(out) != length:
        raise ValueError(f"{name} has {len(out)} tokens but the attention has length {length}")
    return out


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a ``bool`` (``0``/``1`` and other truthy values are refused)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value
