"""Lookahead peak limiter: ``master()``'s last stage, keeping every sample under a ceiling.

The gain each sample needs, ``min(0, ceiling − |x|)`` in dB (the loudest channel decides, so the
stereo image stays), is spread to the samples around it by ramps that are linear in dB:
``attack_db_per_ms`` before it (the lookahead: the gain is down when the peak arrives) and
``release_db_per_ms`` after it. Each ramp is a min-plus convolution with a linear function, which
is a cumulative minimum — no loop. The gain never exceeds what any sample needs, so
the output never exceeds the ceiling, while between peaks the level recovers at the release rate:
unlike turning the whole track down, only the peaks lose level. With ``true_peak`` the ceiling
holds for the signal between the samples too (ITU-R BS.1770-4 true peak, 4× oversampled), where a
converter or a lossy codec would otherwise clip.

>>> x = 0.5 * torch.ones(1, 2, 44100)                   # (batch, channels, samples): −6 dBFS …
>>> x[..., 22050] = 1.0                                 # … with one peak at 0 dBFS
>>> limited = limit_peaks(x, 44100, ceiling_db=-3.0)
>>> round(peak_db(limited[0]), 2)                       # the peak under the ceiling
-3.0
>>> round(float(limited[0, 0, 0]), 3), round(float(limited[0, 0, -1]), 3)   # far from it, untouched
(0.5, 0.5)
"""

from __future__ import annotations

import math

import soxr
import torch

from .effects.spec import check_audio

Tensor = torch.Tensor

ATTACK_DB_PER_MS = 1.0
"""Default attack ramp: a 3 dB reduction starts 3 ms before its peak."""
RELEASE_DB_PER_MS = 0.05
"""Default release ramp: a 3 dB reduction is undone over 60 ms."""
BLOCK = 32
"""Samples per block of the gain computation (0.7 ms at 44.1 kHz)."""
TRUE_PEAK_OVERSAMPLING = 4
"""ITU-R BS.1770-4 (Annex 2) measures the true peak on the signal oversampled four times."""
TRUE_PEAK_CHUNK = 1 << 21
"""Samples oversampled at a time (47 s at 44.1 kHz) …"""
TRUE_PEAK_MARGIN = 4096
"""… with this many samples either side, then cut off (more than the resampler's filter reaches)."""


def peak_envelope(x: Tensor, true_peak: bool = False) -> Tensor:
    """The peak level the limiter works from.

    Args:
        x: ``(batch, channels, samples)`` audio.
        true_peak: include the :data:`TRUE_PEAK_OVERSAMPLING` × oversampled signal (soxr) between this
            sample and the next.

    Returns:
        ``(batch, samples)`` float32 linear magnitude: at each sample the loudest channel's.
    """
    magnitude = x.detach().abs().amax(1).float()
    if not true_peak:
        return magnitude
    samples, factor = x.shape[-1], TRUE_PEAK_OVERSAMPLING
    between = torch.empty(x.shape[0], samples)
    for item, envelope in zip(x.detach().cpu().float(), between):
        for start in range(0, samples, TRUE_PEAK_CHUNK):  # in chunks: an hour oversampled would take 5 GB
            first, last = max(0, start - TRUE_PEAK_MARGIN), min(samples, start + TRUE_PEAK_CHUNK + TRUE_PEAK_MARGIN)
            oversampled = torch.from_numpy(soxr.resample(item[:, first:last].T.numpy(), 1, factor, quality="HQ"))
            oversampled = oversampled.abs().amax(1)[: (last - first) * factor]
            oversampled = torch.nn.functional.pad(oversampled, (0, (last - first) * factor - len(oversampled)))
            core = oversampled.view(last - first, factor).amax(1)[start - first : start - first + TRUE_PEAK_CHUNK]
            envelope[start : start + len(core)] = core
    return torch.maximum(magnitude, between.to(magnitude.device))


