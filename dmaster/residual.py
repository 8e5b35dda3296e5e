"""Residual correction: what a restoration leaves wrong in the tonal balance and the level.

The parameter model hears short analysis windows and gets the slow, track-wide part of a degradation
least right: the EQ (seen in the long-term spectrum) and the level. A ridge regression, fitted
for one model on the train split by ``recipes/fit_residual.py``, predicts from the analysis
windows' long-term spectrum and level (and, for the parameter model, its estimate) what the
model's restoration will leave wrong: a correction per log-frequency band (dB, zero phase) and a
level correction (dB). ``master()`` multiplies it into the LTI stage of the chain's inverse, so it
costs no extra pass over the track; the U-Net's output is filtered with it.

Features and targets use the same long-term spectrum, :func:`band_levels_db`: Hann-windowed
8192-point STFT of the channel mix, power averaged over frames, then over :data:`BAND_EDGES_HZ`.
(It is not :func:`dmaster.features.long_term_spectrum`, the estimator's per-channel feature.)

>>> len(band_centres_hz()), round(float(band_centres_hz()[0]), 1)
(40, 43.2)
>>> bands = torch.zeros(40)
>>> bands[20:] = 3.0                                     # +3 dB above the middle band
>>> extra = extra_response(bands, -1.0, 44100)           # … and the level down by 1 dB
>>> gain_db = 20 * torch.log10(extra.response(8192)[0, 0])
>>> round(float(gain_db[10]), 2), round(float(gain_db[-1]), 2)   # at 54 Hz and at Nyquist
(-1.0, 2.0)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .audio import write_text_atomic
from .effects import ExtraResponse
from .features import POWER_FLOOR, level_db

Tensor = torch.Tensor

BAND_EDGES_HZ: tuple[float, ...] = tuple(float(f) for f in np.geomspace(40.0, 18000.0, 41))
"""Edges of the 40 correction bands (Hz), equally spaced in log frequency."""
STFT_SIZE = 8192
"""Samples per frame of :func:`band_levels_db`."""
MAX_BAND_DB = 12.0
"""The largest band correction applied, dB either way."""
MAX_LEVEL_DB = 24.0
"""The largest level correction applied, dB either way."""
TAIL_SAMPLES = STFT_SIZE
"""Room either side of the signal for the zero-phase response (its narrowest band is 6 Hz wide)."""


def band_centres_hz() -> np.ndarray:
    """The 40 bands' centres ``(40,)``, Hz: geometric means of their edges."""
    edges = np.asarray(BAND_EDGES_HZ)
    return np.sqrt(edges[:-1] * edges[1:])


@lru_cache(maxsize=4)
def band_matrix(sample_rate: int) -> Tensor:
    """``(STFT_SIZE // 2 + 1, 40)`` float32: column ``k`` averages the bins of a :data:`STFT_SIZE`-point
    STFT at ``sample_rate`` Hz that fall in band ``k`` (empty above Nyquist)."""
    band = np.digitize(np.fft.rfftfreq(STFT_SIZE, 1.0 / sample_rate), BAND_EDGES_HZ) - 1
    matrix = np.zeros((len(band), len(BAND_EDGES_HZ) - 1), dtype=np.float32)
    inside = (band >= 0) & (band < matrix.shape[1])
    matrix[np.flatnonzero(inside), band[inside]] = 1.0
    return torch.from_numpy(matrix / np.maximum(matrix.sum(0), 1.0))


def band_levels_db(audio: Tensor, sample_rate: int) -> Tensor:
    """Band powers of some audio.

    Args:
        audio: ``(windows, channels, samples)``; the channels are mixed, windows and frames averaged.
        sample_rate: Hz.

    Returns:
        ``(40,)`` float64 dB. Bands above the Nyquist frequency repeat the last band below.
    """
    mono = audio.mean(1).float()
    if mono.shape[-1] < STFT_SIZE:
        mono = torch.nn.functional.pad(mono, (0, STFT_SIZE - mono.shape[-1]))
    spectrum = torch.stft(mono, STFT_SIZE, STFT_SIZE // 2, window=torch.hann_window(STFT_SIZE), center=False,
                          return_complex=True)
    power = (spectrum.real.square() + spectrum.imag.square()).mean((0, -1))
    matrix = band_matrix(sample_rate)
    db = 10 * torch.log10((power @ matrix).double() + POWER_FLOOR)
    filled = int((matrix.sum(0) > 0).sum())  # bands fill from the bottom
    return torch.cat([db[:filled], db[filled - 1].expand(len(db) - filled)])


def regression_features(windows: Tensor, sample_rate: int, presence: Tensor | None = None,
             normalised: Tensor | None = None) -> Tensor:
    """The regression's input.

    Args:
        windows: ``(windows, channels, samples)``: the analysis windows the model heard.
        sample_rate: Hz.
        presence: ``(1, effects)``, from a parameter model (:meth:`Chain.to_vectors`); ``None`` for the U-Net.
        normalised: ``(1, params)`` likewise.

    Returns:
        ``(40 + 1 [+ effects + params],)``: the windows' long-term spectrum relative to its mean (dB),
        their RMS level (dBFS) and the estimate when given.
    """
    spectrum = band_levels_db(windows, sample_rate)
    level = level_db(windows.flatten(0, 1)[None].double())
    estimate = [] if presence is None or normalised is None else [presence[0].double(), normalised[0].double()]
    return torch.cat([spectrum - spectrum.mean(), level, *estimate])


