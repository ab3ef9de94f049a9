"""``explore_attention.device``: the best device and a user's --device choice."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES

from explore_attention import device as D


def test_available_devices_agree_with_the_test_suite():
    assert D.available_devices() == DEVICES and DEVICES[0] == "cpu"


@pytest.mark.parametrize(
    "cuda, mps, best",
    [(False, False, "cpu"), (True, False, "cuda"), (False, True, "mps"), (True, True, "cuda")],
)
def test_best_device_prefers_cuda_then_mps(monkeypatch, cuda, mps, best):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(D, "_mps_available", lambda: mps)
    assert D.best_device() == torch.device(best)
    assert D.resolve_device("auto") == D.resolve_device(None) == torch.device(best)
    assert D.available_devices() == ["cpu"] + ["cuda"] * cuda + ["mps"] * mps


@pytest.mark.parametrize("device", DEVICES)
def test_resolve_present_devices(device):
    assert D.resolve_device(device).type == device
    assert D.resolve_device(torch.device(device)).type == device


def test_resolve_rejects_what_is_not_here(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(D, "_mps_available", lambda: False)
    for name in ("cuda", "cuda:0", "mps"):
        with pytest.raises(ValueError, match=r"not available on this machine \(available: cpu"):
            D.resolve_device(name)
    with pytest.raises(ValueError, match="device must be one of"):
        D.resolve_device("tpu")
    with pytest.raises(ValueError, match="device must be one of"):
        D.resolve_device("meta")
    with pytest.raises(TypeError, match="got int"):
        D.resolve_device(0)


def test_resolve_rejects_a_gpu_index_past_the_count(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert D.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="has 2 CUDA device"):
        D.resolve_device("cuda:2")
