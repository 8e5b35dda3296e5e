"""The level promises, checked on meters dmaster did not write (tests/meters.py): the true-peak ceiling on every
path and format, every loudness target in range, reports that describe their audio, and settings refused by name."""

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meters import ebur128_loudness, ebur128_peak_db, honest_peak_db

import dmaster
from dmaster.audio import save_audio
from dmaster.checkpoint import save_checkpoint
from dmaster.cli import main
from dmaster.mastering import chunks
from dmaster.mastering.inputs import TARGET_RANGE_LUFS
from dmaster.mastering.level import set_level
from dmaster.synth import music_like

SR = 44100
FORMATS = ("wav", "wav24", "wav16", "flac")


def _signal(kind: str, seed: int, sample_rate: int) -> torch.Tensor:
    """1 s of stereo audio of one kind: music, near-Nyquist tones, or white noise."""
    generator = np.random.default_rng(seed)
    if kind == "music":
        return music_like(1.0, sample_rate, 2, seed=seed)
    t = np.arange(sample_rate) / sample_rate
    if kind == "tones":  # partials up to 0.49 of the rate, where meters' interpolators differ most
        hz = generator.uniform(0.3, 0.49, 4) * sample_rate
        phases = generator.uniform(0, 2 * np.pi, (2, 4, 1))
        tones = np.sin(2 * np.pi * hz[None, :, None] * t + phases).sum(1)
        return torch.from_numpy(0.2 * tones).float()
    return torch.from_numpy(0.3 * generator.standard_normal((2, sample_rate))).float()


def _written(tmp_path, audio: torch.Tensor, sample_rate: int, output_format: str) -> np.ndarray:
    """``audio`` written in ``output_format`` and read back ``(channels, samples)``: the quantised file's samples."""
    path = tmp_path / f"out{'.flac' if output_format == 'flac' else '.wav'}"
    save_audio(path, audio, sample_rate, output_format)
    return sf.read(path, dtype="float64", always_2d=True)[0].T


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["music", "tones", "noise"]), seed=st.integers(0, 10_000),
       sample_rate=st.sampled_from([44100, 48000, 96000]), target=st.one_of(st.none(), st.floats(-24.0, -6.0)),
       ceiling=st.floats(-3.0, -0.1), output_format=st.sampled_from(FORMATS))
def test_the_true_peak_ceiling_holds_on_independent_meters(tmp_path, kind, seed, sample_rate, target, ceiling,
                                                           output_format):
    audio = _signal(kind, seed, sample_rate)
    out, report = set_level(audio, sample_rate, target, ceiling, normalise_peak=target is None, true_peak=True)
    written = _written(tmp_path, out, sample_rate, output_format)
    assert honest_peak_db(written) <= ceiling
    assert ebur128_peak_db(written, sample_rate) <= ceiling
    if target is not None:  # the report describes the audio; a target it misses by more than 0.5 LU, it says so
        assert ebur128_loudness(written, sample_rate) == pytest.approx(report["loudness_lufs"], abs=0.1)
        assert ("target_missed" in report) == (abs(report["loudness_lufs"] - target) > 0.5)


def test_the_streaming_example_meets_minus_one_dbtp_on_every_meter(tmp_path, estimator):
    # the README's streaming example (-14 LUFS, -1 dBTP, CD format) and the loud case (-10 LUFS)
    sf.write(tmp_path / "m.wav", music_like(4.0, SR, channels=2, seed=12).numpy().T, SR, subtype="FLOAT")
    save_checkpoint(tmp_path / "param.pt", estimator, "param", {}, step=0)
    for target, output_format in (("-14", "wav16"), ("-10", "wav")):
        out = tmp_path / f"o{target}"
        assert main(["master", str(tmp_path / "m.wav"), "-o", str(out), "--model", str(tmp_path / "param.pt"),
                     "--target-lufs", target, "--true-peak", "--format", output_format, "--amount", "0"]) == 0
        audio = sf.read(out / "m_mastered.wav", dtype="float64", always_2d=True)[0].T
        assert honest_peak_db(audio) <= -1.0 and ebur128_peak_db(audio, SR) <= -1.0
        assert ebur128_loudness(audio, SR) == pytest.approx(float(target), abs=0.15)


def test_reference_mode_meets_the_true_peak_ceiling(estimator):
    loud = music_like(3.0, SR, 2, seed=4) * 2.0
    result = dmaster.master(music_like(3.0, SR, 2, seed=1).numpy(), SR, model=estimator, reference=loud.numpy(),
                            true_peak=True, target_lufs=-9.0)
    assert honest_peak_db(result.audio) <= -1.0 and ebur128_peak_db(result.audio, SR) <= -1.0


@pytest.mark.parametrize("target", TARGET_RANGE_LUFS)
def test_both_ends_of_the_target_range_are_reached(target):
    t = np.arange(3 * SR) / SR  # a sine has the lowest crest factor: 0 LUFS is within a limiter's reach
    audio = torch.from_numpy(np.tile(0.5 * np.sin(2 * np.pi * 997 * t), (2, 1))).float()
    out, report = set_level(audio, SR, target, 0.0)
    assert "target_missed" not in report
    assert ebur128_loudness(out, SR) == pytest.approx(target, abs=0.1)


@pytest.mark.parametrize("target", [-70.0, -60.5, 0.5])
def test_a_target_outside_the_range_is_refused_by_name(target):
    with pytest.raises(ValueError, match=r"target_lufs must lie in \[-60, 0\]"):
        dmaster.master(music_like(1.0, SR, 2, seed=0).numpy(), SR, target_lufs=target)


