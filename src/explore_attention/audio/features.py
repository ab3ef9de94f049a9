r"""Log-mel spectrograms in pure PyTorch (no torchaudio), as Whisper computes them.

A short-time Fourier transform with a Hann window gives the power spectrum
:math:`P_{t,f} = |\mathrm{STFT}(x)_{t,f}|^2`; a bank of triangular filters spaced evenly on the
mel scale (Slaney 1998, Auditory Toolbox: linear below 1 kHz, logarithmic above, each filter
normalised to unit area) pools it to :math:`M = F P`; Whisper (Radford et al. 2022,
arXiv:2212.04356, §2.2) then takes

.. math::

    S = \frac{\max(\log_{10} \max(M, 10^{-10}),\ \max_{t,m} \log_{10} M - 8) + 4}{4}

over 25 ms windows every 10 ms at 16 kHz (``n_fft=400``, ``hop=160``), dropping the last frame.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["hz_to_mel", "log_mel_spectrogram", "mel_filterbank", "mel_to_hz"]

_F_SP = 200.0 / 3  # Hz per mel in the linear part of Slaney's scale
_MIN_LOG_HZ = 1000.0  # where the scale turns logarithmic
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # = 15 mel
_LOGSTEP = math.log(6.4) / 27.0  # log-spaced part: 27 mel per factor 6.4 in frequency


def hz_to_mel(f: Tensor) -> Tensor:
    r"""Slaney's mel scale: :math:`m = 3f/200` below 1 kHz, :math:`15 + \ln(f/1000)/\ell` above.

    :math:`\ell = \ln(6.4)/27`.
    """
    f = torch.as_tensor(f, dtype=torch.float64)
    lin = f / _F_SP
    log = _MIN_LOG_MEL + torch.log(torch.clamp(f, min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(f >= _MIN_LOG_HZ, log, lin)


def mel_to_hz(m: Tensor) -> Tensor:
    """Inverse of :func:`hz_to_mel`."""
    m = torch.as_tensor(m, dtype=torch.float64)
    lin = m * _F_SP
    log = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (torch.clamp(m, min=_MIN_LOG_MEL) - _MIN_LOG_MEL))
    return torch.where(m >= _MIN_LOG_MEL, log, lin)


def mel_filterbank(
    n_mels: int, n_fft: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
) -> Tensor:
    """Triangular, area-normalised mel filters, shape ``(n_mels, n_fft // 2 + 1)``, float64."""
    for name, val in (("n_mels", n_mels), ("n_fft", n_fft), ("sample_rate", sample_rate)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got {f_min}, {f_max}")
    fft_hz = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # (F,)
    edges = mel_to_hz(torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))  # (M+2,)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (M, 1) each
    rise = (fft_hz - lo) / (mid - lo)  # (M, F)
    fall = (hi - fft_hz) / (hi - mid)  # (M, F)
    tri = torch.clamp(torch.minimum(rise, fall), min=0.0)  # (M, F)
    return tri * (2.0 / (hi - lo))  # unit area per filter (Slaney normalisation)


def log_mel_spectrogram(
    audio: Tensor | np.ndarray,
    *,
    n_mels: int = 80,
    n_fft: int = 400,
    hop_length: int = 160,
    sample_rate: int = 16_000,
) -> Tensor:
    """Whisper's normalised log-mel spectrogram of ``audio (T,)`` or ``(B, T)``.

    Returns ``(n_mels, frames)`` or ``(B, n_mels, frames)`` float32 with
    ``frames = T // hop_length``. Equals ``WhisperFeatureExtractor`` on unpadded audio.
    """
    x = torch.as_tensor(audio)
    if not x.is_floating_point():
        raise TypeError(f"audio must be floating point samples, got dtype {x.dtype}")
    if x.dim() not in (1, 2) or x.shape[-1] < n_fft // 2 + 1:
        raise ValueError(
            f"audio must have shape (T,) or (B, T) with T > {n_fft // 2}, got {tuple(x.shape)}"
        )
    x = x.to(torch.float32)
    window = torch.hann_window(n_fft, dtype=torch.float32)  # periodic Hann
    spec = torch.stft(x, n_fft, hop_length, window=window, center=True, return_complex=True)
    power = spec[..., :-1].abs() ** 2  # (..., F, frames): the last frame is dropped
    fb = mel_filterbank(n_mels, n_fft, sample_rate).to(torch.float32)  # (M, F)
    mel = fb @ power  # (..., M, frames)
    log = torch.clamp(mel, min=1e-10).log10()
    top = log.amax(dim=(-2, -1), keepdim=True)  # per clip
    # Dynamic range of 80 dB below the loudest bin, then scaled to roughly [-1, 1].
    return (torch.maximum(log, top - 8.0) + 4.0) / 4.0