def peak_db(x: Tensor, true_peak: bool = False) -> float:
    """The peak of ``x`` ``(channels, samples)``: dBFS, or with ``true_peak`` dBTP (:func:`peak_envelope`)."""
    return 20 * math.log10(float(peak_envelope(x[None], true_peak).max()))


def limiter_gain_db(x: Tensor, sample_rate: float, ceiling_db: float, attack_db_per_ms: float = ATTACK_DB_PER_MS,
                    release_db_per_ms: float = RELEASE_DB_PER_MS, true_peak: bool = False) -> Tensor:
    """The limiter's gain.

    The ramps run on blocks of :data:`BLOCK` samples, each needing what the loudest of itself and its
    two neighbours needs, and are interpolated linearly between block centres: every sample then lies
    between two block values that are both at or below what it needs.

    Args:
        x: ``(batch, channels, samples)`` float audio.
        sample_rate: Hz.
        ceiling_db: dBFS (dBTP with ``true_peak``).
        attack_db_per_ms: slope of the ramp before a peak, dB/ms, positive.
        release_db_per_ms: slope of the ramp after a peak, dB/ms, positive.
        true_peak: limit the true peak (:func:`peak_envelope`).

    Returns:
        ``(batch, 1, samples)`` float32 dB, ≤ 0, shared by the channels.

    Raises:
        ValueError: bad audio or a ramp that is not positive.
    """
    check_audio(x, "x")
    if not (attack_db_per_ms > 0 and release_db_per_ms > 0):
        raise ValueError(f"attack_db_per_ms and release_db_per_ms must be > 0, got {attack_db_per_ms}, "
                         f"{release_db_per_ms}")
    batch, _, samples = x.shape
    blocks = -(-samples // BLOCK)
    peak = torch.nn.functional.pad(peak_envelope(x, true_peak), (0, blocks * BLOCK - samples))
    peak = peak.view(batch, 1, blocks, BLOCK).amax(-1)
    peak = torch.nn.functional.max_pool1d(peak, 3, 1, padding=1).double()
    needed = (ceiling_db - 20 * torch.log10(peak)).clamp(max=0.0)  # silence: +inf, clamped to 0
    time = torch.arange(blocks, dtype=torch.float64, device=x.device)
    attack, release = (rate * 1000.0 * BLOCK / sample_rate for rate in (attack_db_per_ms, release_db_per_ms))
    # per block: min over k ≥ n of needed[k] + attack (k − n), then min over k ≤ n of that + release (n − k)
    ahead = (needed + attack * time).flip(-1).cummin(-1).values.flip(-1) - attack * time
    gain = (ahead - release * time).cummin(-1).values + release * time
    return torch.nn.functional.interpolate(gain.float(), scale_factor=BLOCK, mode="linear")[..., :samples]


def limit_peaks(x: Tensor, sample_rate: float, ceiling_db: float, attack_db_per_ms: float = ATTACK_DB_PER_MS,
                release_db_per_ms: float = RELEASE_DB_PER_MS, true_peak: bool = False) -> Tensor:
    """Limit the peaks of audio to a ceiling.

    Args:
        x: ``(batch, channels, samples)`` float audio.
        sample_rate: Hz.
        ceiling_db: dBFS (dBTP with ``true_peak``).
        attack_db_per_ms, release_db_per_ms, true_peak: as for :func:`limiter_gain_db`.

    Returns:
        ``x`` times the limiter's gain, same shape and dtype, never over the ceiling.
    """
    gain_db = limiter_gain_db(x, sample_rate, ceiling_db, attack_db_per_ms, release_db_per_ms, true_peak)
    # the gain is exact to float32 rounding; a clamp at the ceiling (rounded down to x's dtype) takes the rest
    ceiling = torch.tensor(10 ** (ceiling_db / 20), dtype=x.dtype, device=x.device)
    if float(ceiling) > 10 ** (ceiling_db / 20):
        ceiling = torch.nextafter(ceiling, torch.zeros_like(ceiling))
    return (x * gain_db.mul_(math.log(10) / 20).exp_().to(x.dtype)).clamp_(-ceiling, ceiling)
