"""The chain: order, presence, fused LTI path, conversions."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmaster import Chain
from dmaster.effects import echo, gain, reverb
from dmaster.effects.registry import in_processing_order

SR = 44100
CHAIN = Chain(SR)


def item(params, i):
    return {effect: {k: v[i : i + 1] for k, v in values.items()} for effect, values in params.items()}


def only(params, *names):
    """``params`` with every effect but ``names`` off."""
    for name, effect in params.items():
        if name not in names:
            effect["present"] = torch.zeros_like(effect["present"])
    return params


def all_present(batch_size: int, seed: int = 0):
    params = CHAIN.sample_params(batch_size, torch.Generator().manual_seed(seed))
    for effect in params.values():
        effect["present"] = torch.ones(batch_size)
    return params


def test_forward_equals_the_effects_in_order(music):
    params = all_present(2)
    expected = music
    for module in in_processing_order():
        values = {k: v for k, v in params[module.SPEC.name].items() if k != "present"}
        expected = module.forward(expected, SR, **values)
    # the fused path filters once on one FFT grid; fractional delays differ by < -80 dB
    assert torch.allclose(CHAIN(music, params), expected, atol=2e-4)


def test_inverse_equals_the_effect_inverses_in_reverse_order(music):
    params = all_present(2, seed=1)
    degraded = CHAIN(music, params)
    expected = degraded
    for module in in_processing_order()[::-1]:
        values = {k: v for k, v in params[module.SPEC.name].items() if k != "present"}
        extra = {"steps": CHAIN.compressor_inverse_steps} if module.ROLE.iterative_inverse else {}
        expected = module.inverse(expected, SR, **values, **extra)
    assert torch.allclose(CHAIN.inverse(degraded, params), expected, atol=1e-4)


def test_absent_effects_are_the_identity(music):
    params = CHAIN.sample_params(2, torch.Generator().manual_seed(2))
    for effect in params.values():
        effect["present"] = torch.zeros(2)
    assert torch.equal(CHAIN(music, params), music)
    assert torch.equal(CHAIN.inverse(music, params), music)


@pytest.mark.parametrize("samples", [1, 3, 1023, 2047, 2049])
def test_every_effect_takes_clips_shorter_than_its_frames(samples):
    x = 0.1 * torch.randn(2, 2, samples, generator=torch.Generator().manual_seed(samples))
    params = all_present(2, seed=samples)
    degraded = CHAIN(x, params)
    for exact in (True, False):
        restored = CHAIN.inverse(degraded, params, exact=exact)
        assert restored.shape == x.shape and torch.isfinite(restored).all()
    torch.testing.assert_close(reverb.inverse(x, SR, 1.0, 0.0), x, rtol=1e-4, atol=1e-6)  # dry: untouched


def test_only_present_effects_act(music):
    params = only(all_present(2, seed=3), "gain")
    expected = gain.forward(music, SR, params["gain"]["gain_db"])
    assert torch.allclose(CHAIN(music, params), expected, atol=1e-6)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_linear_effects_round_trip_through_the_chain(music, seed):
    params = only(all_present(2, seed), *(m.SPEC.name for m in CHAIN.effects if m.ROLE.linear == "both"))
    restored = CHAIN.inverse(CHAIN(music, params), params)
    snr = 10 * torch.log10(music.square().sum() / (restored - music).square().sum())
    assert snr >= 60


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_inverse_in_the_audio_precision_stays_close_to_the_exact_one(music, seed):
    params = all_present(2, seed)
    degraded = CHAIN(music, params)
    exact = CHAIN.inverse(degraded, params)
    fast = CHAIN.inverse(degraded, params, exact=False)
    assert fast.dtype == exact.dtype == music.dtype and not torch.equal(fast, exact)  # another path
    snr = 10 * torch.log10(exact.square().sum() / (fast - exact).square().sum())
    assert snr >= 100


def test_batch_items_do_not_leak(music):
    params = all_present(2, seed=4)
    joint = CHAIN(music, params)
    joint_inverse = CHAIN.inverse(joint, params)
    for i in range(2):
        alone = CHAIN(music[i : i + 1], item(params, i))
        assert torch.allclose(joint[i : i + 1], alone, atol=1e-5)
        assert torch.allclose(joint_inverse[i : i + 1], CHAIN.inverse(alone, item(params, i)), atol=1e-4)


def test_soft_presence_blends_and_is_differentiable(music):
    params = only(all_present(1, seed=5), "echo")
    x = music[:1]
    presence = torch.full((1,), 0.5, requires_grad=True)
    params["echo"]["present"] = presence
    blended = CHAIN(x, params)
    full = echo.forward(x, SR, params["echo"]["delay_ms"], params["echo"]["level_db"])
    assert torch.allclose(blended, 0.5 * (x + full), atol=1e-5)
    blended.square().sum().backward()
    assert torch.isfinite(presence.grad).all() and presence.grad.abs() > 0


def test_inference_inverse_equals_the_differentiable_one(music):
    # without autograd the inverse's responses are inverted and blended in place
    params = all_present(2, seed=6)
    params["echo"]["present"] = torch.tensor([0.3, 1.0])
    params["gain"]["present"] = torch.tensor([0.7, 0.0])
    degraded = CHAIN(music, params)
    with torch.no_grad():
        fast = CHAIN.inverse(degraded, params)
    differentiable = CHAIN.inverse(degraded.clone().requires_grad_(), params).detach()
    assert (fast - differentiable).abs().max() <= 1e-5 * differentiable.abs().max()


def test_sampling_is_reproducible_and_follows_the_priors():
    a = CHAIN.sample_params(512, torch.Generator().manual_seed(7))
    b = CHAIN.sample_params(512, torch.Generator().manual_seed(7))
    assert all(torch.equal(a[e][k], b[e][k]) for e in a for k in a[e])
    for spec in CHAIN.specs:
        rate = float(a[spec.name]["present"].mean())
        assert abs(rate - spec.presence_probability) < 0.08
        for p in spec.params:
            values = a[spec.name][p.name]
            assert values.min() >= p.prior.low - 1e-4 and values.max() <= p.prior.high + 1e-4


def test_json_round_trip():
    params = CHAIN.sample_params(3, torch.Generator().manual_seed(8))
    text = json.dumps(CHAIN.to_json(params))
    back = CHAIN.from_json(text)
    for effect in params:
        for key in params[effect]:
            assert torch.allclose(back[effect][key], params[effect][key], rtol=1e-3, atol=1e-3)
    first = json.loads(text)[0]
    assert list(first) == list(CHAIN.effect_names)
    assert isinstance(first["echo"]["present"], bool)


def test_vector_round_trip_and_range():
    params = CHAIN.sample_params(16, torch.Generator().manual_seed(9))
    presence, normalised = CHAIN.to_vectors(params)
    assert presence.shape == (16, len(CHAIN.effect_names)) and normalised.shape == (16, len(CHAIN.flat_params))
    assert normalised.min() >= 0 and normalised.max() <= 1
    back = CHAIN.from_vectors(presence, normalised)
    for effect in params:
        for key in params[effect]:
            assert torch.allclose(back[effect][key], params[effect][key], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p.pop("reverb"), r"missing effects \['reverb'\]"),
        (lambda p: p["echo"].pop("present"), r"echo: 'present'"),
        (lambda p: p["echo"].__setitem__("present", torch.tensor([2.0, 0.0])), r"echo.present"),
        (lambda p: p["compressor"].__setitem__("ratio", torch.tensor([30.0, 2.0])), r"ratio = 30 .*\[1, 20\]"),
        (lambda p: p["eq"].pop("bell_1_q"), r"missing parameters \['bell_1_q'\]"),
    ],
)
def test_bad_parameters_are_rejected(music, mutate, message):
    params = CHAIN.sample_params(2, torch.Generator().manual_seed(10))
    mutate(params)
    with pytest.raises(ValueError, match=message):
        CHAIN(music, params)


def test_bad_json_is_rejected():
    with pytest.raises(ValueError, match="no parameter sets"):
        CHAIN.from_json("[]")
    item = CHAIN.to_json(CHAIN.sample_params(1))[0]
    del item["gain"]["gain_db"]
    with pytest.raises(ValueError, match="gain: missing 'gain_db'"):
        CHAIN.from_json([item])


def test_bad_sample_rate_is_rejected():
    with pytest.raises(ValueError, match="sample_rate"):
        Chain(100)


def test_gradients_flow_to_every_parameter_through_forward_and_inverse(music):
    params = all_present(1, seed=11)
    leaves = []
    for effect in params.values():
        for key, value in effect.items():
            if key != "present":
                effect[key] = value.clone().requires_grad_()
                leaves.append((key, effect[key]))
    x = music[:1, :, :22050]
    loss = (CHAIN.inverse(CHAIN(x, params), params) - x).square().mean() + CHAIN(x, params).square().mean()
    loss.backward()
    for key, leaf in leaves:
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all(), key