@dataclass(frozen=True)
class ResidualCorrection:
    """A fitted ridge regression: ``features → (band corrections dB (40,), level correction dB)``.

    ``band_strength`` and ``level_offset_db`` are chosen by ``recipes/fit_residual.py`` for the MR-STFT
    distance, which punishes a too-loud output more than a too-quiet one.

    Args:
        feature_mean: ``(features,)`` means that standardise the input.
        feature_scale: ``(features,)`` positive scales that standardise the input.
        weights: ``(features + 1, 41)``.
        band_strength: the share of the predicted band correction applied.
        level_offset_db: added to the predicted level correction, dB.
        description: how it was fitted, in words.

    Raises:
        ValueError: shapes that do not fit together, or a scale that is not positive.
    """

    feature_mean: list[float]
    feature_scale: list[float]
    weights: list[list[float]]
    """``(features + 1, 41)``; the last row is the intercept, the last column the level."""
    band_strength: float = 1.0
    level_offset_db: float = 0.0
    description: str = ""

    def __post_init__(self) -> None:
        n_features, n_outputs = len(self.feature_mean), len(BAND_EDGES_HZ)
        if len(self.feature_scale) != n_features or not all(s > 0 for s in self.feature_scale):
            raise ValueError(f"residual correction: feature_scale must hold {n_features} positive numbers")
        if len(self.weights) != n_features + 1 or any(len(row) != n_outputs for row in self.weights):
            raise ValueError(f"residual correction: weights must be shaped ({n_features + 1}, {n_outputs})")

    def predict(self, features: Tensor) -> tuple[Tensor, float]:
        """``(band corrections dB (40,) float64, level correction dB)`` for one feature vector
        ``(features,)`` (:func:`regression_features`), limited as :meth:`limited` says."""
        mean, scale = torch.tensor(self.feature_mean), torch.tensor(self.feature_scale)
        weights = torch.tensor(self.weights, dtype=torch.float64)
        if features.shape != mean.shape:
            raise ValueError(f"residual correction expects {len(mean)} features, got {tuple(features.shape)}")
        standardised = torch.cat([(features.double() - mean) / scale, torch.ones(1, dtype=torch.float64)])
        return self.limited(standardised @ weights)

    def limited(self, raw: Tensor) -> tuple[Tensor, float]:
        """The regression's raw output ``(41,)`` (dB) as applied: the bands scaled by ``band_strength``,
        the level shifted by ``level_offset_db``, both clamped."""
        bands = (self.band_strength * raw[:-1].double()).clamp(-MAX_BAND_DB, MAX_BAND_DB)
        level = float(raw[-1] + self.level_offset_db)
        return bands, max(-MAX_LEVEL_DB, min(MAX_LEVEL_DB, level))

    def correct(self, windows: Tensor, sample_rate: int, presence: Tensor | None = None,
                normalised: Tensor | None = None) -> tuple[Tensor, float]:
        """:meth:`predict` on the :func:`features` of the analysis ``windows`` and the estimate."""
        return self.predict(regression_features(windows, sample_rate, presence, normalised))

    def save(self, path: str | Path) -> None:
        """Write it as JSON, atomically."""
        write_text_atomic(Path(path), json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "ResidualCorrection":
        """Read a correction written by :meth:`save`; ``ValueError`` names the file if it is not one."""
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (json.JSONDecodeError, TypeError, ValueError) as error:
            raise ValueError(f"{path} is not a residual correction: {error}") from error


def response(band_db: Tensor, level_db: float, n_fft: int, sample_rate: int) -> Tensor:
    """The correction as a zero-phase magnitude response on an rFFT grid.

    Args:
        band_db: ``(40,)`` band corrections, dB.
        level_db: level correction, dB.
        n_fft: the FFT length.
        sample_rate: Hz.

    Returns:
        ``(1, 1, n_fft // 2 + 1)`` float64: the band corrections interpolated linearly in log frequency
        (held flat beyond the outer band centres), times the level.
    """
    log_frequencies = np.log(np.maximum(np.fft.rfftfreq(n_fft, 1.0 / sample_rate), 1.0))
    gain_db = np.interp(log_frequencies, np.log(band_centres_hz()), band_db.double().numpy()) + level_db
    return torch.from_numpy(gain_db).mul_(math.log(10) / 20).exp_()[None, None]


def extra_response(band_db: Tensor, level_db: float, sample_rate: int) -> ExtraResponse:
    """The correction (``band_db`` ``(40,)`` dB, ``level_db`` dB) as an extra response for
    :meth:`Chain.inverse` at ``sample_rate`` Hz."""
    return ExtraResponse(lambda n_fft: response(band_db, level_db, n_fft, sample_rate), TAIL_SAMPLES)
