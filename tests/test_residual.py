"""The residual correction: long-term spectrum, the ridge's prediction, its response, and the
chain's extra LTI response that applies it inside the inverse."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmaster import Chain
from dmaster.residual import (
    BAND_EDGES_HZ,
    MAX_BAND_DB,
    ResidualCorrection,
    band_centres_hz,
    band_levels_db,
    extra_response,
    regression_features,
    response,
)
from dmaster.synth import music_like

SR = 44100
CHAIN = Chain(SR)
N_BANDS = len(BAND_EDGES_HZ) - 1
N_FEATURES = N_BANDS + 1 + len(CHAIN.specs) + len(CHAIN.flat_params)


def sine(hz: float, seconds: float = 1.0, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return (amplitude * torch.sin(2 * math.pi * hz * t)).expand(1, 2, -1)


def test_band_levels_find_a_tone_and_scales_with_level():
    spectrum = band_levels_db(sine(1000.0), SR)
    assert spectrum.shape == (N_BANDS,) and torch.isfinite(spectrum).all()
    assert BAND_EDGES_HZ[int(spectrum.argmax())] <= 1000.0 < BAND_EDGES_HZ[int(spectrum.argmax()) + 1]
    louder = band_levels_db(2 * sine(1000.0), SR)
    assert torch.allclose(louder - spectrum, torch.full_like(spectrum, 20 * math.log10(2)), atol=0.02)


def test_features_shape_and_level():
    windows = music_like(2.0, SR, 2, seed=1)[None].repeat(3, 1, 1)
    presence, normalised = CHAIN.to_vectors(CHAIN.neutral_params(1))
    x = regression_features(windows, SR, presence, normalised)
    assert x.shape == (N_FEATURES,) and torch.isfinite(x).all()
    assert abs(float(x[:N_BANDS].mean())) < 1e-9  # the spectrum is relative to its mean
    assert float(x[N_BANDS]) == pytest.approx(10 * math.log10(float(windows.square().mean())), abs=1e-4)


def fitted(band: float = 0.0, level: float = 0.0, **kwargs) -> ResidualCorrection:
    weights = np.zeros((N_FEATURES + 1, N_BANDS + 1))
    weights[-1, :N_BANDS], weights[-1, -1] = band, level  # intercepts only
    return ResidualCorrection([0.0] * N_FEATURES, [1.0] * N_FEATURES, weights.tolist(), **kwargs)


def test_prediction_strength_offset_and_limits():
    x = torch.randn(N_FEATURES, dtype=torch.float64)
    bands, level = fitted(band=4.0, level=2.0, band_strength=0.5, level_offset_db=-1.0).predict(x)
    assert torch.allclose(bands, torch.full((N_BANDS,), 2.0, dtype=torch.float64)) and level == pytest.approx(1.0)
    bands, _ = fitted(band=100.0).predict(x)
    assert float(bands.max()) == MAX_BAND_DB
    with pytest.raises(ValueError, match=f"expects {N_FEATURES} features"):
        fitted().predict(x[:-1])


def test_save_and_load_round_trip_and_bad_files(tmp_path):
    correction = fitted(band=1.5, level=-2.0, band_strength=0.75, level_offset_db=-0.5, description="test")
    correction.save(tmp_path / "c.json")
    assert ResidualCorrection.load(tmp_path / "c.json") == correction
    for name, text in (("truncated", (tmp_path / "c.json").read_text()[:100]), ("foreign", '{"weights": []}'),
                       ("misshaped", '{"feature_mean": [0], "feature_scale": [1], "weights": [[0]]}')):
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=f"{name} is not a residual correction"):
            ResidualCorrection.load(tmp_path / name)
    with pytest.raises(ValueError, match="feature_scale must hold 1 positive"):
        ResidualCorrection([0.0], [0.0], [[0.0] * 41] * 2)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-12, 12), min_size=N_BANDS, max_size=N_BANDS), st.floats(-12, 12))
def test_response_passes_through_the_band_values(band_db, level_db):
    n_fft = 2 ** 16
    magnitude = response(torch.tensor(band_db, dtype=torch.float64), level_db, n_fft, SR)[0, 0]
    assert magnitude.shape == (n_fft // 2 + 1,) and (magnitude > 0).all()
    db = 20 * torch.log10(magnitude).numpy() - level_db
    frequencies = np.fft.rfftfreq(n_fft, 1 / SR)
    centres = band_centres_hz()
    nearest = np.abs(frequencies[:, None] - centres[None]).argmin(0)
    near = np.interp(np.log(frequencies[nearest]), np.log(centres), band_db)  # the curve at those bins
    assert np.allclose(db[nearest], near, atol=1e-6)
    assert db[-1] == pytest.approx(band_db[-1], abs=1e-6) and db[1] == pytest.approx(band_db[0], abs=1e-6)


def test_flat_extra_response_changes_nothing_and_level_scales():
    x = music_like(2.0, SR, 2, seed=3)[None]
    params = CHAIN.sample_params(1, torch.Generator().manual_seed(4))
    plain = CHAIN.inverse(x, params)
    flat = CHAIN.inverse(x, params, extra_response(torch.zeros(N_BANDS), 0.0, SR))
    louder = CHAIN.inverse(x, params, extra_response(torch.zeros(N_BANDS), 20 * math.log10(2), SR))
    assert torch.allclose(flat, plain, atol=1e-5)
    assert torch.allclose(louder, 2 * plain, atol=1e-5)


def test_extra_response_applies_with_every_effect_absent_and_does_not_wrap():
    x = torch.zeros(1, 2, SR)
    x[..., SR // 2] = 1.0  # an impulse: the zero-phase response rings on both sides
    off = CHAIN.neutral_params(1)
    bands = torch.linspace(-10, 10, N_BANDS, dtype=torch.float64)
    out = CHAIN.inverse(x, off, extra_response(bands, 0.0, SR))
    n_fft = 2 ** 20  # far more room than the chain gives it
    reference = torch.fft.irfft(torch.fft.rfft(x.double(), n_fft) * response(bands, 0.0, n_fft, SR), n_fft)[..., :SR]
    assert not torch.equal(out, x)
    assert torch.allclose(out.double(), reference, atol=1e-4)
