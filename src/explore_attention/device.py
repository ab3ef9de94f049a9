"""Which device to compute on: one answer for the command line, notebooks and tests.

``best_device()`` is CUDA when present, else Apple's MPS, else the CPU; notebooks start with::

    from explore_attention.device import best_device
    device = best_device()

``resolve_device("auto" | "cpu" | "cuda" | "cuda:1" | "mps")`` turns a user's choice into a
``torch.device`` and raises ``ValueError`` (naming what this machine has) when the choice is not
available, so ``--device cuda`` on a laptop without a GPU says so in one line.
"""

from __future__ import annotations

import torch

__all__ = ["CHOICES", "available_devices", "best_device", "resolve_device"]

CHOICES = ("auto", "cpu", "cuda", "mps")  # what --device accepts ("cuda:N" too)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def available_devices() -> list[str]:
    """Device types this machine can run on: ``"cpu"`` always, then ``"cuda"`` / ``"mps"``."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if _mps_available():
        found.append("mps")
    return found


def best_device() -> torch.device:
    """The fastest device present: ``cuda`` (GPU 0), else ``mps``, else ``cpu``."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``device`` as a ``torch.device`` that exists here; ``None`` / ``"auto"`` → best_device().

    Raises:
        TypeError: ``device`` is not a string, ``torch.device`` or ``None``.
        ValueError: an unknown name, or a device this machine does not have.
    """
    if device is None or device == "auto":
        return best_device()
    if not isinstance(device, (str, torch.device)):
        raise TypeError(
            f"device must be one of {CHOICES} or a torch.device, got {type(device).__name__}"
        )
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device must be one of {CHOICES} (or cuda:N), got {device!r}") from err
    if dev.type not in CHOICES:
        raise ValueError(f"device must be one of {CHOICES} (or cuda:N), got {device!r}")
    have = available_devices()
    if dev.type not in have:
        raise ValueError(
            f"device {str(dev)!r} is not available on this machine (available: "
            f"{', '.join(have)}; 'auto' picks the best)"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device {str(dev)!r} does not exist: this machine has "
            f"{torch.cuda.device_count()} CUDA device(s)"
        )
    return dev
