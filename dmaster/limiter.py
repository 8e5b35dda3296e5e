"""Lookahead peak limiter: ``master()``'s last stage, keeping every sample under a ceiling.

The gain each sample needs, ``min(0, ceiling − |x|)`` in dB (the loudest channel decides, so the
stereo image stays), is spread to the samples around it by ramps that are linear in dB:
``attack_db_per_ms`` before it (the lookahead: the gain is down when the peak arrives) and
``release_db_per_ms`` after it. Each ramp is a min-plus convolution with a linear function, which
is a cumulative minimum — no loop. The gain never exceeds what any sample needs, so
the output never exceeds the ceiling, while between peaks the level recovers at the release rate:
unlike turning the whole track down, only the peaks lose level. With ``true_peak`` the ceiling
holds for the signal between the samples too (ITU-R BS.1770-4 true peak), where a converter or a lossy
codec would otherwise clip: as read by any of the interpolators meters are built with, which differ on
content near Nyquist (:func:`peak_envelope`).

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
from functools import lru_cache

import numpy as np
import scipy.signal
import torch

from .effects.spec import check_audio

Tensor = torch.Tensor

ATTACK_DB_PER_MS = 1.0
"""Default attack ramp: a 3 dB reduction starts 3 ms before its peak."""
RELEASE_DB_PER_MS = 0.05
"""Default release ramp: a 3 dB reduction is undone over 60 ms."""
BLOCK = 32
"""Samples per block of the gain computation (0.7 ms at 44.1 kHz)."""
OVERSAMPLING = 16
"""Positions per sample at which the true peak is read (the sample and 15 between it and the next)."""
INTERPOLATOR_HALF_WIDTH = 64
"""Samples either side of an interval that the band-limited interpolation between them reads."""
INTERPOLATOR_BETA = 8.0
"""The Kaiser window's shape parameter of the interpolating sinc."""
TRUE_PEAK_HEADROOM_DB = 9.0
"""Only samples within this of the level that matters (the ceiling) are interpolated around: a peak between
two samples this far under it would take an overshoot no music has."""
TRUE_PEAK_MARGIN_DB = 0.02
"""With ``true_peak`` the limiter aims this far under the ceiling: room for the band-limited peak between the
positions read, for dither and for the rounding of integer formats."""
TRUE_PEAK_PASSES = 3
"""Times :func:`limit_peaks` checks its output's true peak and limits what is still over, at most."""
VERIFY_DB = 1.0
""":func:`limit_peaks` reads its output between the samples where its input's envelope times the gain comes within
this of the ceiling: the gain's movement shifts a peak between samples by far less."""
CANDIDATES = 1 << 16
"""Samples interpolated around at a time (bounded memory on long tracks)."""


ANNEX2_TAPS = (
    0.0017089843750, -0.0291748046875, -0.0189208984375, -0.0083007812500, 0.0109863281250, 0.0292968750000,
    0.0330810546875, 0.0148925781250, -0.0196533203125, -0.0517578125000, -0.0582275390625, -0.0266113281250,
    0.0332031250000, 0.0891113281250, 0.1015625000000, 0.0476074218750, -0.0594482421875, -0.1665039062500,
    -0.2003173828125, -0.1022949218750, 0.1373291015625, 0.4650878906250, 0.7797851562500, 0.9721679687500,
    0.9721679687500, 0.7797851562500, 0.4650878906250, 0.1373291015625, -0.1022949218750, -0.2003173828125,
    -0.1665039062500, -0.0594482421875, 0.0476074218750, 0.1015625000000, 0.0891113281250, 0.0332031250000,
    -0.0266113281250, -0.0582275390625, -0.0517578125000, -0.0196533203125, 0.0148925781250, 0.0330810546875,
    0.0292968750000, 0.0109863281250, -0.0083007812500, -0.0189208984375, -0.0291748046875, 0.0017089843750,
)
"""ITU-R BS.1770-4 Annex 2's 4× interpolating filter, as the Recommendation tabulates it."""


def _polyphase(taps: np.ndarray, factor: int, width: int) -> np.ndarray:
    """The phases of an interpolating FIR ``taps`` (at ``factor`` × the rate, centred) as columns
    ``(2 · width, factor)``: each output between sample ``n`` and ``n + 1`` from samples
    ``n − width + 1 … n + width``."""
    columns = np.zeros((2 * width, factor))
    centre = (len(taps) - 1) // 2  # an even-length filter's outputs fall half a step early: none is missed
    for phase in range(factor):  # the output at n + phase / factor reads x[n + j] through taps[centre + phase − f j]
        for j in range(-width + 1, width + 1):
            if 0 <= centre + phase - factor * j < len(taps):
                columns[j + width - 1, phase] = taps[centre + phase - factor * j]
    return columns


