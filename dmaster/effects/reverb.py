"""Synthetic reverb: convolution with exponentially decaying noise, mixed dry/wet.

The impulse response of channel ``c`` is seeded Gaussian noise shaped by
``exp(−δ t)`` with ``δ = 3 ln 10 / T60`` (−60 dB after T60 seconds), cut at
``T60 · sample_rate`` samples, scaled to unit energy and delayed by the
pre-delay. ``y = (1 − wet)·x + wet·(h ∗ x)``, computed by FFT convolution.

The inverse is statistical late-reverb suppression in the STFT domain
(Lebart et al. 2001; Habets 2007): the power of the reverberant tail in each
frame is predicted from the power of earlier frames, decayed as the known T60
prescribes, and removed by a spectral-subtraction gain; the direct path is then
brought back to its level. It is approximate: reverb that arrives within the
same STFT frame as its source stays.

>>> x = 0.1 * torch.randn(1, 2, 22050, generator=torch.Generator().manual_seed(0))  # (batch, channels, samples)
>>> y = forward(x, 44100, t60_s=0.5, wet=0.3)
>>> restored = inverse(y, 44100, t60_s=0.5, wet=0.3)
>>> bool((restored - x).square().mean() < (y - x).square().mean())   # closer to the dry signal
True
"""

from __future__ import annotations

import math
from functools import lru_cache, partial

import torch

from .lti import convolution_size, delay_response, filter_lti
from .spec import EffectRole, EffectSpec, Param, Prior, needs_grad

Tensor = torch.Tensor

__all__ = ["DEFAULT_SEED", "EXACT_INVERSE", "ROLE", "SPEC", "STFT_HOP", "STFT_SIZE", "SUPPRESSION_FLOOR_DB",
           "correction_text", "forward", "impulse_response", "inverse", "tail_samples", "transfer"]

EXACT_INVERSE = False
"""Whether :func:`inverse` undoes :func:`forward` exactly."""

SPEC = EffectSpec(
    name="reverb",
    params=(
        Param("t60_s", "s", 0.1, 4.0, "log", Prior("uniform", 0.3, 2.5), 0.1,
              "time for the reverb tail to decay by 60 dB"),
        Param("wet", "ratio", 0.0, 0.7, "linear", Prior("uniform", 0.05, 0.5), 0.0,
              "share of reverberant signal in the mix (0 = dry)"),
        Param("pre_delay_ms", "ms", 0.0, 100.0, "linear", Prior("uniform", 0.0, 40.0), 0.0,
              "delay before the reverb tail starts"),
    ),
    presence_probability=0.5,
    description="room or plate reverb from a synthetic decaying-noise impulse response",
)
ROLE = EffectRole(position=40, linear="forward", reference="ambience", since=1,
                  forward_text="FFT convolution with seeded, exponentially decaying noise cut at T60",
                  inverse_text="Lebart/Habets late-reverb suppression in the STFT domain: approximate")
"""Its place in the chain, reference mode and the docs (:class:`~dmaster.effects.spec.EffectRole`)."""
DEFAULT_SEED = 20240501
"""Seed of the impulse responses' noise: every reverb of a given T60 is the same room."""
STFT_SIZE = 2048
"""Window of the inverse's STFT, samples."""
STFT_HOP = 512
"""Hop of the inverse's STFT, samples."""
SUPPRESSION_FLOOR_DB = -20.0
"""The most the inverse's spectral subtraction takes off a time–frequency bin (power, dB)."""


