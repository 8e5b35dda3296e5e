"""Reference matching (:mod:`dmaster.mastering.reference`): shapes, errors, identity, the refinement and the
benchmark's pieces (the example runs in tests/test_examples.py)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmaster.effects import eq
from dmaster.loudness import integrated_loudness
from dmaster.mastering.image import apply_image
from dmaster.mastering.level import set_level
from dmaster.mastering.pretrained import resolve_model
from dmaster.mastering.reference import REFERENCE_LIMIT_DB, REFERENCE_TRUST, match_reference, prepare_reference
from dmaster.mastering.tone import MATCH_RANGE_HZ, REFINE_STEPS, spectrum_loss
from dmaster.metrics import mrstft_distance
from dmaster.residual import band_centres_hz
from dmaster.synth import music_like

RATE = 44100
BENCHMARK = Path(__file__).parent.parent / "benchmarks" / "reference_match.py"


@pytest.fixture(scope="module")
def model():
    return resolve_model(None)


@pytest.fixture(scope="module")
def mix() -> torch.Tensor:
    return music_like(3.0, RATE, 2, seed=5)


def treble_ratio(audio: torch.Tensor) -> float:
    """Power above 4 kHz over the power below it."""
    spectrum = torch.fft.rfft(audio.mean(0).double()).abs().square()
    frequencies = torch.fft.rfftfreq(audio.shape[-1], 1 / RATE)
    return float(spectrum[frequencies > 4000].sum() / spectrum[frequencies <= 4000].sum())


@pytest.mark.parametrize("seconds, channels", [(1.0, 2), (6.0, 2), (3.0, 1)])
def test_reference_of_other_length_and_channels(model, mix, seconds, channels):
    reference = music_like(seconds, RATE, channels, seed=7)
    out, report = match_reference(mix, reference, model)
    assert out.shape == mix.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
    json.dumps(report)  # JSON-ready
    assert set(report["input_estimate"]) == set(report["reference_estimate"]) == set(model.chain.effect_names)
    as_played = reference.expand(2, -1) if channels == 1 else reference  # a mono reference plays on both speakers
    assert report["reference_loudness_lufs"] == pytest.approx(integrated_loudness(as_played, RATE), abs=0.01)
    assert len(report["correction"]["eq_curve_db"]) == 40


def test_reference_at_another_rate_is_resampled(tmp_path):
    reference = music_like(2.0, 22050, 1, seed=3)
    prepared = prepare_reference(reference.numpy()[0], 22050, RATE)
    assert prepared.shape == (1, 2 * RATE)
    sf.write(tmp_path / "reference.wav", reference.T.numpy(), 22050)
    assert prepare_reference(tmp_path / "reference.wav", None, RATE).shape == (1, 2 * RATE)


@pytest.mark.parametrize("bad, message", [(torch.zeros(2, RATE), "reference is silent"),
                                          (torch.full((2, RATE), float("nan")), "reference contains NaN"),
                                          (torch.ones(2, 10), "reference is 0.000 s long")])
def test_unusable_reference_is_named(model, mix, bad, message):
    with pytest.raises(ValueError, match=message):
        match_reference(mix, bad, model)
    with pytest.raises(ValueError, match=message):
        prepare_reference(bad, RATE, RATE)


def test_bad_settings(model, mix):
    with pytest.raises(ValueError, match="amount"):
        match_reference(mix, mix, model, amount=1.5)
    with pytest.raises(ValueError, match="steps must be a non-negative integer"):
        match_reference(mix, mix, model, steps=-1)
    with pytest.raises(ValueError, match="keep: unknown effect"):
        match_reference(mix, mix, model, keep=("chorus",))
    with pytest.raises(ValueError, match="parameter model"):
        match_reference(mix, mix, "unet")


def test_identical_reference_leaves_the_mix_alone(model, mix):
    out, report = match_reference(mix, mix, model)
    curve = np.array(list(report["correction"]["eq_curve_db"].values()))
    assert np.abs(curve).max() < 0.5 and abs(report["correction"]["gain_db"]) < 0.1
    levelled = set_level(out, RATE, report["reference_loudness_lufs"], -1.0)[0]
    assert float(mrstft_distance(levelled[None], mix[None])) < 0.1


def test_bright_reference_makes_the_mix_brighter_and_the_refinement_lowers_its_loss(model, mix):
    reference = eq.forward(music_like(3.0, RATE, 2, seed=9)[None], RATE, high_shelf_hz=3000.0,
                           high_shelf_gain_db=10.0, high_shelf_q=0.7)[0]
    out, report = match_reference(mix, reference, model)
    # the property is brighter; by how much is the model's (the refinement's work: unrefined it barely moves)
    assert treble_ratio(out) > 1.3 * treble_ratio(mix)
    refinement = report["refinement"]
    assert refinement["applied"] and refinement["spectrum_loss_db2_after"] < refinement["spectrum_loss_db2_before"]
    swapped, _ = match_reference(mix, reference, model, steps=0)
    assert treble_ratio(out) > treble_ratio(swapped)  # the refinement moves towards the reference


def test_the_refinement_takes_at_most_its_limited_share_of_the_spectral_difference(model, mix):
    # a 10 dB shelf and other music: far more difference than any band may pull the curve
    reference = eq.forward(music_like(3.0, RATE, 2, seed=9)[None], RATE, high_shelf_hz=3000.0,
                           high_shelf_gain_db=10.0, high_shelf_q=0.7)[0]
    curves = [np.array(list(match_reference(mix, reference, model, steps=REFINE_STEPS if refine else 0)[1]
                            ["correction"]["eq_curve_db"].values())) for refine in (False, True)]
    inside = (band_centres_hz() >= MATCH_RANGE_HZ[0]) & (band_centres_hz() <= MATCH_RANGE_HZ[1])
    moved = (curves[1] - curves[0])[inside]
    moved -= moved.mean()
    # the slack: the parametric EQ fits the target curve only so well, and how well depends on the swap's curve
    assert 0.2 < np.abs(moved).max() <= REFERENCE_TRUST * REFERENCE_LIMIT_DB + 0.4


def test_amount_zero_is_the_identity_and_keeping_every_effect_leaves_only_the_image_matched(model, mix):
    reference = music_like(3.0, RATE, 2, seed=9) * 0.3
    out, report = match_reference(mix, reference, model, amount=0.0)
    torch.testing.assert_close(out, mix, atol=1e-5, rtol=0)
    assert not report["refinement"]["applied"] and not any(report["image"]["side_db"].values())
    out, report = match_reference(mix, reference, model, keep=("eq", "gain", "compressor"))
    image = report["image"]
    side_db = torch.tensor(list(image["side_db"].values()))
    torch.testing.assert_close(out, apply_image(mix, RATE, side_db, image["balance_db"]), atol=1e-3, rtol=0)
    assert report["swapped"] == [] and any(image["side_db"].values())


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-60, 20), min_size=40, max_size=40), st.lists(st.floats(-60, 20), min_size=40, max_size=40),
       st.floats(-30, 30))
def test_spectrum_loss_ignores_the_level(a, b, offset):
    a, b = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    assert float(spectrum_loss(a, b)) >= 0 and float(spectrum_loss(a, a + offset)) == pytest.approx(0, abs=1e-9)
    assert float(spectrum_loss(a + offset, b)) == pytest.approx(float(spectrum_loss(a, b)), rel=1e-9, abs=1e-9)


def test_benchmark_protocol_pieces(tmp_path, monkeypatch):
    pytest.importorskip("pedalboard")
    spec = importlib.util.spec_from_file_location("reference_match", BENCHMARK)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    track = music_like(22.0, RATE, 2, seed=4)
    a, b = bench.passages(track)
    assert a.shape == b.shape == (2, 10 * RATE) and not torch.equal(a, b)
    style = bench.draw_style(np.random.default_rng(0))
    assert bench.apply_style(a, style).shape == a.shape
    # the tonal oracle: a style's EQ undone by its inverse filters, and another's put in its place
    other = bench.draw_style(np.random.default_rng(1))
    torch.testing.assert_close(bench.swap_tone(a, style, style), a, atol=1e-3, rtol=0)
    equalised = torch.from_numpy(bench.pedalboard.Pedalboard(bench.style_eq(style))(a.numpy(), RATE))
    torch.testing.assert_close(bench.swap_tone(equalised, style, other),
                               torch.from_numpy(bench.pedalboard.Pedalboard(bench.style_eq(other))(a.numpy(), RATE)),
                               atol=1e-3, rtol=0)
    monkeypatch.setattr(bench, "DOCS", tmp_path / "reference.md")
    (tmp_path / "reference.md").write_text(f"# R\n\n{bench.BEGIN}\nold\n{bench.END}\n\nafter\n")
    bench.write_docs("| new table |")
    text = (tmp_path / "reference.md").read_text()
    assert "| new table |" in text and "old" not in text and text.endswith("after\n")
