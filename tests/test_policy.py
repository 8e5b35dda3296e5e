"""The policy's parts (:mod:`dmaster.mastering.restoration`): calibrated presence, the probability that anything
is to be fixed, and how they weigh the inverse and the residual correction."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmaster import Chain
from dmaster.effects import echo
from dmaster.mastering.estimation import measure_echo_level, model_windows, track_estimate
from dmaster.mastering.pretrained import Policy
from dmaster.mastering.restoration import (
    Correction,
    calibrate,
    correction_strengths,
    decide,
    fix_probability,
    restore,
    restore_estimate,
)
from dmaster.synth import music_like

SR = 44100
EFFECTS = len(Chain(SR).effect_names)
probability = st.floats(0.0, 1.0)


def estimate(**presence: float):
    params = Chain(SR).sample_params(1, torch.Generator().manual_seed(0))
    for name in params:
        params[name]["present"] = torch.tensor([presence.get(name, 0.0)])
    return params


@settings(max_examples=50, deadline=None)
@given(p=st.lists(probability, min_size=EFFECTS, max_size=EFFECTS), a=st.floats(0.1, 4.0), b=st.floats(-4.0, 4.0))
def test_calibration_is_monotone_and_the_identity_changes_nothing(p, a, b):
    names = Chain(SR).effect_names
    params = estimate(**dict(zip(names, p)))
    same = calibrate(params, {name: [1.0, 0.0] for name in names})
    for name in names:
        assert float(same[name]["present"][0]) == pytest.approx(p[names.index(name)], abs=1e-5)
    higher = estimate(**{name: min(1.0, value + 0.1) for name, value in zip(names, p)})
    low, high = (calibrate(x, {"eq": [a, b]})["eq"]["present"] for x in (params, higher))
    assert 0.0 <= float(low) <= float(high) <= 1.0
    assert calibrate(params, None) is params and calibrate(params, {}) is params


@settings(max_examples=50, deadline=None)
@given(p=st.lists(probability, min_size=EFFECTS, max_size=EFFECTS))
def test_fix_probability_is_at_least_the_surest_effect(p):
    params = estimate(**dict(zip(Chain(SR).effect_names, p)))
    fix = float(fix_probability(params)[0])
    assert max(p) - 1e-6 <= fix <= 1.0 + 1e-6
    if max(p) == 0.0:
        assert fix == 0.0  # nothing present: nothing to fix


def test_decide_gates_the_residual_correction_only_when_calibrated():
    correction = Correction(torch.full((40,), 2.0, dtype=torch.float64), 3.0)
    clean = estimate()  # every effect absent
    _, ungated = decide(clean, correction, None, 0.5)
    assert ungated.level_db == pytest.approx(1.5)  # uncalibrated: the residual strength alone
    calibration = {name: [1.0, 0.0] for name in clean}
    params, gated = decide(clean, correction, calibration, 0.5)
    assert abs(gated.level_db) < 1e-4 and float(gated.bands_db.abs().max()) < 1e-4  # nothing to fix
    assert all(float(w["present"][0]) == 0.0 for w in correction_strengths(params).values())
    _, sure = decide(estimate(echo=1.0), correction, calibration, 0.5)
    assert sure.level_db == pytest.approx(1.5, abs=1e-4)
    assert decide(clean, None, calibration)[1] is None


def test_restore_is_its_estimate_restored(estimator):
    # restore() = the model's raw estimate, then restore_estimate(): the recipes that keep the raw estimate get the
    # same audio, calibrated estimate and gated strengths as master()
    audio = music_like(2.0, SR, 2, seed=3)
    policy = Policy({"eq": 0.5}, {"echo": [1.0, 3.0]}, threshold={"reverb": 0.9})
    whole = restore(estimator, audio, policy)
    with torch.no_grad():  # as restore() and the recipes estimate
        raw = track_estimate(estimator, model_windows(estimator, audio))
        parts = restore_estimate(estimator.chain, audio, raw, policy)
    torch.testing.assert_close(parts.audio, whole.audio, atol=5e-3, rtol=0)  # restore() itself varies by ~5e-4
    assert parts.strength == whole.strength and parts.strength["reverb"] in (0.0, 1.0)
    for name in raw:
        torch.testing.assert_close(parts.params[name]["present"], whole.params[name]["present"], atol=1e-4, rtol=0)
    assert float(parts.params["echo"]["present"][0]) > float(raw["echo"]["present"][0])  # calibrated, raw kept


@pytest.mark.parametrize("delay_ms, level_db", [(60.0, -18.0), (333.3, -9.0)])
def test_the_echo_level_is_measured_at_the_estimated_delay(estimator, delay_ms, level_db):
    # the track-wide estimate's echo level comes from the cepstral peak at its delay: near the truth where the
    # delay is right, next to nothing (the range's floor) where it is wrong, whatever the network said
    noise = torch.randn(3, 2, 5 * SR, generator=torch.Generator().manual_seed(1))  # three 5 s analysis windows
    windows = echo.forward(noise, SR, delay_ms, level_db)
    params = estimate(echo=0.9)
    params["echo"]["level_db"] = torch.tensor([-3.0])
    for delay, expected in ((delay_ms, level_db), (delay_ms * 1.5, -40.0)):
        params["echo"]["delay_ms"] = torch.tensor([delay])
        measured = measure_echo_level(estimator, windows, params)
        assert abs(float(measured["echo"]["level_db"][0]) - expected) < 1.0
        assert measured["echo"]["present"] is params["echo"]["present"]