@lru_cache(maxsize=1)
def _interpolators() -> Tensor:
    """``(2 · INTERPOLATOR_HALF_WIDTH, columns)`` float32: every position between sample ``n`` and ``n + 1`` that
    :func:`peak_envelope` reads, from the :data:`INTERPOLATOR_HALF_WIDTH` samples either side, by the interpolators
    whose readings differ on content near Nyquist: a long Kaiser-windowed sinc (the band-limited signal itself),
    BS.1770-4 Annex 2's filter, a short Hann-windowed sinc of 49 taps at 4× and at 2× and a short Kaiser-windowed
    sinc (β 12) at 16×, as meters in common use build them (the true peak the limiter keeps under the ceiling is the
    highest)."""
    width = INTERPOLATOR_HALF_WIDTH
    # the long sinc, at OVERSAMPLING positions
    offsets = np.arange(-width + 1, width + 1)[:, None] - np.arange(1, OVERSAMPLING)[None, :] / OVERSAMPLING
    shape = np.sqrt(np.clip(1 - (offsets / width) ** 2, 0.0, None))
    window = np.i0(INTERPOLATOR_BETA * shape) / np.i0(INTERPOLATOR_BETA)
    long = np.sinc(offsets) * window
    long /= long.sum(0, keepdims=True)
    annex2 = _polyphase(np.asarray(ANNEX2_TAPS), 4, width)
    hann = [np.sinc((np.arange(49) - 24.0) / factor) * np.hanning(49) for factor in (4, 2)]  # at 4× and 2×
    short = scipy.signal.firwin(321, 1 / OVERSAMPLING, window=("kaiser", 12.0)) * OVERSAMPLING
    columns = [annex2, _polyphase(hann[0], 4, width), long, _polyphase(hann[1], 2, width),
               _polyphase(short, OVERSAMPLING, width)]
    return torch.from_numpy(np.concatenate(columns, 1)).float()


SCREEN_COLUMNS = 8
"""The first columns of :func:`_interpolators` (the two 4× ones, a dozen samples wide) read every interval near the
floor; the rest only where they come within :data:`SCREEN_MARGIN_DB` of it."""
SCREEN_WIDTH = 7
"""Samples either side that the screening columns reach (``n − 6 … n + 7``)."""
SCREEN_MARGIN_DB = 2.0
"""How far under the floor a screened interval may read and still be read by every interpolator: more than any
two of them differ by between samples."""


def peak_envelope(x: Tensor, true_peak: bool = False, floor_db: float = -math.inf) -> Tensor:
    """The peak level the limiter works from.

    Args:
        x: ``(batch, channels, samples)`` audio.
        true_peak: include the signal between this sample and the next: the highest reading of the interpolators
            of :func:`_interpolators` (:func:`read_between`).
        floor_db: with ``true_peak``, only where a sample or the next is within :data:`TRUE_PEAK_HEADROOM_DB` of
            this (dBFS) is the signal between them read; elsewhere the envelope is the samples'.

    Returns:
        ``(batch, samples)`` float32 linear magnitude: at each sample the loudest channel's.

    >>> t = torch.arange(4410) / 44100
    >>> tone = torch.sin(2 * math.pi * 11025 * t + math.pi / 4)[None, None]  # samples at ±0.707 of its peak
    >>> # the highest of the interpolators' readings: the short ones read a little over the tone's peak
    >>> round(float(peak_envelope(tone).max()), 2), round(float(peak_envelope(tone, true_peak=True).max()), 2)
    (0.71, 1.01)
    """
    magnitude = x.detach().abs().amax(1).float()
    if not true_peak:
        return magnitude
    # every interval whose ends come within the headroom of the floor, indexed by its first sample
    near = magnitude >= 10 ** ((floor_db - TRUE_PEAK_HEADROOM_DB) / 20)
    near[:, :-1] |= near[:, 1:].clone()
    return read_between(x, near, floor_db, magnitude)