def test_a_target_the_limiter_cannot_reach_is_reported_missed_with_its_reason():
    out, report = set_level(music_like(2.0, SR, 2, seed=0), SR, 0.0, -1.0, true_peak=True)  # reaches about -9
    assert "at most 12 dB off a peak" in report["target_missed"]
    assert report["loudness_lufs"] == pytest.approx(ebur128_loudness(out, SR), abs=0.1)


def test_loudness_before_of_audio_under_the_gate_is_reported_as_unmeasurable():
    hiss = torch.randn(2, 3 * SR, generator=torch.Generator().manual_seed(0)) * 10 ** (-85 / 20)
    out, report = set_level(hiss, SR, -14.0, -1.0, true_peak=True)
    assert report["loudness_before_lufs"] is None  # not the loudness after scaling to the ceiling
    assert report["loudness_lufs"] == pytest.approx(-14.0, abs=0.1) and honest_peak_db(out) <= -1.0
    json.dumps(report, allow_nan=False)


@pytest.mark.parametrize("scale, message", [(1e-40, "below -200 dBFS"), (1e30, "scale it to full scale")])
@pytest.mark.parametrize("options", [{"normalise_peak": True}, {"target_lufs": -14.0}, {}])
def test_denormal_and_huge_input_is_refused_not_turned_into_inf(scale, message, options):
    audio = (music_like(1.0, SR, 2, seed=3).numpy() * scale).astype(np.float32)
    with pytest.raises(ValueError, match=message):
        dmaster.master(audio, SR, **options)


@settings(max_examples=8, deadline=None)
@given(level_db=st.floats(-190.0, 110.0))
def test_every_level_in_range_gives_finite_output(level_db):
    audio = music_like(0.5, SR, 2, seed=2).numpy() * 10 ** (level_db / 20)
    result = dmaster.master(audio.astype(np.float32), SR, normalise_peak=True, amount=0.0)
    assert np.isfinite(result.audio).all() and math.isfinite(result.report["output"]["peak_normalisation_db"])


@pytest.mark.parametrize("options, name", [
    ({"keep": None}, "keep"), ({"normalise_peak": "False"}, "normalise_peak"), ({"true_peak": "no"}, "true_peak"),
    ({"correct_residual": 1}, "correct_residual"), ({"ambience": True}, "ambience"),
    ({"reference_sample_rate": 1000, "reference": "r"}, "reference_sample_rate"),
    ({"reference_sample_rate": 48000.7, "reference": "r"}, "reference_sample_rate"),
    ({"reference_sample_rate": "48000", "reference": "r"}, "reference_sample_rate"),
])
def test_every_setting_is_checked_by_name(options, name):
    clip = music_like(1.0, SR, 2, seed=3).numpy()
    if options.get("reference") == "r":
        options = {**options, "reference": clip}
    with pytest.raises(ValueError, match=name):
        dmaster.master(clip, SR, **options)


def test_a_read_only_array_is_taken_without_warnings(recwarn):
    clip = music_like(1.0, SR, 2, seed=3).numpy()
    clip.flags.writeable = False
    dmaster.master(clip, SR, amount=0.0)
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def test_a_mono_reference_is_measured_as_it_plays_on_both_speakers(estimator):
    mono = music_like(2.0, SR, 1, seed=6)
    result = dmaster.master(music_like(2.0, SR, 2, seed=1).numpy(), SR, model=estimator, reference=mono[0].numpy())
    on_both = mono.expand(2, -1)  # the loudness the stereo output is matched to
    assert result.report["output"]["target_lufs"] == pytest.approx(ebur128_loudness(on_both, SR), abs=0.1)
    assert ebur128_loudness(result.audio, SR) == pytest.approx(result.report["output"]["loudness_lufs"], abs=0.1)


def test_a_dc_only_or_folder_reference_is_refused_by_name(tmp_path, estimator):
    clip = music_like(1.0, SR, 2, seed=3).numpy()
    with pytest.raises(ValueError, match="reference is silent"):
        dmaster.master(clip, SR, model=estimator, reference=np.full((2, SR), 0.5, np.float32))
    with pytest.raises(ValueError, match="is a folder"):
        dmaster.master(clip, SR, model=estimator, reference=tmp_path)


def test_a_silent_input_in_reference_mode_is_named_as_the_input(estimator):
    quiet = music_like(1.0, SR, 2, seed=3).numpy() * 1e-5
    with pytest.raises(ValueError, match=r"the input \(audio\) is silent"):
        dmaster.master(quiet, SR, model=estimator, reference=music_like(1.0, SR, 2, seed=4).numpy())


def test_a_long_track_is_limited_in_chunks_without_seams(monkeypatch):
    audio = music_like(12.0, SR, 2, seed=1) * 0.5
    whole, report = set_level(audio, SR, -10.0, -1.0, true_peak=True)
    monkeypatch.setattr(chunks, "ONE_PASS_SECONDS", 4.0)
    monkeypatch.setattr(chunks, "CHUNK_SECONDS", 3.0)
    monkeypatch.setattr(chunks, "CHUNK_MARGIN_SECONDS", 1.0)
    cut, again = set_level(audio, SR, -10.0, -1.0, true_peak=True)
    assert report["peak_limiting_db"] < -3 and again == report
    torch.testing.assert_close(cut, whole, atol=1e-6, rtol=0)