@lru_cache(maxsize=8)
def _noise(seed: int, channels: int, samples: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(channels, samples, generator=generator, dtype=torch.float64)


def impulse_response(sample_rate: float, channels: int, t60_s: Tensor, seed: int = DEFAULT_SEED) -> Tensor:
    """Unit-energy decaying-noise impulse responses.

    Item ``i`` is zero after its own ``T60_i · sample_rate`` samples, so it does not
    depend on the other items of the batch.

    Args:
        sample_rate: Hz.
        channels: responses per item (each channel its own noise).
        t60_s: ``(batch,)`` decay times to −60 dB, seconds.
        seed: seed of the noise.

    Returns:
        ``(batch, channels, ceil(max T60 · sample_rate))`` of ``t60_s``'s dtype and device.
    """
    max_samples = math.ceil(SPEC.param("t60_s").maximum * sample_rate)
    length = math.ceil(float(t60_s.detach().max()) * sample_rate)
    noise = _noise(seed, channels, max_samples)[:, :length].to(t60_s.device, t60_s.dtype)
    t = torch.arange(length, device=t60_s.device, dtype=t60_s.dtype) / sample_rate
    decay = (3 * math.log(10) / t60_s)[:, None]
    envelope = torch.exp(-decay * t) * (t < t60_s[:, None])  # (batch, length)
    response = noise[None] * envelope[:, None, :]
    return response / response.square().sum(-1, keepdim=True).sqrt()


def correction_text(estimated: dict[str, float]) -> str:
    """What undoing ``estimated`` (:data:`SPEC`'s parameters, physical units) does, in the report's words.

    >>> correction_text({"t60_s": 1.2, "wet": 0.25, "pre_delay_ms": 10.0})
    'late reverb of T60 1.20 s at 25 % wet suppressed'
    """
    return f"late reverb of T60 {estimated['t60_s']:.2f} s at {100 * estimated['wet']:.0f} % wet suppressed"


def transfer(n_fft: int, sample_rate: float, channels: int, t60_s: Tensor, wet: Tensor,
             pre_delay_ms: Tensor, seed: int = DEFAULT_SEED) -> Tensor:
    """``(1 − wet) + wet · H_ir · e^{-jω·pre_delay}`` on an rFFT grid: ``(batch, channels, n_fft // 2 + 1)``
    complex, from ``t60_s`` (s), ``wet`` (ratio) and ``pre_delay_ms`` (ms), each ``(batch,)``."""
    ir_spectrum = torch.fft.rfft(impulse_response(sample_rate, channels, t60_s, seed), n_fft)
    pre_delay = delay_response(pre_delay_ms * (sample_rate / 1000.0), n_fft)
    wet = wet[:, None, None]
    return (1.0 - wet) + wet * ir_spectrum * pre_delay


def tail_samples(sample_rate: float, inverse: bool, t60_s: Tensor, wet: Tensor, pre_delay_ms: Tensor) -> int:
    """Samples of response after the end: the longest T60 plus pre-delay, and a margin."""
    return math.ceil((float(t60_s.detach().max()) + float(pre_delay_ms.detach().max()) / 1000.0) * sample_rate) + 64


def forward(x: Tensor, sample_rate: float, t60_s: Tensor | float, wet: Tensor | float,
            pre_delay_ms: Tensor | float = 0.0, seed: int = DEFAULT_SEED) -> Tensor:
    """Reverberate audio: ``(1 − wet)·x + wet·(h ∗ x)``.

    Args:
        x: ``(batch, channels, samples)`` float audio.
        sample_rate: Hz.
        t60_s: time for the tail to decay by 60 dB, seconds.
        wet: share of reverberant signal in the mix (0 = dry).
        pre_delay_ms: delay before the tail starts, ms.
        seed: seed of the impulse response's noise.

    Every parameter is ``(batch,)`` or a scalar.

    Returns:
        The reverberated audio, same shape and dtype (the tail past the end is cut off).
    """
    params = SPEC.prepare(x, {"t60_s": t60_s, "wet": wet, "pre_delay_ms": pre_delay_ms})
    return filter_lti(x, sample_rate, partial(transfer, seed=seed), params, tail_samples(sample_rate, False, **params))


def _frame_decay_kernel(sample_rate: float, frames: int, t60_s: Tensor, pre_delay_ms: Tensor) -> Tensor:
    """Share of the unit-energy IR's energy arriving ``k`` frames late, ``k = 0 … frames − 1``:
    ``(batch, frames)``. Frame 0 (reverb overlapping its source frame) is left out."""
    decay = 6 * math.log(10) / t60_s[:, None]  # energy decay rate, 1/s
    k = torch.arange(frames, device=t60_s.device, dtype=t60_s.dtype)
    start = (k * STFT_HOP / sample_rate - pre_delay_ms[:, None] / 1000.0).clamp_min(0.0)
    end = ((k + 1) * STFT_HOP / sample_rate - pre_delay_ms[:, None] / 1000.0).clamp_min(0.0)
    share = torch.exp(-decay * start) - torch.exp(-decay * end)
    return share * (k >= 1)


def inverse(y: Tensor, sample_rate: float, t60_s: Tensor | float, wet: Tensor | float,
            pre_delay_ms: Tensor | float = 0.0) -> Tensor:
    """Suppress the late reverb that :func:`forward` added (approximate).

    Args:
        y: ``(batch, channels, samples)`` float audio.
        sample_rate: Hz.
        t60_s, wet, pre_delay_ms: the forward's parameters, ``(batch,)`` or scalars.

    Returns:
        The dereverberated audio, same shape and dtype; differentiable when a gradient is needed.
    """
    params = SPEC.prepare(y, {"t60_s": t60_s, "wet": wet, "pre_delay_ms": pre_delay_ms})
    t60_s, wet, pre_delay_ms = params["t60_s"], params["wet"], params["pre_delay_ms"]
    batch, channels, samples = y.shape
    if samples < STFT_SIZE:  # shorter than one frame: zero-pad (the STFT's reflection needs n_fft / 2 samples)
        return inverse(torch.nn.functional.pad(y, (0, STFT_SIZE - samples)), sample_rate, **params)[..., :samples]
    window = torch.hann_window(STFT_SIZE, device=y.device, dtype=y.dtype)
    spectrum = torch.stft(y.reshape(batch * channels, samples), STFT_SIZE, STFT_HOP, window=window,
                          return_complex=True).reshape(batch, channels, STFT_SIZE // 2 + 1, -1)
    # contiguous with frames last: the frame convolution below transforms along them
    power = spectrum.real.square().addcmul_(spectrum.imag, spectrum.imag).contiguous()
    frames = power.shape[-1]

    # Predicted late-reverb power: earlier frames' source power, weighted by the IR energy that
    # reaches this frame. The source power is estimated from the mixture's, whose expected power
    # is ((1 − wet)² + wet²) times the source's for a unit-energy IR.
    kernel_frames = min(frames, math.ceil((float(t60_s.detach().max()) + float(pre_delay_ms.detach().max()) / 1000.0)
                                          * sample_rate / STFT_HOP) + 2)
    kernel = _frame_decay_kernel(sample_rate, kernel_frames, t60_s, pre_delay_ms)
    kernel = kernel * (wet.square() / ((1 - wet).square() + wet.square()))[:, None]
    n_fft = convolution_size(frames + kernel_frames)
    late = torch.fft.irfft(torch.fft.rfft(power, n_fft) * torch.fft.rfft(kernel, n_fft)[:, None, None, :],
                           n_fft)[..., :frames]

    # Spectral subtraction, then the direct path back to its level; in place when no gradient is needed.
    floor = 10 ** (SUPPRESSION_FLOOR_DB / 10)
    direct_level = (1.0 - wet)[:, None, None, None]
    if needs_grad(y, t60_s, wet, pre_delay_ms):
        gain = (1.0 - late.clamp_min(0.0) / (power + 1e-12)).clamp_min(floor).sqrt() / direct_level
        direct = torch.view_as_complex(torch.view_as_real(spectrum) * gain[..., None])
    else:
        gain = late.clamp_min_(0.0).div_(power.add_(1e-12)).neg_().add_(1.0).clamp_min_(floor).sqrt_()
        direct = torch.view_as_complex(torch.view_as_real(spectrum).mul_(gain.div_(direct_level)[..., None]))
    restored = torch.istft(direct.reshape(batch * channels, STFT_SIZE // 2 + 1, frames), STFT_SIZE, STFT_HOP,
                           window=window, length=samples)
    return restored.reshape(batch, channels, samples)