def read_between(x: Tensor, where: Tensor, floor_db: float, envelope: Tensor) -> Tensor:
    """``envelope`` ``(batch, samples)`` raised, at the intervals ``where`` ``(batch, samples)`` is true, to the
    highest reading of the signal between sample ``n`` and ``n + 1`` of ``x`` ``(batch, channels, samples)``:
    first by the screening interpolators, then, where those read within :data:`SCREEN_MARGIN_DB` of ``floor_db``,
    by every one (:func:`peak_envelope`)."""
    weights = _interpolators().to(x.device)
    width = INTERPOLATOR_HALF_WIDTH
    windows = torch.nn.functional.pad(x.detach().float(), (width - 1, width)).unfold(-1, 2 * width, 1)
    screen_rows = slice(width - SCREEN_WIDTH, width + SCREEN_WIDTH)
    screen, rest = weights[screen_rows, :SCREEN_COLUMNS], weights[:, SCREEN_COLUMNS:]
    envelope = envelope.clone()
    items, positions = where.nonzero(as_tuple=True)
    for start in range(0, len(items), CANDIDATES):
        item, position = items[start : start + CANDIDATES], positions[start : start + CANDIDATES]
        between = (windows[item, :, position, screen_rows] @ screen).abs().amax((1, 2))  # (candidates,)
        close = between >= 10 ** ((floor_db - SCREEN_MARGIN_DB) / 20)
        if close.any():
            item, position, read = item[close], position[close], between[close]
            between = read.maximum((windows[item, :, position] @ rest).abs().amax((1, 2)))
        envelope[item, position] = torch.maximum(envelope[item, position], between)
    return envelope


def peak_db(x: Tensor, true_peak: bool = False) -> float:
    """The peak of ``x`` ``(channels, samples)``: dBFS, or with ``true_peak`` dBTP (:func:`peak_envelope`, read
    between every pair of samples within :data:`TRUE_PEAK_HEADROOM_DB` of the loudest sample)."""
    sample_peak = float(x.detach().abs().max())
    if sample_peak == 0.0:
        return -math.inf
    floor_db = 20 * math.log10(sample_peak)
    return 20 * math.log10(float(peak_envelope(x[None], true_peak, floor_db).max()))


def limiter_gain_db(x: Tensor, sample_rate: float, ceiling_db: float, attack_db_per_ms: float = ATTACK_DB_PER_MS,
                    release_db_per_ms: float = RELEASE_DB_PER_MS, true_peak: bool = False,
                    envelope: Tensor | None = None) -> Tensor:
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
        envelope: ``x``'s :func:`peak_envelope` ``(batch, samples)`` where the caller has it.

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
    envelope = peak_envelope(x, true_peak, ceiling_db) if envelope is None else envelope
    peak = torch.nn.functional.pad(envelope, (0, blocks * BLOCK - samples))
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
                release_db_per_ms: float = RELEASE_DB_PER_MS, true_peak: bool = False,
                envelope: Tensor | None = None) -> Tensor:
    """Limit the peaks of audio to a ceiling.

    With ``true_peak`` the limiter aims :data:`TRUE_PEAK_MARGIN_DB` under the ceiling, then reads its output
    between the samples where it should come near it and, where the gain's own movement has shifted a peak over,
    raises the envelope there and limits again, at most :data:`TRUE_PEAK_PASSES` times.

    Args:
        x: ``(batch, channels, samples)`` float audio.
        sample_rate: Hz.
        ceiling_db: dBFS (dBTP with ``true_peak``).
        attack_db_per_ms, release_db_per_ms, true_peak, envelope: as for :func:`limiter_gain_db`.

    Returns:
        ``x`` times the limiter's gain, same shape and dtype, never over the ceiling.
    """
    check_audio(x, "x")
    aim_db = ceiling_db - TRUE_PEAK_MARGIN_DB if true_peak else ceiling_db
    if envelope is None:
        envelope = peak_envelope(x, true_peak, aim_db)
    aim = 10 ** (aim_db / 20)
    for _ in range(TRUE_PEAK_PASSES if true_peak else 1):
        gain = limiter_gain_db(x, sample_rate, aim_db, attack_db_per_ms, release_db_per_ms, true_peak, envelope)
        gain = gain.mul_(math.log(10) / 20).exp_()
        out = x * gain.to(x.dtype)
        if not true_peak:
            break
        expected = envelope * gain[:, 0]
        check = expected >= aim * 10 ** (-VERIFY_DB / 20)
        read = read_between(out, check, aim_db, out.detach().abs().amax(1).float())
        if not bool((read[check] > aim).any()):
            break
        envelope = torch.where(check, envelope * (read / expected.clamp(min=1e-30)).clamp(min=1.0), envelope)
    # the gain is exact to float32 rounding; a clamp at the ceiling (rounded down to x's dtype) takes the rest
    ceiling = torch.tensor(aim, dtype=x.dtype, device=x.device)
    if float(ceiling) > aim:
        ceiling = torch.nextafter(ceiling, torch.zeros_like(ceiling))
    return out.clamp(-ceiling, ceiling)
