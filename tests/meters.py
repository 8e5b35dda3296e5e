"""Meters the tests check dmaster's level promises with, none of them dmaster's own code.

* :func:`oversampled_peak_db`: band-limited upsampling by scipy's polyphase resampler (a Kaiser-windowed sinc,
  β 12), at any factor: 16× reads within a few hundredths of a dB of the continuous signal's peak.
* :func:`annex2_peak_db`: ITU-R BS.1770-4 Annex 2's own 4× interpolation filter (the 48 taps the
  Recommendation tabulates), as a meter built to the letter of the standard reads.
* :func:`ebur128_peak_db` and :func:`ebur128_loudness`: libebur128 (the meter behind ffmpeg's ``ebur128``
  filter), through ``pyebur128``.
"""

from __future__ import annotations

import math

import numpy as np
import pyebur128
from scipy.signal import resample_poly, upfirdn

# ITU-R BS.1770-4, Annex 2, Table 1: the 48-tap interpolating filter, row by row (four phases a row)
ANNEX2_TAPS = np.array([
    0.0017089843750, -0.0291748046875, -0.0189208984375, -0.0083007812500,
    0.0109863281250, 0.0292968750000, 0.0330810546875, 0.0148925781250,
    -0.0196533203125, -0.0517578125000, -0.0582275390625, -0.0266113281250,
    0.0332031250000, 0.0891113281250, 0.1015625000000, 0.0476074218750,
    -0.0594482421875, -0.1665039062500, -0.2003173828125, -0.1022949218750,
    0.1373291015625, 0.4650878906250, 0.7797851562500, 0.9721679687500,
    0.9721679687500, 0.7797851562500, 0.4650878906250, 0.1373291015625,
    -0.1022949218750, -0.2003173828125, -0.1665039062500, -0.0594482421875,
    0.0476074218750, 0.1015625000000, 0.0891113281250, 0.0332031250000,
    -0.0266113281250, -0.0582275390625, -0.0517578125000, -0.0196533203125,
    0.0148925781250, 0.0330810546875, 0.0292968750000, 0.0109863281250,
    -0.0083007812500, -0.0189208984375, -0.0291748046875, 0.0017089843750,
])


def _db(peak: float) -> float:
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def _frames(audio) -> np.ndarray:
    """``(channels, samples)`` (numpy or torch) as float64 numpy."""
    data = audio.detach().cpu().numpy() if hasattr(audio, "detach") else np.asarray(audio)
    return np.atleast_2d(data).astype(np.float64)


def oversampled_peak_db(audio, factor: int) -> float:
    """The peak (dBTP) of ``audio`` ``(channels, samples)`` upsampled ``factor`` times, band-limited."""
    data = _frames(audio)
    return _db(float(np.abs(resample_poly(data, factor, 1, axis=-1, window=("kaiser", 12.0))).max()))


def annex2_peak_db(audio) -> float:
    """The peak (dBTP) by BS.1770-4 Annex 2: 4× upsampled with its tabulated filter (the sample peak included)."""
    data = _frames(audio)
    upsampled = upfirdn(ANNEX2_TAPS, data, up=4, axis=-1)
    return _db(max(float(np.abs(upsampled).max()), float(np.abs(data).max())))


def honest_peak_db(audio) -> float:
    """The highest of every true-peak reading here: 4×, 8× and 16× band-limited, Annex 2 and libebur128."""
    return max(*(oversampled_peak_db(audio, f) for f in (4, 8, 16)), annex2_peak_db(audio))


def _ebur128(audio, sample_rate: int, mode) -> tuple[pyebur128.R128State, int]:
    data = _frames(audio)
    state = pyebur128.R128State(data.shape[0], int(sample_rate), mode)
    state.add_frames(np.ascontiguousarray(data.T).ravel(), data.shape[1])
    return state, data.shape[0]


def ebur128_peak_db(audio, sample_rate: int) -> float:
    """libebur128's true peak (dBTP) of ``audio`` ``(channels, samples)``."""
    state, channels = _ebur128(audio, sample_rate, pyebur128.MeasurementMode.MODE_TRUE_PEAK)
    return _db(max(pyebur128.get_true_peak(state, c) for c in range(channels)))


def ebur128_loudness(audio, sample_rate: int) -> float:
    """libebur128's integrated loudness (LUFS) of ``audio`` ``(channels, samples)``."""
    state, _ = _ebur128(audio, sample_rate, pyebur128.MeasurementMode.MODE_I)
    return pyebur128.get_loudness_global(state)
