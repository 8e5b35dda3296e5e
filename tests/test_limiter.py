"""The lookahead peak limiter: ceiling (sample and true peak), identity under it, ramps (no jumps), recovery,
batch independence."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmaster import limiter
from dmaster.limiter import ATTACK_DB_PER_MS, RELEASE_DB_PER_MS, limit_peaks, limiter_gain_db, peak_db

SR = 44100


def noise(seed: int, batch: int = 2, channels: int = 2, samples: int = 4000, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    # a heavy-tailed signal: most samples quiet, a few peaks far over them
    return scale * torch.randn(batch, channels, samples, generator=generator) ** 3


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), ceiling_db=st.floats(-20.0, 0.0), samples=st.integers(1, 5000),
       scale=st.floats(0.01, 10.0), sample_rate=st.sampled_from([8000, 44100, 96000]))
def test_never_over_the_ceiling_and_the_loudest_peak_reaches_it(seed, ceiling_db, samples, scale, sample_rate):
    x = noise(seed, samples=samples, scale=scale)
    y = limit_peaks(x, sample_rate, ceiling_db)
    assert y.shape == x.shape and torch.isfinite(y).all()
    for item_in, item_out in zip(x, y):
        assert peak_db(item_out) <= ceiling_db + 1e-6
        if peak_db(item_in) > ceiling_db:  # no more limiting than the loudest peak needs
            assert peak_db(item_out) == pytest.approx(ceiling_db, abs=1e-3)
        else:
            assert torch.equal(item_out, item_in)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), attack=st.floats(0.1, 5.0), release=st.floats(0.01, 1.0))
def test_gain_moves_no_faster_than_its_ramps(seed, attack, release):
    x = noise(seed, samples=3000, scale=2.0)
    gain = limiter_gain_db(x, SR, -1.0, attack, release)
    assert gain.shape == (2, 1, 3000) and (gain <= 0).all()
    steps = gain.diff(dim=-1)
    per_sample = 1000.0 / SR
    assert (steps >= -attack * per_sample - 1e-4).all() and (steps <= release * per_sample + 1e-4).all()


def test_one_peak_only_touches_its_surroundings():
    tone = 0.25 * torch.sin(2 * math.pi * 220 * torch.arange(SR) / SR).expand(1, 2, -1).clone()
    tone[..., SR // 2] = 2.0  # one click 7 dB over a −1 dBFS ceiling
    gain = limiter_gain_db(tone, SR, -1.0)[0, 0]
    reduction = 20 * math.log10(2.0) + 1.0
    attack_samples = reduction / ATTACK_DB_PER_MS * SR / 1000
    release_samples = reduction / RELEASE_DB_PER_MS * SR / 1000
    assert float(gain[SR // 2]) == pytest.approx(-reduction, abs=1e-3)
    touched = torch.nonzero(gain < 0).flatten()
    margin = 2 * 32  # the gain is computed on blocks of 32 samples
    assert SR // 2 - attack_samples - margin <= int(touched[0]) <= SR // 2 - attack_samples + margin
    assert SR // 2 + release_samples - margin <= int(touched[-1]) <= SR // 2 + release_samples + margin


def test_true_peaks_between_the_samples_are_limited_too():
    # a sine at a quarter of the sample rate, sampled 45° off its crests: its samples stay 3 dB under its peaks
    sine = (0.9 * math.sqrt(0.5) * torch.tensor([1.0, 1.0, -1.0, -1.0])).repeat(SR // 4)
    fade = torch.hann_window(4000)  # faded in and out: abrupt ends would ring over 0.9 when oversampled
    sine[:2000] *= fade[:2000]
    sine[-2000:] *= fade[2000:]
    sine = sine.expand(1, 2, -1).clone()
    assert peak_db(sine[0]) == pytest.approx(20 * math.log10(0.9) - 3.01, abs=0.01)
    # the highest of the meters' readings: at the peak or a little over (the short interpolators overshoot)
    assert 20 * math.log10(0.9) - 0.01 <= peak_db(sine[0], true_peak=True) <= 20 * math.log10(0.9) + 0.1
    assert torch.equal(limit_peaks(sine, SR, -1.0), sine)  # its samples are under -1 dBFS
    limited = limit_peaks(sine, SR, -1.0, true_peak=True)[0]
    assert -1.05 <= peak_db(limited, true_peak=True) <= -1.0


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), ceiling_db=st.floats(-12.0, 0.0))
def test_the_true_peak_ceiling_holds_on_noise(seed, ceiling_db):
    x = noise(seed, batch=1, samples=6000, scale=2.0)
    limited = limit_peaks(x, SR, ceiling_db, true_peak=True)[0]
    assert peak_db(limited, true_peak=True) <= ceiling_db + 0.05
    assert peak_db(limited) <= ceiling_db + 1e-6


def test_true_peaks_are_read_in_batches_of_candidates_alike(monkeypatch):
    x = noise(5, batch=2, samples=9000, scale=0.3)
    whole = limiter.peak_envelope(x, true_peak=True)
    assert bool((whole > x.abs().amax(1)).any())  # some peaks lie between the samples
    monkeypatch.setattr(limiter, "CANDIDATES", 1000)
    assert torch.equal(limiter.peak_envelope(x, true_peak=True), whole)


def test_batch_items_are_limited_independently():
    x = noise(3, batch=3, samples=2000, scale=3.0)
    together = limit_peaks(x, SR, -3.0)
    for k in range(3):
        assert torch.allclose(together[k : k + 1], limit_peaks(x[k : k + 1], SR, -3.0))


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="attack_db_per_ms and release_db_per_ms must be > 0"):
        limit_peaks(torch.ones(1, 1, 10), SR, -1.0, release_db_per_ms=0.0)
    with pytest.raises(ValueError, match="NaN or inf"):
        limit_peaks(torch.full((1, 1, 10), math.nan), SR, -1.0)
    with pytest.raises(ValueError, match=r"\(batch, channels, samples\)"):
        limit_peaks(torch.ones(10), SR, -1.0)
