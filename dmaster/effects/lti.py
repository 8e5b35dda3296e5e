"""Linear time-invariant filtering in the frequency domain.

EQ, gain, echo and reverb are LTI, so each is described by its complex
transfer function sampled on an FFT grid. Filtering multiplies spectra
(``forward``) or divides by them (``inverse``); the chain multiplies the
transfer functions of consecutive LTI effects and filters once.

>>> convolution_size(1000), convolution_size(1025), convolution_size(1536)
(1024, 1280, 1536)
>>> x = torch.randn(1, 2, 100, generator=torch.Generator().manual_seed(0))  # (batch, channels, samples)
>>> half = lambda n_fft, sample_rate, channels: torch.full((1, 1, n_fft // 2 + 1), 0.5)
>>> torch.allclose(filter_lti(x, 44100, half, {}, tail_samples=0), 0.5 * x, atol=1e-6)
True
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import scipy.fft
import torch

Tensor = torch.Tensor

__all__ = ["TransferFunction", "angular_frequencies", "apply_response", "convolution_size", "delay_response",
           "double", "fft_size", "filter_lti"]

TransferFunction = Callable[..., Tensor]
"""``transfer(n_fft, sample_rate, channels, **params)`` → response ``(batch, 1 or channels, bins)``."""


def fft_size(samples: int) -> int:
    """The smallest fast real-FFT length ≥ ``samples`` (a 5-smooth number)."""
    return scipy.fft.next_fast_len(int(samples), real=True)


def convolution_size(samples: int) -> int:
    """FFT length for a linear convolution spanning ``samples``: the smallest ``2^a``, ``3·2^a`` or
    ``5·2^a`` ≥ ``samples``. Torch's CPU FFT (MKL) runs these fast at every length, while some other
    5-smooth lengths run much slower than the next power of two; the odd factors keep short signals
    from padding by up to 2× (the responses are computed per bin)."""
    samples = max(int(samples), 1)
    return min(odd << max(0, (samples - 1) // odd).bit_length() for odd in (1, 3, 5))


def angular_frequencies(n_fft: int, like: Tensor) -> Tensor:
    """Radians per sample of each rFFT bin: ``(n_fft // 2 + 1,)``, of ``like``'s dtype and device."""
    return torch.arange(n_fft // 2 + 1, dtype=like.dtype, device=like.device) * (2 * math.pi / n_fft)


def delay_response(delay_samples: Tensor, n_fft: int) -> Tensor:
    """``exp(-jωd)`` on an rFFT grid for a fractional delay ``d``.

    Args:
        delay_samples: ``(batch,)`` delays in samples (fractions allowed).
        n_fft: the FFT length.

    Returns:
        ``(batch, 1, n_fft // 2 + 1)`` complex.
    """
    omega = angular_frequencies(n_fft, delay_samples)
    phase = -omega * delay_samples[:, None, None]
    return torch.polar(torch.ones_like(phase), phase)


def apply_response(x: Tensor, response: Tensor, n_fft: int, double_precision: bool = False) -> Tensor:
    """Filter audio with a response on an rFFT grid.

    Inverses use ``double_precision``: an EQ may cut some bins by 60 dB and more, and
    its inverse boosts them back, which would lift float32 FFT round-off of the
    inverse into the audible range (the forward's round-off is not boosted).

    Args:
        x: ``(batch, channels, samples)`` float audio.
        response: complex or real, broadcastable to ``(batch, channels, n_fft // 2 + 1)``.
        n_fft: the FFT length, at least the samples plus the response's tail (else it wraps around).
        double_precision: filter in float64 (complex128).

    Returns:
        The filtered audio with the input's length and dtype (the tail past the end is dropped).
    """
    work = torch.float64 if double_precision else x.dtype
    complex_work = torch.complex128 if work == torch.float64 else torch.complex64
    response = response.to(complex_work) if response.is_complex() else response.to(work)
    spectrum = torch.fft.rfft(x.to(work), n_fft)
    return torch.fft.irfft(spectrum * response, n_fft)[..., : x.shape[-1]].to(x.dtype)


def double(params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Parameters in float64, for transfer functions: biquads with poles near z = 1 and
    phases ``ω·d`` over long delays lose too much in float32."""
    return {name: value.double() for name, value in params.items()}


def filter_lti(x: Tensor, sample_rate: float, transfer: TransferFunction, params: Mapping[str, Tensor],
               tail_samples: int, invert: bool = False, double_precision: bool | None = None) -> Tensor:
    """Filter with an effect's transfer function, or its reciprocal.

    Args:
        x: ``(batch, channels, samples)`` float audio.
        sample_rate: Hz.
        transfer: ``transfer(n_fft, sample_rate, channels, **params)`` → response (see :data:`TransferFunction`).
        params: the effect's parameters, each ``(batch,)``; passed to ``transfer`` in float64.
        tail_samples: samples of response after the end that the grid must hold.
        invert: divide by the response instead of multiplying.
        double_precision: filter in float64; by default only when inverting.

    Returns:
        The filtered audio, same shape and dtype.
    """
    n_fft = convolution_size(x.shape[-1] + tail_samples)
    response = transfer(n_fft, sample_rate, x.shape[1], **double(params))
    precise = invert if double_precision is None else double_precision
    return apply_response(x, 1.0 / response if invert else response, n_fft, double_precision=precise)
