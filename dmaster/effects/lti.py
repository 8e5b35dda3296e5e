"""Linear time-invariant filtering in the frequency domain.

The linear effects are each described by a complex transfer function sampled
on an FFT grid. Filtering multiplies spectra (``forward``) or divides by them
(``inverse``); the chain multiplies the transfer functions of consecutive LTI
effects and filters once. A response is per channel, ``(batch, 1 or channels,
bins)``, or, for an effect that mixes the front pair (channels 1–2), a 2×2
matrix per bin, ``(batch, 2, 2, bins)``: :class:`LinearResponse` composes the
two kinds into one (a matrix for the front pair, per-channel responses for the
rest), and :func:`apply_response` applies it with one FFT pair.

>>> convolution_size(1000), convolution_size(1025), convolution_size(1536)
(1024, 1280, 1536)
>>> x = torch.randn(1, 2, 100, generator=torch.Generator().manual_seed(0))  # (batch, channels, samples)
>>> half = lambda n_fft, sample_rate, channels: torch.full((1, 1, n_fft // 2 + 1), 0.5)
>>> torch.allclose(filter_lti(x, 44100, half, {}, tail_samples=0), 0.5 * x, atol=1e-6)
True
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, NamedTuple

import scipy.fft
import torch

Tensor = torch.Tensor

__all__ = ["LinearResponse", "TransferFunction", "angular_frequencies", "apply_response", "blend_pair",
           "convolution_size", "delay_response", "double", "fft_size", "filter_lti", "invert_pair", "pair_product"]

TransferFunction = Callable[..., Tensor]
"""``transfer(n_fft, sample_rate, channels, **params)`` → response ``(batch, 1 or channels, bins)``, or
``(batch, 2, 2, bins)`` for an effect that mixes the front pair."""


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


def apply_response(x: Tensor, response: Tensor | None, n_fft: int, double_precision: bool = False,
                   pair: Tensor | None = None) -> Tensor:
    """Filter audio with a response on an rFFT grid.

    Inverses use ``double_precision``: an EQ may cut some bins by 60 dB and more, and
    its inverse boosts them back, which would lift float32 FFT round-off of the
    inverse into the audible range (the forward's round-off is not boosted).

    Args:
        x: ``(batch, channels, samples)`` float audio.
        response: complex or real, broadcastable to ``(batch, channels, n_fft // 2 + 1)``; ``None``: 1.
        n_fft: the FFT length, at least the samples plus the response's tail (else it wraps around).
        double_precision: filter in float64 (complex128).
        pair: a 2×2 response per bin ``(batch, 2, 2, n_fft // 2 + 1)`` for the front pair (output channel ``i``
            is ``Σ_j pair[:, i, j] · x_j``), which then takes the place of ``response`` on channels 1–2;
            ``x`` must have at least two channels.

    Returns:
        The filtered audio with the input's length and dtype (the tail past the end is dropped).

    >>> x = torch.randn(1, 2, 64, generator=torch.Generator().manual_seed(0))
    >>> swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]])[None, :, :, None].expand(1, 2, 2, 65)
    >>> torch.allclose(apply_response(x, None, 128, pair=swap), x.flip(1), atol=1e-6)
    True
    """
    work = torch.float64 if double_precision else x.dtype
    complex_work = torch.complex128 if work == torch.float64 else torch.complex64
    if response is not None:
        response = response.to(complex_work) if response.is_complex() else response.to(work)
    spectrum = torch.fft.rfft(x.to(work), n_fft)
    if pair is None:
        filtered = spectrum if response is None else spectrum * response
    else:
        pair = pair.to(complex_work)
        front = pair[:, :, 0] * spectrum[:, None, 0] + pair[:, :, 1] * spectrum[:, None, 1]
        rest = spectrum[:, 2:]
        if response is not None and rest.shape[1] > 0:
            rest = rest * (response if response.shape[1] == 1 else response[:, 2:])
        filtered = torch.cat([front, rest], 1)
    return torch.fft.irfft(filtered, n_fft)[..., : x.shape[-1]].to(x.dtype)


def pair_product(a: Tensor, b: Tensor) -> Tensor:
    """The product ``a · b`` of two 2×2 responses per bin, each ``(batch or 1, 2, 2, bins)``."""
    return a[:, :, :1] * b[:, None, 0] + a[:, :, 1:2] * b[:, None, 1]


def invert_pair(pair: Tensor) -> Tensor:
    """The inverse of a 2×2 response per bin ``(batch, 2, 2, bins)`` (the adjugate over the determinant).

    >>> m = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)[None, :, :, None]
    >>> torch.allclose(pair_product(m, invert_pair(m))[0, :, :, 0], torch.eye(2, dtype=torch.float64))
    True
    """
    a, b, c, d = pair[:, 0, 0], pair[:, 0, 1], pair[:, 1, 0], pair[:, 1, 1]
    determinant = (a * d - b * c)[:, None, None]
    return torch.stack([torch.stack([d, -b], 1), torch.stack([-c, a], 1)], 1) / determinant


def blend_pair(pair: Tensor, weight: Tensor) -> Tensor:
    """``I + w·(pair − I)``: a 2×2 response per bin ``(batch, 2, 2, bins)`` blended with the identity by
    ``weight`` ``(batch,)``, as presence blends the chain's effects."""
    identity = torch.eye(2, dtype=pair.dtype, device=pair.device)[None, :, :, None]
    return identity + weight[:, None, None, None] * (pair - identity)


class LinearResponse(NamedTuple):
    """The responses of a linear stage composed into one: per channel, and, once an effect that mixes the front
    pair has joined, a 2×2 response per bin for the front pair (which then includes the per-channel responses of
    channels 1–2). :func:`apply_response` applies it (``response=per_channel``, ``pair=pair``).

    >>> gain = torch.full((1, 1, 3), 2.0, dtype=torch.complex128)
    >>> swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.complex128)[None, :, :, None].expand(1, 2, 2, 3)
    >>> total = LinearResponse().followed_by(gain, False).followed_by(swap, True)
    >>> total.pair[0, :, :, 0].real.tolist(), total.per_channel[0, 0, 0].real.item()
    ([[0.0, 2.0], [2.0, 0.0]], 2.0)
    """

    per_channel: Tensor | None = None
    """``(batch or 1, 1 or channels, bins)``; ``None``: 1."""
    pair: Tensor | None = None
    """``(batch, 2, 2, bins)`` for channels 1–2; ``None``: ``per_channel``'s."""

    def followed_by(self, response: Tensor, mixes: bool) -> LinearResponse:
        """The composition with ``response`` applied after it (the forward's order)."""
        per_channel, pair = self
        if not mixes:
            return LinearResponse(response if per_channel is None else per_channel * response,
                                  None if pair is None else response[:, :2, None, :] * pair)
        if pair is not None:
            return LinearResponse(per_channel, pair_product(response, pair))
        return LinearResponse(per_channel, response if per_channel is None else response * per_channel[:, None, :2])

    def preceded_by(self, response: Tensor, mixes: bool) -> LinearResponse:
        """The composition with ``response`` applied before it (the inverse's order)."""
        per_channel, pair = self
        if not mixes:
            return LinearResponse(response if per_channel is None else per_channel * response,
                                  None if pair is None else pair * response[:, None, :2])
        if pair is not None:
            return LinearResponse(per_channel, pair_product(pair, response))
        return LinearResponse(per_channel, response if per_channel is None else per_channel[:, :2, None] * response)


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
