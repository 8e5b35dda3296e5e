"""Audio features for the estimators, in plain ``torch`` (``torch.stft`` / ``torch.fft``).

All functions take audio shaped ``(batch, channels, samples)`` and are pure.

- :func:`log_mel_spectrogram`: time–frequency picture (compressor, reverb, EQ in context).
- :func:`long_term_spectrum`: the average spectrum on a fine log-frequency axis, on which
  an EQ bell of a given Q has the same shape at every centre frequency.
- :func:`power_cepstrum` and :func:`echo_lag_evidence`: a single echo ``x(t) + a·x(t − d)``
  adds ``log|1 + a·e^{−jωd}|²`` to the log spectrum, whose inverse transform is a sharp peak
  of height ``≈ a`` at quefrency ``d`` samples. :func:`refine_echo_delay` reads the delay off
  that peak to a fraction of a sample, near a coarse estimate; :func:`echo_level` reads ``a`` off its height.

An echo of 20 ms (882 samples at 44.1 kHz) stands out in the cepstrum of noise:

>>> from dmaster.effects import echo
>>> noise = torch.randn(1, 1, 44100, generator=torch.Generator().manual_seed(0))   # (batch, channels, samples)
>>> cepstrum = power_cepstrum(echo.forward(noise, 44100, delay_ms=20.0, level_db=-6.0))
>>> round(float(refine_echo_delay(cepstrum, torch.tensor([870.0]), (100, 2000))[0]), 1)
882.0
>>> round(float(echo_level(cepstrum, torch.tensor([882.0]), 44100)[0]), 1)   # -6 dB = 0.50
0.5
"""

from __future__ import annotations

import math

import torch

from .effects.lti import fft_size

Tensor = torch.Tensor

__all__ = ["CREST_GROUPS", "IMAGE_BAND_EDGES_HZ", "IMAGE_FLOOR_DB", "LEVEL_QUANTILES", "LEVEL_SCALES_S",
           "POWER_FLOOR", "cepstral_prominence", "echo_lag_evidence", "echo_level", "hz_to_mel", "level_db",
           "level_distribution", "level_statistics", "log_frequency_filterbank", "log_lag_bin_edges",
           "log_mel_spectrogram", "long_term_spectrum", "mel_filterbank", "mel_to_hz", "mid_side", "normalise_level",
           "power_cepstrum", "power_spectrogram", "refine_echo_delay", "stereo_image", "triangular_filterbank",
           "tukey_window"]

POWER_FLOOR = 1e-10
"""Floor of power spectra before the logarithm (−100 dB re full scale)."""


def mid_side(x: Tensor) -> Tensor:
    """Mid ``(L + R) / 2`` and side ``(L − R) / 2`` of ``x`` ``(batch, channels, samples)``:
    ``(batch, 2, samples)``. Mono gives a silent side; more channels than two count as left and the
    mean of the others."""
    if x.shape[1] == 1:
        return torch.cat([x, torch.zeros_like(x)], dim=1)
    left, right = x[:, 0], x[:, 1:].mean(1)
    return torch.stack([(left + right) / 2, (left - right) / 2], dim=1)


def level_db(x: Tensor) -> Tensor:
    """RMS level in dBFS ``(batch,)`` of ``x`` ``(batch, channels, samples)``, over channels and samples."""
    return 10 * torch.log10(x.square().flatten(1).mean(1) + POWER_FLOOR)


def normalise_level(x: Tensor, target_db: float = -20.0) -> tuple[Tensor, Tensor]:
    """Scale each item of ``x`` ``(batch, channels, samples)`` to ``target_db`` dBFS RMS.

    Returns:
        ``(scaled audio (batch, channels, samples), original level dBFS (batch,))``.
    """
    level = level_db(x)
    scale = torch.pow(10.0, (target_db - level) / 20)
    return x * scale[:, None, None], level


def level_statistics(x: Tensor) -> Tensor:
    """Level statistics of ``x`` ``(batch, channels, samples)``: ``(batch, 4)`` RMS dBFS, peak dBFS, crest
    factor dB and side-to-mid ratio dB."""
    rms = level_db(x)
    peak = 20 * torch.log10(x.abs().flatten(1).amax(1) + 1e-5)
    ms = mid_side(x)
    side_to_mid = level_db(ms[:, 1:]) - level_db(ms[:, :1])
    return torch.stack([rms, peak, peak - rms, side_to_mid], dim=1)


