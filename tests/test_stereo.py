"""The stereo image effect (width, low-end width, balance), the registry of effects it joined through, and what
adding it left as it was: the other effects' draws, the shipped weights and master() with them."""

import copy
import json
import pickle
import pkgutil
import types
from importlib import import_module
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dmaster.effects
from dmaster import Chain, master
from dmaster.cli import main
from dmaster.data.prior import DrawPrior
from dmaster.effects import EFFECTS, EffectRole, EffectSpec, Param, Prior, gain, registry, stereo
from dmaster.effects.lti import convolution_size, double
from dmaster.mastering import reference
from dmaster.mastering.pretrained import resolve_model
from dmaster.mastering.report import NOT_ESTIMATED, correction_text
from dmaster.models import ParamEstimator
from dmaster.synth import music_like

SR = 44100
MUSIC = torch.stack([music_like(1.0, SR, 2, seed=s) for s in (21, 22)])  # (2, 2, 1 s) of stereo music
ROOT = Path(__file__).resolve().parent.parent
NEUTRAL = {p.name: p.neutral for p in stereo.SPEC.params}


def snr_db(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    error = (estimate.double() - reference.double()).square().sum()
    return float(10 * torch.log10(reference.double().square().sum() / error))


def unit_params(units: list[float]) -> dict[str, torch.Tensor]:
    """Parameters anywhere in the spec's ranges, from one value in [0, 1] each, for a batch of one."""
    return {p.name: p.denormalise(torch.tensor([u], dtype=torch.float64)).float()
            for p, u in zip(stereo.SPEC.params, units)}


units = st.lists(st.floats(0.0, 1.0), min_size=len(stereo.SPEC.params), max_size=len(stereo.SPEC.params))


def only(params: dict, *names: str) -> dict:
    for name, effect in params.items():
        if name not in names:
            effect["present"] = torch.zeros_like(effect["present"])
    return params


def band_db(audio: torch.Tensor, low_hz: float, high_hz: float) -> tuple[float, float]:
    """Side and mid energy (dB) of ``audio`` ``(2, samples)`` between two frequencies."""
    spectrum = torch.fft.rfft(audio.double())
    hz = torch.fft.rfftfreq(audio.shape[-1], 1 / SR, dtype=torch.float64)
    band = (hz >= low_hz) & (hz < high_hz)
    mid, side = (spectrum[0] + spectrum[1]) / 2, (spectrum[0] - spectrum[1]) / 2
    return tuple(float(10 * torch.log10(x[band].abs().square().sum())) for x in (side, mid))


# -- the effect ----------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [
    {"width_db": -12.0, "low_width_db": 12.0, "balance_db": 6.0},     # the corners
    {"width_db": 12.0, "low_width_db": 0.0, "balance_db": -6.0},
    {"width_db": -4.0, "low_width_db": 5.0, "balance_db": 0.7},
])
def test_round_trip_on_stereo_music_is_exact(values):
    params = {k: torch.full((2,), v) for k, v in values.items()}
    degraded = stereo.forward(MUSIC, SR, **params)
    assert snr_db(degraded, MUSIC) < 40  # it did something
    assert snr_db(stereo.inverse(degraded, SR, **params), MUSIC) >= 100


