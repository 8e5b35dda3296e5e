"""Property tests of the DSP invariants of each effect."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmaster.effects import compressor, echo, eq, gain, reverb
from dmaster.effects.lti import convolution_size
from dmaster.effects.spec import EffectSpec
from dmaster.metrics import mrstft_distance
from dmaster.synth import music_like

SR = 44100
CLIP = music_like(0.75, SR, 2, seed=3)[None]  # (1, 2, samples)
SLOW = {"threshold_db": -20.0, "ratio": 2.0, "attack_ms": 5.0, "release_ms": 50.0}
"""A gentle compressor's settings for the checks of bad input."""


def snr_db(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    return float(10 * torch.log10(reference.square().sum() / (estimate - reference).square().sum()))


def params_from_unit(spec: EffectSpec, unit_values: list[float], dtype=torch.float32) -> dict[str, torch.Tensor]:
    """Parameters anywhere in the spec's ranges, from one value in [0, 1] each."""
    return {p.name: p.denormalise(torch.tensor([u], dtype=torch.float64)).to(dtype)
            for p, u in zip(spec.params, unit_values)}


def unit_lists(spec: EffectSpec):
    return st.lists(st.floats(0.0, 1.0), min_size=len(spec.params), max_size=len(spec.params))


@pytest.mark.parametrize("module", [eq, gain, echo], ids=["eq", "gain", "echo"])
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_exact_round_trip_over_whole_range(module, data):
    # float64 audio: at the corners of the range the EQ cuts some bins by 75 dB, below
    # what float32 samples of the degraded signal can hold
    params = params_from_unit(module.SPEC, data.draw(unit_lists(module.SPEC)), torch.float64)
    degraded = module.forward(CLIP.double(), SR, **params)
    assert snr_db(module.inverse(degraded, SR, **params), CLIP.double()) >= 60.0


@pytest.mark.parametrize("module", [eq, gain, echo], ids=["eq", "gain", "echo"])
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_float32_round_trip_over_the_prior(module, seed):
    params = module.SPEC.sample(1, torch.Generator().manual_seed(seed))
    degraded = module.forward(CLIP, SR, **params)
    assert snr_db(module.inverse(degraded, SR, **params), CLIP) >= 60.0


def test_echo_round_trip_at_the_hardest_corner():
    # longest delay with the loudest echo needs the longest inverse tail
    params = {"delay_ms": torch.tensor([800.0]), "level_db": torch.tensor([-3.0])}
    restored = echo.inverse(echo.forward(CLIP, SR, **params), SR, **params)
    assert snr_db(restored, CLIP) >= 60.0


def test_echo_adds_a_delayed_copy():
    impulse = torch.zeros(1, 1, 4410)
    impulse[..., 100] = 1.0
    y = echo.forward(impulse, SR, delay_ms=torch.tensor([50.0]), level_db=torch.tensor([-6.0]))
    assert y[0, 0, 100] == pytest.approx(1.0, abs=1e-5)
    assert y[0, 0, 100 + 2205] == pytest.approx(10 ** (-6 / 20), abs=1e-4)


def prior_samples(spec: EffectSpec, n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    drawn = spec.sample(n, torch.Generator().manual_seed(seed))
    return [{k: v[i : i + 1] for k, v in drawn.items()} for i in range(n)]


@pytest.mark.parametrize("params", prior_samples(compressor.SPEC, 4, seed=0))
def test_compressor_inverse_halves_the_distance(music, params):
    x = music[:1]
    degraded = compressor.forward(x, SR, **params)
    restored = compressor.inverse(degraded, SR, **params)
    assert mrstft_distance(restored, x) <= 0.5 * mrstft_distance(degraded, x)


@pytest.mark.parametrize("params", prior_samples(reverb.SPEC, 4, seed=0))
def test_reverb_inverse_brings_the_signal_closer(music, params):
    # Statistical suppression cannot reach the exact original: even with the true late-reverb
    # power per bin, spectral subtraction leaves ~0.75 of the distance on real music.
    x = music[:1]
    degraded = reverb.forward(x, SR, **params)
    restored = reverb.inverse(degraded, SR, **params)
    assert mrstft_distance(restored, x) <= 0.9 * mrstft_distance(degraded, x)


def test_reverb_is_deterministic_and_decays_as_t60_says():
    t60 = torch.tensor([0.5])
    ir = reverb.impulse_response(SR, 1, t60)
    assert torch.equal(ir, reverb.impulse_response(SR, 1, t60))
    assert ir.shape[-1] == int(0.5 * SR) + 1 or ir.shape[-1] == int(0.5 * SR)
    energy = ir[0, 0].square()
    first, last = energy[: SR // 10].mean(), energy[int(0.35 * SR) : int(0.45 * SR)].mean()
    # 0.35 s later the energy must be down 42 dB (60 dB per 0.5 s), within the noise's spread
    assert 10 * torch.log10(first / last) == pytest.approx(42.0, abs=3.0)


@pytest.mark.parametrize(
    "module, neutral",
    [
        (eq, {}),
        (gain, {"gain_db": 0.0}),
        (reverb, {"t60_s": 1.0, "wet": 0.0, "pre_delay_ms": 0.0}),
        (compressor, {"threshold_db": -30.0, "ratio": 1.0, "attack_ms": 5.0, "release_ms": 50.0,
                      "knee_db": 6.0, "makeup_db": 0.0}),
    ],
    ids=["eq", "gain", "reverb", "compressor"],
)
def test_neutral_parameters_are_the_identity(module, neutral):
    assert torch.allclose(module.forward(CLIP, SR, **neutral), CLIP, atol=1e-5)
    assert torch.allclose(module.inverse(CLIP, SR, **neutral), CLIP, atol=1e-5)


def test_compressor_reduces_loud_parts_only():
    quiet_then_loud = torch.cat([0.01 * CLIP, CLIP], dim=-1)
    y = compressor.forward(quiet_then_loud, SR, threshold_db=-20.0, ratio=8.0, attack_ms=1.0,
                           release_ms=50.0, knee_db=0.0)
    half = CLIP.shape[-1]
    assert torch.allclose(y[..., : half // 2], quiet_then_loud[..., : half // 2], atol=1e-6)
    assert y[..., half:].abs().max() < 0.5 * quiet_then_loud[..., half:].abs().max()


@pytest.mark.parametrize("module", [reverb, compressor], ids=["reverb", "compressor"])
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_inference_inverse_equals_the_differentiable_one(module, data):
    # without autograd the inverse runs in place (and the compressor's level detector on a
    # power computed once); it must give what the differentiable inverse gives
    params = params_from_unit(module.SPEC, data.draw(unit_lists(module.SPEC)))
    degraded = module.forward(CLIP, SR, **params)
    with torch.no_grad():
        fast = module.inverse(degraded, SR, **params)
    differentiable = module.inverse(degraded.clone().requires_grad_(), SR, **params).detach()
    assert (fast - differentiable).abs().max() <= 1e-5 * differentiable.abs().max()


@settings(max_examples=10, deadline=None)
@given(data=st.data(), loudness_db=st.floats(-20.0, 12.0))
def test_compressor_inverse_stays_finite_for_any_settings_and_audio(data, loudness_db):
    # settings that cannot explain the audio (a low threshold and a high ratio on loud audio, a makeup cut)
    # ask for a decompression of hundreds of dB: the boost is capped, the output and its gradient finite
    params = params_from_unit(compressor.SPEC, data.draw(unit_lists(compressor.SPEC)))
    loud = (CLIP * 10 ** (loudness_db / 20)).requires_grad_()
    restored = compressor.inverse(loud, SR, **params)
    restored.square().mean().backward()
    assert torch.isfinite(restored).all() and torch.isfinite(loud.grad).all()
    with torch.no_grad():
        assert torch.isfinite(compressor.inverse(loud.detach(), SR, **params)).all()
    boost_db = 20 * torch.log10(restored.detach().abs().amax() / loud.detach().abs().amax())
    assert boost_db <= compressor.MAX_INPUT_DB + 60.0 + 12.0 + 1.0  # the largest reduction, plus the makeup's cut


@pytest.mark.parametrize("seconds", [0.01, 0.3], ids=["fewer-chunks-than-steps", "partial-last-chunk"])
@pytest.mark.parametrize("steps", [1, 8, 11])
def test_compressor_fused_inverse_equals_the_in_place_one(seconds, steps):
    # the numba kernel (float32, CPU) against the torch passes, on a batch of different
    # settings, extremes of the ranges and digital silence included
    x = torch.stack([music_like(seconds, SR, 2, seed=s) for s in (1, 2, 3)])
    x[1, :, : x.shape[-1] // 3] = 0.0
    x[2] *= 0.01
    params = {"threshold_db": torch.tensor([-20.0, -60.0, -59.0]), "ratio": torch.tensor([4.0, 20.0, 1.5]),
              "attack_ms": torch.tensor([10.0, 0.1, 100.0]), "release_ms": torch.tensor([150.0, 10.0, 2000.0]),
              "knee_db": torch.tensor([6.0, 0.0, 24.0])}
    target = compressor.forward(x, SR, **params)
    relaxation = 2 * params["ratio"][:, None] / (params["ratio"][:, None] + 1)
    fused = target * compressor._log_boost_fused(target, SR, relaxation, steps, **params).exp()
    in_place = target * compressor._log_boost_in_place(target, SR, relaxation, steps, **params).exp()
    assert ((fused - in_place).abs().amax((1, 2)) <= 1e-5 * in_place.abs().amax((1, 2))).all()


SHORT = music_like(0.05, SR, 1, seed=4)[None].double()  # (1, 1, 2205) for gradcheck
GRADCHECK_CASES = [
    (eq.forward, {"bell_2_hz": 500.0, "bell_2_q": 1.2, "bell_2_gain_db": 4.0, "high_shelf_gain_db": -3.0,
                  "high_shelf_hz": 6000.0, "low_shelf_q": 0.7}),
    (eq.inverse, {"bell_3_hz": 2000.0, "bell_3_q": 2.0, "bell_3_gain_db": -5.0}),
    (gain.forward, {"gain_db": 3.0}),
    (echo.forward, {"delay_ms": 20.37, "level_db": -6.0}),
    (echo.inverse, {"delay_ms": 21.5, "level_db": -9.0}),
    # T60 off the sample grid: the response is cut at T60 · sample_rate, a step in T60
    (reverb.forward, {"t60_s": 0.3137, "wet": 0.3, "pre_delay_ms": 3.3}),
    (reverb.inverse, {"t60_s": 0.3137, "wet": 0.3, "pre_delay_ms": 3.3}),
    (compressor.forward, {"threshold_db": -25.0, "ratio": 4.0, "attack_ms": 2.0, "release_ms": 30.0,
                          "knee_db": 6.0, "makeup_db": 2.0}),
    (compressor.inverse, {"threshold_db": -25.0, "ratio": 4.0, "attack_ms": 2.0, "release_ms": 30.0,
                          "knee_db": 6.0, "makeup_db": 2.0}),
]


@pytest.mark.parametrize("function, values", GRADCHECK_CASES,
                         ids=[f"{f.__module__.split('.')[-1]}.{f.__name__}" for f, _ in GRADCHECK_CASES])
def test_gradients_match_finite_differences(function, values):
    names = list(values)
    # a reduced output keeps gradcheck quick; it still sees every parameter and the audio
    weights = torch.randn(SHORT.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def scalar(audio, *args):
        return (function(audio, SR, **dict(zip(names, args))) * weights).sum()

    inputs = [SHORT.clone().requires_grad_()] + [torch.tensor([v], dtype=torch.float64, requires_grad=True)
                                                 for v in values.values()]
    assert torch.autograd.gradcheck(scalar, inputs, eps=1e-6, atol=1e-4, rtol=1e-3, fast_mode=True)


@pytest.mark.parametrize("module", [eq, gain, echo, reverb, compressor],
                         ids=["eq", "gain", "echo", "reverb", "compressor"])
def test_batch_items_are_independent(module, music):
    params = module.SPEC.sample(2, torch.Generator().manual_seed(5))
    joint = module.forward(music, SR, **params)
    for i in range(2):
        alone = module.forward(music[i : i + 1], SR, **{k: v[i : i + 1] for k, v in params.items()})
        assert torch.allclose(joint[i : i + 1], alone, atol=1e-5)
    joint_inverse = module.inverse(joint, SR, **params)
    alone_inverse = module.inverse(joint[1:], SR, **{k: v[1:] for k, v in params.items()})
    assert torch.allclose(joint_inverse[1:], alone_inverse, atol=1e-5)


@pytest.mark.parametrize(
    "audio, message",
    [
        (torch.zeros(2, 100), "batch, channels, samples"),
        (torch.zeros(1, 1, 0), "empty"),
        (torch.full((1, 1, 100), float("nan")), "NaN"),
        (torch.cat([CLIP, torch.full((1, 2, 1), float("nan"))], dim=-1), "NaN"),
        (torch.cat([CLIP, torch.full((1, 2, 1), -float("inf"))], dim=-1), "inf"),
        (torch.zeros(1, 1, 100, dtype=torch.int32), "float"),
    ],
)
def test_bad_audio_is_rejected(audio, message):
    with pytest.raises((ValueError, TypeError), match=message):
        gain.forward(audio, SR, gain_db=1.0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: echo.forward(CLIP, SR, delay_ms=5.0, level_db=-6.0), r"delay_ms = 5 .*\[20, 800\] ms"),
        (lambda: gain.forward(CLIP, SR, gain_db=float("inf")), r"gain_db must be finite"),
        (lambda: compressor.forward(CLIP, SR, **{**SLOW, "ratio": 0.5}), r"ratio = 0.5 .*\[1, 20\]"),
        (lambda: reverb.forward(CLIP, SR, t60_s=1.0, wet=1.5), r"wet = 1.5"),
        (lambda: eq.forward(CLIP, SR, bell_9_hz=100.0), r"unknown parameters \['bell_9_hz'\]"),
        (lambda: gain.forward(CLIP, SR, gain_db=torch.zeros(3)), r"gain_db must be shaped \(batch,\) = \(1,\)"),
        (lambda: compressor.inverse(CLIP, SR, steps=0, **SLOW), r"steps must be ≥ 1"),
    ],
)
def test_bad_parameters_name_the_parameter_and_its_range(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@given(st.integers(1, 10**9))
def test_convolution_size_is_a_fast_length_just_above(samples):
    size = convolution_size(samples)
    odd = size >> (size & -size).bit_length() - 1  # size without its factors of two
    assert odd in (1, 3, 5) and samples <= size <= max(4 * samples / 3, 2)