LEVEL_QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)
"""Quantiles of the short-term level that :func:`level_distribution` reports."""
LEVEL_SCALES_S = (0.001, 0.01, 0.1)
"""Windows of the short-term levels, seconds (each hopped by half of itself)."""
CREST_GROUPS = 5
"""Groups of 100 ms frames, by level, whose crest factors :func:`level_distribution` averages."""


def level_distribution(x: Tensor, sample_rate: int) -> Tensor:
    """How the level of ``x`` ``(batch, channels, samples)`` is spread in time, in absolute dBFS: what a
    compressor's threshold, ratio and timing change.

    Returns ``(batch, 3 · 10 + 5)``: the :data:`LEVEL_QUANTILES` of the short-term power level (mean over
    channels, dBFS) in windows of each of :data:`LEVEL_SCALES_S`; then the crest factor (dB, peak over mean
    power of 1 ms levels) of 100 ms frames, averaged within each fifth of the frames sorted by level, quietest
    first. Clips shorter than ``CREST_GROUPS`` frames of 100 ms (0.5 s) are refused.
    """
    power = x.square().mean(1, keepdim=True)  # (batch, 1, samples)
    sizes = [max(1, round(s * sample_rate)) for s in LEVEL_SCALES_S]
    if x.shape[-1] < CREST_GROUPS * sizes[-1]:
        raise ValueError(f"level_distribution needs at least {CREST_GROUPS * sizes[-1]} samples, got {x.shape[-1]}")
    quantiles = torch.tensor(LEVEL_QUANTILES, dtype=x.dtype, device=x.device)
    out = []
    for size in sizes:
        levels = 10 * torch.log10(torch.nn.functional.avg_pool1d(power, size, max(1, size // 2))[:, 0] + POWER_FLOOR)
        out.append(torch.quantile(levels, quantiles, dim=1).T)
    per_frame = sizes[-1] // sizes[0]
    short = torch.nn.functional.avg_pool1d(power, sizes[0], sizes[0])[:, 0]  # (batch, 1 ms levels)
    frames = short.shape[-1] // per_frame // CREST_GROUPS * CREST_GROUPS
    short = short[:, :frames * per_frame].reshape(len(x), frames, per_frame)
    mean = 10 * torch.log10(short.mean(-1) + POWER_FLOOR)
    crest = 10 * torch.log10(short.amax(-1) + POWER_FLOOR) - mean
    order = mean.argsort(dim=1)
    out.append(crest.gather(1, order).reshape(len(x), CREST_GROUPS, -1).mean(-1))
    return torch.cat(out, dim=1)


def power_spectrogram(x: Tensor, n_fft: int, hop: int) -> Tensor:
    """Hann-window power STFT of ``x`` ``(batch, channels, samples)``, ``n_fft`` and ``hop`` in samples:
    ``(batch, channels, n_fft // 2 + 1, frames)``."""
    batch, channels, samples = x.shape
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    spectrum = torch.stft(x.reshape(batch * channels, samples), n_fft, hop, window=window, center=True,
                          return_complex=True)
    power = spectrum.real.square() + spectrum.imag.square()
    return power.reshape(batch, channels, *power.shape[-2:])


def hz_to_mel(hz: Tensor) -> Tensor:
    """Hz to the HTK mel scale, element-wise."""
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: Tensor) -> Tensor:
    """The HTK mel scale to Hz (the inverse of :func:`hz_to_mel`), element-wise."""
    return 700.0 * (torch.pow(10.0, mel / 2595.0) - 1.0)


def triangular_filterbank(bin_hz: Tensor, edges_hz: Tensor) -> Tensor:
    """Triangular filters ``(len(edges_hz) − 2, bins)`` over bins at ``bin_hz`` ``(bins,)``, peaking at
    ``edges_hz[1:-1]``, each spanning its two neighbours, widened to at least one bin either side so
    that no row is empty; rows sum to 1."""
    spacing = float(bin_hz[1] - bin_hz[0])
    lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    lower = torch.minimum(lower, centre - spacing)[:, None]
    upper = torch.maximum(upper, centre + spacing)[:, None]
    centre = centre[:, None]
    rising = (bin_hz - lower) / (centre - lower)
    falling = (upper - bin_hz) / (upper - centre)
    weights = torch.minimum(rising, falling).clamp_min(0.0)
    return weights / weights.sum(1, keepdim=True)


def mel_filterbank(n_fft: int, sample_rate: float, n_mels: int, f_min: float = 20.0,
                   f_max: float | None = None) -> Tensor:
    """Mel filterbank ``(n_mels, n_fft // 2 + 1)``, float32, from ``f_min`` to ``f_max`` Hz (default Nyquist)."""
    f_max = f_max or sample_rate / 2
    bin_hz = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    mels = torch.linspace(float(hz_to_mel(torch.tensor(f_min))), float(hz_to_mel(torch.tensor(f_max))),
                          n_mels + 2, dtype=torch.float64)
    return triangular_filterbank(bin_hz, mel_to_hz(mels)).float()


def log_frequency_filterbank(n_fft: int, sample_rate: float, n_bands: int, f_min: float,
                             f_max: float) -> Tensor:
    """Bands equally spaced in log frequency from ``f_min`` to ``f_max`` Hz (at most 95 % of Nyquist):
    ``(n_bands, n_fft // 2 + 1)``, float32."""
    f_max = min(f_max, 0.95 * sample_rate / 2)
    bin_hz = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = torch.logspace(math.log10(f_min), math.log10(f_max), n_bands + 2, dtype=torch.float64)
    return triangular_filterbank(bin_hz, edges).float()


def log_mel_spectrogram(x: Tensor, filterbank: Tensor, n_fft: int, hop: int) -> Tensor:
    """Log-mel power of ``x`` ``(batch, channels, samples)`` through ``filterbank`` ``(n_mels, bins)``,
    in units of 10 dB: ``(batch, channels, n_mels, frames)``."""
    power = power_spectrogram(x, n_fft, hop)
    mel = torch.einsum("mf,bcft->bcmt", filterbank, power)
    return torch.log10(mel + POWER_FLOOR)


def long_term_spectrum(x: Tensor, filterbank: Tensor, n_fft: int, hop: int) -> Tensor:
    """Long-term spectrum of ``x`` ``(batch, channels, samples)`` through ``filterbank`` ``(bands, bins)``:
    ``(batch, 2 · channels, bands)``, per channel the log of the time-averaged band power and the
    standard deviation over time of the log band power (how much each band moves), in 10 dB. (Not
    :func:`dmaster.residual.long_term_spectrum`, which is one dB spectrum of a channel mix.)"""
    power = power_spectrogram(x, n_fft, hop)
    bands = torch.einsum("kf,bcft->bckt", filterbank, power)
    average = torch.log10(bands.mean(-1) + POWER_FLOOR)
    movement = torch.log10(bands + POWER_FLOOR).std(-1)
    return torch.cat([average, movement], dim=1)


def tukey_window(samples: int, taper: float, like: Tensor) -> Tensor:
    """Flat window ``(samples,)`` with raised-cosine tapers over a ``taper`` fraction of its length at each
    end, of ``like``'s dtype and device."""
    ramp = max(1, int(taper * samples))
    rise = 0.5 - 0.5 * torch.cos(math.pi * torch.arange(ramp, device=like.device, dtype=like.dtype) / ramp)
    window = torch.ones(samples, device=like.device, dtype=like.dtype)
    window[:ramp] = rise
    window[samples - ramp:] = rise.flip(0)
    return window


def power_cepstrum(x: Tensor, taper: float = 0.05) -> Tensor:
    """Real cepstrum of the whole clip ``x`` ``(batch, channels, samples)``: ``(batch, n_fft)``, averaged
    over channels, quefrency in samples (``n_fft`` a fast length ≥ ``samples``).

    The log power spectrum is floored 50 dB below its mean so that empty bands (MP3 low-pass,
    deep EQ cuts) are flat instead of noisy.
    """
    samples = x.shape[-1]
    n_fft = fft_size(samples)
    spectrum = torch.fft.rfft(x * tukey_window(samples, taper, x), n_fft)
    power = spectrum.real.square() + spectrum.imag.square()
    floor = 1e-5 * power.mean(-1, keepdim=True) + POWER_FLOOR
    return torch.fft.irfft(torch.log(power + floor), n_fft).mean(1)


def cepstral_prominence(cepstrum: Tensor, lags: tuple[int, int], smoothing: int = 16) -> Tensor:
    """``cepstrum`` ``(batch, n_fft)`` minus its local mean over ``±smoothing`` samples, in units of its
    standard deviation, at quefrencies ``lags[0] … lags[1] − 1``: ``(batch, lags[1] − lags[0])``. Sharp
    peaks (echoes) stand out, broad structure (pitch, tempo) is flattened."""
    low, high = lags
    segment = cepstrum[:, low - smoothing: high + smoothing]
    local_mean = torch.nn.functional.avg_pool1d(segment[:, None], 2 * smoothing + 1, stride=1)[:, 0]
    prominence = segment[:, smoothing: smoothing + local_mean.shape[-1]] - local_mean
    return prominence / (prominence.std(-1, keepdim=True) + 1e-8)


ECHO_PEAK_HALF_WIDTH = 2
"""Samples either side of an echo's lag that :func:`echo_level` sums (a fractional delay spreads its peak)."""
ECHO_BASELINE = (8, 48)
"""Distances (samples) from an echo's lag over which :func:`echo_level` takes the cepstrum's local mean."""


def echo_level(cepstrum: Tensor, lag: Tensor, samples: int, taper: float = 0.05) -> Tensor:
    """The amplitude ``a`` of an echo at ``lag``: the height of the cepstral peak there.

    The power cepstrum of ``x(t) + a·x(t − d)`` is the music's plus ``a`` at quefrency ``d`` (and terms in
    ``a²`` at ``2d`` and beyond). The peak, summed over ±:data:`ECHO_PEAK_HALF_WIDTH` samples to hold a
    fractional delay's spread, is measured above the cepstrum's mean between :data:`ECHO_BASELINE` samples
    away on either side (the music's own slowly varying cepstrum), and divided by the window's overlap with
    itself ``d`` later (within a clip, only that share of the sound has its echo in the clip too).

    Args:
        cepstrum: ``(batch, n_fft)`` from :func:`power_cepstrum`.
        lag: ``(batch,)`` the echo's delay in samples (fractional), inside the cepstrum with the baseline's room.
        samples: the length of the clips the cepstrum is of.
        taper: the taper of :func:`power_cepstrum`'s window.

    Returns:
        ``(batch,)`` the estimated linear amplitude; about 0 (either sign) where there is no echo.
    """
    near, far = ECHO_BASELINE
    centre = lag.round().long()[:, None]
    offsets = torch.arange(-far, far + 1, device=cepstrum.device)
    values = cepstrum.gather(1, (centre + offsets).clamp(0, cepstrum.shape[1] - 1))
    distance = offsets.abs()
    baseline = values[:, distance >= near].mean(1, keepdim=True)
    peak = (values[:, distance <= ECHO_PEAK_HALF_WIDTH] - baseline).sum(1)
    window = tukey_window(samples, taper, cepstrum)
    shifts = centre[:, 0].clamp(0, samples - 1).tolist()
    overlap = torch.stack([(window[k:] * window[: samples - k]).sum() for k in shifts]) / window.square().sum()
    return peak / overlap.clamp_min(1e-3)


def log_lag_bin_edges(min_lag: float, max_lag: float, n_bins: int) -> Tensor:
    """``n_bins + 1`` edges in samples, equally spaced in log lag from ``min_lag`` to ``max_lag``."""
    return torch.logspace(math.log10(min_lag), math.log10(max_lag), n_bins + 1, dtype=torch.float64)


def echo_lag_evidence(prominence: Tensor, lag_range: tuple[int, int], bin_edges: Tensor) -> Tensor:
    """Strongest cepstral peak in each log-lag bin: ``(batch, n_bins)`` from the prominence of
    :func:`cepstral_prominence` over ``lag_range``. Bin ``i`` holds lags ``[edges[i], edges[i+1])``."""
    lags = torch.arange(*lag_range, device=prominence.device, dtype=torch.float64)
    index = (torch.bucketize(lags, bin_edges.to(prominence.device), right=True) - 1).clamp(0, len(bin_edges) - 2)
    out = prominence.new_full((prominence.shape[0], len(bin_edges) - 1), -10.0)
    return out.scatter_reduce(1, index.expand_as(prominence), prominence, reduce="amax", include_self=True)


def refine_echo_delay(cepstrum: Tensor, coarse_lag: Tensor, lag_range: tuple[int, int],
                      relative_search: float = 0.06, smoothing: int = 16) -> Tensor:
    """Delay in samples ``(batch,)`` of the strongest cepstral peak within ``coarse_lag · (1 ± relative_search)``,
    to a fraction of a sample by parabolic interpolation. ``cepstrum`` from :func:`power_cepstrum`,
    ``coarse_lag`` ``(batch,)`` in samples; the result stays inside ``lag_range``."""
    low, high = lag_range
    prominence = cepstral_prominence(cepstrum, lag_range, smoothing)
    lags = torch.arange(low, high, device=cepstrum.device, dtype=cepstrum.dtype)
    coarse = coarse_lag.to(cepstrum.dtype)[:, None]
    inside = (lags >= coarse / (1 + relative_search)) & (lags <= coarse * (1 + relative_search))
    # a window that misses the range entirely (coarse lag outside it) falls back to its nearest lag
    nearest = (lags - coarse).abs() == (lags - coarse).abs().amin(1, keepdim=True)
    inside = inside | (~inside.any(1, keepdim=True) & nearest)
    peak = prominence.masked_fill(~inside, -torch.inf).argmax(1) + low
    rows = torch.arange(len(peak), device=cepstrum.device)
    left, centre, right = (cepstrum[rows, (peak + k).clamp(0, cepstrum.shape[1] - 1)] for k in (-1, 0, 1))
    curvature = left - 2 * centre + right
    offset = torch.where(curvature < 0, 0.5 * (left - right) / curvature.clamp(max=-1e-12),
                         torch.zeros_like(curvature)).clamp(-0.5, 0.5)
    return (peak.to(cepstrum.dtype) + offset).clamp(low, high - 1)


IMAGE_BAND_EDGES_HZ = (20.0, 63.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 24000.0)
"""Octave bands in which :func:`stereo_image` hears the stereo image."""
IMAGE_FLOOR_DB = -60.0
"""Side-to-mid ratios are floored here (dB): a mono band, or one above Nyquist, reads as this."""


def stereo_image(x: Tensor, sample_rate: int, n_fft: int = 2048) -> Tensor:
    """How wide, how even over time and how balanced the image of ``x`` ``(batch, channels, samples)`` is, per
    octave band of :data:`IMAGE_BAND_EDGES_HZ`: what a stereo width, a wide low end or a channel offset changes.

    Frames of ``n_fft`` samples (half overlapping) of left and right (a mono item: both the same; more than two
    channels: the front pair) give per band the side-to-mid power ratio over the whole clip (dB), its spread over
    time (the standard deviation of the frames' ratios, dB, weighted by the frames' power) and the inter-channel
    correlation (−1 … 1); the clip's left-to-right level balance (dB) ends the vector.

    Returns:
        ``(batch, 3 · bands + 1)``: side-to-mid ratios (dB, floored at :data:`IMAGE_FLOOR_DB`), their spreads,
        correlations, then the balance.

    >>> noise = torch.randn(1, 1, 44100, generator=torch.Generator().manual_seed(0)).expand(1, 2, -1)
    >>> image = stereo_image(noise, 44100)           # dual mono: no side, full correlation
    >>> float(image[0, :10].max()), round(float(image[0, 20:30].min()), 3), float(image[0, -1])
    (-60.0, 1.0, 0.0)
    """
    pair = x[:, :2] if x.shape[1] >= 2 else x.expand(-1, 2, -1)
    frames = torch.stft(pair.flatten(0, 1).float(), n_fft, n_fft // 2, window=torch.hann_window(n_fft, device=x.device),
                        center=True, return_complex=True).unflatten(0, pair.shape[:2])  # (batch, 2, bins, frames)
    left, right = frames[:, 0], frames[:, 1]
    hz = torch.linspace(0, sample_rate / 2, frames.shape[-2], device=x.device)
    edges = torch.tensor(IMAGE_BAND_EDGES_HZ, device=x.device)
    bands = ((hz[:, None] >= edges[:-1]) & (hz[:, None] < edges[1:])).float()  # (bins, bands)
    mid, side = ((left + right) / 2).abs().square(), ((left - right) / 2).abs().square()
    cross = (left * right.conj()).real
    power_l, power_r = left.abs().square(), right.abs().square()
    per_band = [torch.einsum("bkt,kn->bnt", p, bands) for p in (mid, side, cross, power_l, power_r)]
    mid_t, side_t, cross_t, left_t, right_t = per_band  # (batch, bands, frames)
    floor = 10 ** (IMAGE_FLOOR_DB / 10)
    ratio_db = 10 * torch.log10((side_t.sum(-1) + floor * mid_t.sum(-1) + POWER_FLOOR) / (mid_t.sum(-1) + POWER_FLOOR))
    frame_db = 10 * torch.log10((side_t + floor * mid_t + POWER_FLOOR) / (mid_t + POWER_FLOOR))
    weight = (mid_t + side_t) / ((mid_t + side_t).sum(-1, keepdim=True) + POWER_FLOOR)
    spread = (weight * (frame_db - (weight * frame_db).sum(-1, keepdim=True)).square()).sum(-1).sqrt()
    correlation = cross_t.sum(-1) / (left_t.sum(-1) * right_t.sum(-1) + POWER_FLOOR).sqrt()
    correlation = torch.where(left_t.sum(-1) + right_t.sum(-1) > POWER_FLOOR, correlation, torch.ones_like(correlation))
    balance = 10 * torch.log10((left_t.sum((1, 2)) + POWER_FLOOR) / (right_t.sum((1, 2)) + POWER_FLOOR))
    return torch.cat([ratio_db.clamp(min=IMAGE_FLOOR_DB), spread, correlation, balance[:, None]], 1)