@settings(max_examples=8, deadline=None)
@given(values=units)
def test_round_trip_is_exact_over_the_whole_range(values):
    params = unit_params(values)
    clip = MUSIC[:1, :, : SR // 2]
    assert snr_db(stereo.inverse(stereo.forward(clip, SR, **params), SR, **params), clip) >= 100
    chain = Chain(SR)
    chained = only(chain.neutral_params(1, present=True), "stereo")
    chained["stereo"] = {"present": torch.ones(1), **params}
    degraded = chain(clip, chained)
    assert snr_db(degraded, stereo.forward(clip, SR, **params)) >= 100  # the chain's 2×2 response per bin
    assert snr_db(chain.inverse(degraded, chained), clip) >= 100
    assert snr_db(chain.inverse(degraded, chained, exact=False), clip) >= 100


@settings(max_examples=10, deadline=None)
@given(values=units)
def test_the_side_moves_by_the_width_above_the_crossover_and_by_the_low_width_below(values):
    params = unit_params(values)
    params["balance_db"] = torch.zeros(1)
    noise = torch.randn(1, 2, SR, generator=torch.Generator().manual_seed(0))  # every band wide
    changed = stereo.forward(noise, SR, **params)
    for (low, high), expected in (((1500.0, 15000.0), params["width_db"]), ((20.0, 40.0), params["low_width_db"])):
        (side_in, mid_in), (side_out, mid_out) = band_db(noise[0], low, high), band_db(changed[0], low, high)
        assert mid_out == pytest.approx(mid_in, abs=1e-6)  # the mid is left alone
        assert side_out - side_in == pytest.approx(float(expected), abs=0.35)


@settings(max_examples=10, deadline=None)
@given(balance_db=st.floats(-6.0, 6.0))
def test_the_balance_is_the_level_of_left_over_right(balance_db):
    dual_mono = MUSIC[:1, :1].expand(1, 2, -1)
    changed = stereo.forward(dual_mono, SR, width_db=5.0, low_width_db=3.0, balance_db=balance_db)
    levels = 10 * torch.log10(changed.double().square().sum(-1))[0]
    assert float(levels[0] - levels[1]) == pytest.approx(balance_db, abs=1e-4)
    unbalanced = changed[0] / torch.tensor([[10 ** (balance_db / 40)], [10 ** (-balance_db / 40)]])
    side_db, mid_db = band_db(unbalanced, 20, 2e4)
    assert side_db - mid_db < -100  # no side made: the width and low-end width scale the side there is


@settings(max_examples=10, deadline=None)
@given(values=units)
def test_the_inverse_never_widens_the_low_end(values):
    """Folding the bass to mono is what mastering does: whatever the estimate, the inverse's side gain at the bottom
    is the low-end width's negation (≤ 0 dB), and a mono signal (no side at all) stays mono."""
    params = double(unit_params(values))
    n_fft = 1 << 16
    inverse_db = -20 * torch.log10(stereo.side_response(n_fft, SR, params["width_db"], params["low_width_db"]).abs())
    bottom = torch.fft.rfftfreq(n_fft, 1 / SR) <= 15.0
    assert float(inverse_db[0, bottom].max()) <= 0.2
    assert float(inverse_db[0, 0]) == pytest.approx(-float(params["low_width_db"]), abs=1e-6)
    dual_mono = MUSIC[:1, :1, :8192].expand(1, 2, -1)
    widths = {k: v for k, v in unit_params(values).items() if k != "balance_db"}
    left, right = stereo.inverse(dual_mono, SR, **widths)[0]
    assert float((left - right).abs().max()) <= 1e-6 * float(dual_mono.abs().max())


@pytest.mark.parametrize("call, message", [
    (lambda: stereo.forward(MUSIC, SR, width_db=13.0), r"width_db = 13 is out of range; it must lie in \[-12, 12\] dB"),
    (lambda: stereo.inverse(MUSIC, SR, balance_db=-7.0), r"balance_db = -7 is out of range; it must lie in \[-6, 6\]"),
    (lambda: stereo.forward(MUSIC, SR, low_width_db=-1.0), r"low_width_db = -1 is out of range; .* \[0, 12\]"),
    (lambda: stereo.forward(MUSIC, SR, width_db=float("nan")), r"width_db must be finite"),
    (lambda: stereo.forward(MUSIC, SR, depth_db=1.0), r"stereo: unknown parameters \['depth_db'\]"),
    (lambda: stereo.forward(MUSIC[0], SR), r"audio must be shaped \(batch, channels, samples\)"),
])
def test_out_of_range_and_bad_input_are_refused_by_name(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_mono_is_the_identity_in_the_effect_and_the_chain():
    mono = MUSIC[:, :1]
    params = {"width_db": 9.0, "low_width_db": 12.0, "balance_db": 5.0}
    assert torch.equal(stereo.forward(mono, SR, **params), mono)
    assert torch.equal(stereo.inverse(mono, SR, **params), mono)
    chain = Chain(SR)
    chained = only(chain.sample_params(2, torch.Generator().manual_seed(0)), "stereo")
    chained["stereo"]["present"] = torch.ones(2)
    assert torch.equal(chain(mono, chained), mono) and torch.equal(chain.inverse(mono, chained), mono)


def test_more_than_two_channels_change_the_front_pair_only():
    surround = torch.cat([MUSIC, 0.5 * MUSIC.flip(1), MUSIC[:, :1], -MUSIC[:, 1:]], 1)  # (2, 6, samples)
    params = {"width_db": torch.tensor([-8.0, 4.0]), "low_width_db": torch.tensor([6.0, 0.0]),
              "balance_db": torch.tensor([2.0, -1.0])}
    changed = stereo.forward(surround, SR, **params)
    assert torch.equal(changed[:, 2:], surround[:, 2:])
    assert torch.equal(changed[:, :2], stereo.forward(MUSIC, SR, **params))
    assert snr_db(stereo.inverse(changed, SR, **params), surround) >= 100
    chain = Chain(SR)
    chained = only(chain.sample_params(2, torch.Generator().manual_seed(1)), "stereo", "gain", "eq")
    chained["stereo"] = {"present": torch.ones(2), **params}
    degraded = chain(surround, chained)
    front = only(chain.sample_params(2, torch.Generator().manual_seed(1)), "stereo", "gain", "eq")
    front["stereo"] = chained["stereo"]
    assert snr_db(degraded[:, :2], chain(MUSIC, front)) >= 100
    no_stereo = {**chained, "stereo": {**chained["stereo"], "present": torch.zeros(2)}}
    assert snr_db(degraded[:, 2:], chain(surround, no_stereo)[:, 2:]) >= 100
    assert snr_db(chain.inverse(degraded, chained), surround) >= 80


def test_gradients_reach_every_parameter_and_the_audio_both_ways():
    params = {name: torch.tensor([value], dtype=torch.float64, requires_grad=True)
              for name, value in (("width_db", -5.0), ("low_width_db", 4.0), ("balance_db", 1.0))}
    audio = MUSIC[:1, :, :4096].double().requires_grad_()
    for function in (stereo.forward, stereo.inverse):
        for value in (*params.values(), audio):
            value.grad = None
        function(audio, SR, **params).square().sum().backward()
        for name, value in params.items():
            assert torch.isfinite(value.grad).all() and float(value.grad.abs()) > 0, (function.__name__, name)
        assert torch.isfinite(audio.grad).all() and float(audio.grad.abs().sum()) > 0
    width = params["width_db"].detach()

    def loss(w: torch.Tensor) -> torch.Tensor:
        return stereo.forward(audio.detach(), SR, width_db=w, low_width_db=4.0, balance_db=1.0).square().sum()

    w = width.clone().requires_grad_()
    loss(w).backward()
    numeric = (loss(width + 1e-4) - loss(width - 1e-4)) / 2e-4
    assert float(w.grad) == pytest.approx(float(numeric), rel=1e-4)


def test_gradients_flow_through_the_chain_to_the_presence_and_parameters():
    chain = Chain(SR)
    params = only(chain.sample_params(1, torch.Generator().manual_seed(3)), "stereo", "eq", "reverb")
    params["stereo"] = {"present": torch.full((1,), 0.6, requires_grad=True),
                        **{k: torch.tensor([v], requires_grad=True) for k, v in (("width_db", -4.0),
                                                                                ("low_width_db", 3.0),
                                                                                ("balance_db", 1.5))}}
    params["eq"]["present"] = torch.ones(1)
    restored = chain.inverse(chain(MUSIC[:1], params), params)
    restored.square().sum().backward()
    assert all(torch.isfinite(v.grad).all() and float(v.grad.abs()) > 0 for v in params["stereo"].values())


def test_neutral_settings_are_the_identity():
    assert torch.allclose(stereo.forward(MUSIC, SR, **NEUTRAL), MUSIC, atol=1e-6)
    n_fft = convolution_size(MUSIC.shape[-1])
    response = stereo.transfer(n_fft, SR, 2, **double({k: torch.zeros(1) for k in NEUTRAL}))
    assert torch.allclose(response[0], torch.eye(2, dtype=response.dtype)[:, :, None].expand(2, 2, n_fft // 2 + 1))


def test_the_tail_holds_the_shelf_and_its_reciprocal():
    for low, width in ((12.0, -12.0), (0.0, 12.0)):  # the steepest shelves either way
        n_fft = 1 << 18
        h = stereo.side_response(n_fft, SR, torch.tensor([width], dtype=torch.float64),
                                 torch.tensor([low], dtype=torch.float64))
        for response in (h, 1.0 / h):
            impulse = torch.fft.irfft(response, n_fft)[0]
            tail = stereo.tail_samples(SR)
            assert float(impulse[tail:].abs().max() / impulse.abs().max()) < 1e-6


# -- the registry --------------------------------------------------------------------------------


def test_every_effect_module_is_registered_and_provides_what_the_registry_asks():
    modules = [import_module(f"dmaster.effects.{info.name}") for info in pkgutil.iter_modules(dmaster.effects.__path__)]
    effects = [module for module in modules if hasattr(module, "SPEC")]
    assert set(effects) == set(EFFECTS)
    assert registry.check_effects(EFFECTS) == EFFECTS
    assert registry.SPEC_VERSION == max(m.ROLE.since for m in EFFECTS)
    assert [m.SPEC.name for m in registry.in_processing_order()] == list(Chain(SR).processing_order)
    names = [m.SPEC.name for m in EFFECTS]
    assert names.index("stereo") == len(names) - 1  # the newest at the end: earlier checkpoints' heads a prefix
    order = Chain(SR).processing_order
    assert order.index("eq") < order.index("stereo") < min(order.index(n) for n in ("reverb", "compressor"))


def test_reference_groups_report_words_and_docs_come_from_the_registry():
    assert reference.TONE_AND_DYNAMICS == registry.group("tone_and_dynamics")
    assert reference.AMBIENCE == registry.group("ambience")
    assert reference.IMAGE == ("stereo",)
    assert not set(reference.LINEAR_FORWARD) & {m for m in EFFECTS if m.ROLE.mixes_channels}
    for module in EFFECTS:
        values = {p.name: p.neutral for p in module.SPEC.params}
        assert correction_text(module.SPEC, values) == module.correction_text(values)
    text = (ROOT / "docs" / "chain.md").read_text(encoding="utf-8")
    begin, end = "<!-- BEGIN effects -->", "<!-- END effects -->"
    block = text[text.index(begin) + len(begin):text.index(end)]
    assert block.strip() == registry.effects_table(), "rewrite docs/chain.md's table with registry.effects_table()"


def test_a_role_is_checked_and_a_module_lacking_a_function_is_refused():
    with pytest.raises(ValueError, match="mixes channels must be linear"):
        EffectRole(5, "none", "image", 2, mixes_channels=True)
    broken = types.ModuleType("broken")
    broken.SPEC, broken.ROLE = gain.SPEC, EffectRole(99, "both", "tone_and_dynamics", 1)
    broken.forward = broken.inverse = broken.correction_text = gain.forward
    with pytest.raises(ValueError, match="lacks transfer, tail_samples"):
        Chain(SR, effects=(*EFFECTS, broken))
    with pytest.raises(ValueError, match="share a name: gain"):
        registry.check_effects((*EFFECTS, types.SimpleNamespace(**{k: getattr(gain, k) for k in dir(gain)
                                                                   if not k.startswith("_")}, __name__="g2")))


def trim_effect() -> types.ModuleType:
    """A registry entry made up here: a broadband trim on the right channel only (a per-channel response),
    placed between the gain and the echo."""
    trim = types.ModuleType("trim")
    trim.SPEC = EffectSpec("trim", (Param("right_db", "dB", -6.0, 6.0, "linear", Prior("uniform", -6.0, 6.0), 0.0,
                                          "right channel's level"),), 0.5, "a right-channel trim")
    trim.ROLE = EffectRole(25, "both", "tone_and_dynamics", registry.SPEC_VERSION + 1)

    def transfer(n_fft, sample_rate, channels, right_db):
        response = torch.ones(len(right_db), channels, 1, dtype=right_db.dtype)
        response[:, 1:2] = 10 ** (right_db[:, None, None] / 20)
        return response

    def forward(x, sample_rate, right_db):
        right_db = trim.SPEC.prepare(x, {"right_db": right_db})["right_db"]
        return x * transfer(0, sample_rate, x.shape[1], right_db).to(x)

    trim.transfer, trim.forward = transfer, forward
    trim.inverse = lambda y, sample_rate, right_db: forward(y, sample_rate, -torch.as_tensor(right_db))
    trim.tail_samples = lambda sample_rate, inverse, **params: 0
    trim.correction_text = lambda estimated: f"right {-estimated['right_db']:+.1f} dB"
    return trim


def test_adding_an_entry_is_all_the_chain_needs():
    trim = trim_effect()
    chain = Chain(SR, effects=(*EFFECTS, trim))
    assert chain.effect_names[-1] == "trim" and chain.processing_order.index("trim") == \
        chain.processing_order.index("gain") + 1
    params = chain.sample_params(2, torch.Generator().manual_seed(4))
    for effect in params.values():
        effect["present"] = torch.ones(2)
    degraded = chain(MUSIC, params)
    expected = MUSIC
    for module in registry.in_processing_order(chain.effects):
        expected = module.forward(expected, SR, **{k: v for k, v in params[module.SPEC.name].items() if k != "present"})
    assert snr_db(degraded, expected) >= 40  # the compressor follows the stages: fused rounding moved by its gain
    linear_only = only({k: dict(v) for k, v in params.items()},
                       *(m.SPEC.name for m in chain.effects if m.ROLE.linear == "both"))
    assert snr_db(chain.inverse(chain(MUSIC, linear_only), linear_only), MUSIC) >= 100
    back = chain.from_json(json.dumps(chain.to_json(params)))
    assert torch.allclose(back["trim"]["right_db"], params["trim"]["right_db"], atol=1e-4)
    presence, normalised = chain.to_vectors(params)
    assert presence.shape == (2, len(EFFECTS) + 1) and normalised.shape == (2, len(chain.flat_params))
    # the rest of the chain's draws are as they were: the new effect draws from a generator of its own
    before = Chain(SR).sample_params(2, torch.Generator().manual_seed(4))
    drawn = Chain(SR, effects=(*EFFECTS, trim)).sample_params(2, torch.Generator().manual_seed(4))
    assert all(torch.equal(before[e][k], drawn[e][k]) for e in before for k in before[e])


def test_a_chain_and_a_model_holding_one_can_be_copied_and_pickled():
    model = copy.deepcopy(ParamEstimator(SR, width=4, hidden=16, n_mels=32, n_bands=32, n_lag_bins=16,
                                         effects=["eq", "echo"]))
    chain = pickle.loads(pickle.dumps(model.chain))
    assert chain.estimated == ("eq", "echo") and chain.effects == Chain(SR).effects


def test_json_written_before_an_effect_joined_reads_it_as_absent():
    chain = Chain(SR)
    item = chain.to_json(chain.sample_params(1, torch.Generator().manual_seed(5)))[0]
    del item["stereo"]
    params = chain.from_json([item])
    assert float(params["stereo"]["present"]) == 0 and float(params["stereo"]["width_db"]) == NEUTRAL["width_db"]
    with pytest.raises(ValueError, match=r"unknown effects \['tape'\]"):
        chain.from_json([{**item, "tape": {"present": True}}])


# -- the generator and the prior -----------------------------------------------------------------


@pytest.mark.parametrize("prior", [DrawPrior(), DrawPrior(presence={"eq": 0.5}, clean_share=0.3)])
def test_the_other_effects_and_later_draws_are_as_before_stereo_joined(prior):
    without = Chain(SR, effects=[m for m in EFFECTS if m is not stereo])
    for seed in range(3):
        generators = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        now, before = prior.sample(Chain(SR), 16, generators[0]), prior.sample(without, 16, generators[1])
        assert all(torch.equal(before[e][k], now[e][k]) for e in before for k in before[e])
        assert torch.equal(generators[0].get_state(), generators[1].get_state())  # what is drawn next, too
    drawn = [Chain(SR).sample_params(64, torch.Generator().manual_seed(seed))["stereo"]["width_db"] for seed in (0, 1)]
    assert not torch.equal(*drawn)  # its own draws follow the seed


def test_stereo_is_drawn_as_a_mix_differs_from_its_master():
    params = Chain(SR).sample_params(4000, torch.Generator().manual_seed(6))["stereo"]
    assert float(params["present"].mean()) == pytest.approx(stereo.SPEC.presence_probability, abs=0.03)
    width, low, balance = params["width_db"], params["low_width_db"], params["balance_db"]
    assert float((width < -2).float().mean()) > 0.3 and float((width > 2).float().mean()) > 0.2  # narrow, wide
    assert float((low == 0).float().mean()) == pytest.approx(0.5, abs=0.05) and float(low.min()) >= 0
    assert float(low.max()) > 6 and float(balance.abs().max()) > 2 and float(balance.std()) < 2


def test_a_mono_item_is_labelled_without_stereo():
    chain = Chain(SR)
    prior = DrawPrior(presence={name: 1.0 for name in chain.effect_names}, audible_db=-40.0)
    _, params = prior.degrade(chain, MUSIC[:, :1], torch.Generator().manual_seed(7))
    assert float(params["stereo"]["present"].max()) == 0.0


def test_demaster_writes_stereo_in_the_parameter_files(tmp_path):
    source = tmp_path / "music"
    source.mkdir()
    sf.write(source / "song.wav", music_like(1.0, SR, 2, seed=8).T.numpy(), SR)
    assert main(["demaster", str(source), "-o", str(tmp_path / "out"), "--no-spectrograms", "--seed", "3"]) == 0
    record = json.loads(next((tmp_path / "out" / "output_txt").glob("*.json")).read_text())
    assert set(record["params"]["stereo"]) == {"present", *stereo.SPEC.names}
    text = next((tmp_path / "out" / "output_txt").glob("*.txt")).read_text()
    assert "Stereo:" in text


# -- the shipped weights -------------------------------------------------------------------------


def test_the_shipped_weights_load_and_do_not_estimate_stereo():
    model = resolve_model(None)
    assert "stereo" not in model.chain.estimated and set(model.chain.estimated) < set(model.chain.effect_names)
    assert model.presence_head.out_features == len(model.chain.estimated)
    clip = music_like(3.0, SR, 2, seed=9)
    narrowed = stereo.forward(clip[None], SR, width_db=-8.0)[0]
    result = master(narrowed.numpy(), SR)
    reported = result.report["effects"]["stereo"]
    assert reported["correction"] == NOT_ESTIMATED and reported["presence_probability"] == 0
    assert not reported["applied"] and reported["correction_strength"] == 0
    again = master(narrowed.numpy(), SR, report=result.report)  # the report reads back, stereo absent
    np.testing.assert_allclose(again.audio, result.audio, atol=1e-4)  # the report rounds the estimate
    kept = master(narrowed.numpy(), SR, keep="stereo")  # a name of the chain: accepted, nothing to keep
    np.testing.assert_array_equal(kept.audio, result.audio)
