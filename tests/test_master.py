"""master(), the master/demo/evaluate commands, on small untrained models (shape and
contract tests; the shipped models' quality is measured in benchmarks/quality.py)."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from dmaster import Chain
from dmaster.checkpoint import save_checkpoint
from dmaster.cli import main
from dmaster.limiter import peak_db
from dmaster.loudness import integrated_loudness
from dmaster.mastering import MasterResult, chunks, level, master, pretrained
from dmaster.mastering.estimation import WHOLE_SECONDS, aggregate, analysis_windows, model_windows
from dmaster.mastering.level import set_level
from dmaster.mastering.pretrained import POLICY_SUFFIX, RESIDUAL_SUFFIX, Policy, load_policy, save_policy
from dmaster.mastering.restoration import MIN_PRESENCE, correction_strengths, filter_with, invert, restore
from dmaster.residual import ResidualCorrection, extra_response
from dmaster.synth import music_like

SR = 44100


CLIP = music_like(3.0, SR, 2, seed=5)


@pytest.mark.parametrize("layout", ["numpy stereo", "torch stereo", "numpy mono", "torch mono", "float64"])
def test_output_keeps_type_layout_and_length(estimator, layout):
    audio = {"numpy stereo": CLIP.numpy(), "torch stereo": CLIP, "numpy mono": CLIP[0].numpy(),
             "torch mono": CLIP[0], "float64": CLIP.double().numpy()}[layout]
    result = master(audio, SR, model=estimator)
    assert isinstance(result, MasterResult) and result.sample_rate == SR
    assert type(result.audio) is type(audio)
    assert result.audio.shape == audio.shape and result.audio.dtype == audio.dtype
    assert np.isfinite(np.asarray(result.audio)).all()


@pytest.mark.parametrize("ceiling", [-1.0, -6.0])
def test_peak_never_exceeds_the_ceiling(estimator, ceiling):
    loud = CLIP * 3.0
    result = master(loud, SR, model=estimator, peak_ceiling_db=ceiling)
    assert float(result.audio.abs().max()) <= 10 ** (ceiling / 20) + 1e-6


def test_restored_level_is_kept_unless_the_peak_is_normalised(estimator):
    quiet = CLIP * 1e-3
    kept = master(quiet, SR, model=estimator, peak_ceiling_db=0.0)
    restored = restore(estimator, quiet).audio
    torch.testing.assert_close(kept.audio, restored, rtol=1e-5, atol=1e-7)
    result = master(quiet, SR, model=estimator, peak_ceiling_db=-3.0, normalise_peak=True)
    assert float(result.audio.abs().max()) == pytest.approx(10 ** (-3 / 20), rel=1e-4)
    assert "peak_normalisation_db" in result.report["output"]


def test_loudness_normalisation_reaches_the_target(estimator):
    result = master(CLIP * 0.1, SR, model=estimator, target_lufs=-23.0, peak_ceiling_db=0.0)
    assert integrated_loudness(result.audio, SR) == pytest.approx(-23.0, abs=0.1)
    assert result.report["output"]["loudness_lufs"] == pytest.approx(-23.0, abs=0.1)


@pytest.mark.parametrize("ceiling_db", [-1.0, -3.0])
def test_the_loudness_target_is_reached_with_the_peaks_limited(ceiling_db):
    audio = music_like(4.0, SR, 2, seed=11)
    audio[:, SR::SR] = 0.9  # clicks: normalising to -14 LUFS puts them over the ceiling
    limited, report = set_level(audio, SR, -14.0, ceiling_db)
    assert float(limited.abs().max()) <= 10 ** (ceiling_db / 20)
    assert report["peak_limiting_db"] < 0 and "peak_reduction_db" not in report
    assert integrated_loudness(limited, SR) == pytest.approx(-14.0, abs=0.1) == report["loudness_lufs"]
    turned_down, _ = set_level(audio, SR, None, ceiling_db)  # without a target the level is kept, under the ceiling
    assert float(turned_down.abs().max()) <= 10 ** (ceiling_db / 20)
    assert torch.allclose(turned_down / turned_down.abs().max(), audio / audio.abs().max())


def test_a_true_peak_ceiling_counts_the_peaks_between_samples():
    audio = music_like(4.0, SR, 2, seed=12)
    for target_lufs in (None, -12.0):
        out, report = set_level(audio, SR, target_lufs, -1.0, true_peak=True)
        assert report["true_peak"] and peak_db(out, true_peak=True) <= -1.0 + 0.05


def test_the_limiter_stops_short_of_crushing_the_audio():
    audio = music_like(4.0, SR, 2, seed=11)
    limited, report = set_level(audio, SR, -6.0, -6.0)  # a peak-to-loudness ratio of 0 dB: unreachable
    assert report["peak_limiting_db"] == pytest.approx(-level.MAX_LIMITING_DB)
    assert report["loudness_lufs"] == pytest.approx(integrated_loudness(limited, SR), abs=0.01)
    assert report["loudness_lufs"] < -6.5


def test_short_and_long_inputs(estimator, unet):
    short = CLIP[:, : SR // 4]  # shorter than one analysis window
    assert master(short, SR, model=estimator).audio.shape == short.shape
    for samples in (1, 100):  # shorter than the reverb inverse's STFT frame; the shipped models invert everything
        for model in ("param", "unet"):
            assert torch.isfinite(master(CLIP[:, :samples], SR, model=model).audio).all()
    long = music_like(25.0, SR, 2, seed=6)  # many windows; the U-Net runs in cross-faded chunks
    assert master(long, SR, model=estimator).audio.shape == long.shape
    assert master(long, SR, model=unet).audio.shape == long.shape


def test_other_sample_rates_and_channel_counts(estimator, unet):
    at_22k = music_like(3.0, 22050, 2, seed=7)
    assert master(at_22k, 22050, model=estimator).audio.shape == at_22k.shape
    surround = torch.cat([CLIP, CLIP * 0.5, CLIP[:1]])  # 5 channels
    assert master(surround, SR, model=estimator).audio.shape == surround.shape
    assert master(surround, SR, model=unet).audio.shape == surround.shape


def test_params_are_readable_json(estimator):
    result = master(CLIP, SR, model=estimator)
    decoded = json.loads(result.to_json())
    assert set(decoded["effects"]) == set(Chain(SR).effect_names)
    echo = decoded["effects"]["echo"]
    assert 0.0 <= echo["presence_probability"] <= 1.0
    assert echo["estimated"]["delay_ms"]["unit"] == "ms"
    assert 20.0 <= echo["estimated"]["delay_ms"]["value"] <= 800.0
    assert isinstance(echo["correction"], str)
    for effect in decoded["effects"].values():  # the inverse is weighted by the presence probability
        probability, strength = effect["presence_probability"], effect["correction_strength"]
        assert strength == (probability if probability >= MIN_PRESENCE else 0.0)
        assert effect["applied"] == (strength > 0) and (effect["correction"] == "none") == (strength == 0)


def test_correction_strengths_follow_presence():
    params = {"echo": {"present": torch.tensor([0.01, 0.3, 1.0]), "delay_ms": torch.full((3,), 100.0)}}
    weights = correction_strengths(params)["echo"]
    assert weights["present"].tolist() == pytest.approx([0.0, 0.3, 1.0])
    assert torch.equal(weights["delay_ms"], params["echo"]["delay_ms"])
    assert correction_strengths(params, {"echo": 0.5})["echo"]["present"].tolist() == pytest.approx([0.0, 0.15, 0.5])
    assert correction_strengths(params, {"reverb": 0.0})["echo"]["present"].tolist() == pytest.approx([0.0, 0.3, 1.0])


def test_inverse_strengths_next_to_the_checkpoint_are_applied(tmp_path, estimator, capsys):
    checkpoint = tmp_path / "param.pt"
    save_checkpoint(checkpoint, estimator, "param", {}, step=0)
    full = master(CLIP, SR, model=checkpoint)
    nothing = Policy(dict.fromkeys(estimator.chain.effect_names, 0.0), {})
    save_policy(tmp_path / f"param{POLICY_SUFFIX}", nothing, "test")
    untouched = master(CLIP, SR, model=str(checkpoint))
    for name, effect in untouched.report["effects"].items():
        assert effect["inverse_strength"] == 0.0 and not effect["applied"] and effect["correction"] == "none"
        assert full.report["effects"][name]["inverse_strength"] == 1.0
    scale = untouched.audio.abs().max() / CLIP.abs().max()  # no inverse at all: only the peak ceiling's level step
    torch.testing.assert_close(untouched.audio, CLIP * scale, rtol=1e-4, atol=1e-6)
    save_policy(tmp_path / f"param{POLICY_SUFFIX}", Policy({"compressor": 0.5}, {}), "test")
    half = master(CLIP, SR, model=checkpoint).report["effects"]
    assert half["compressor"]["correction_strength"] == pytest.approx(
        0.5 * half["compressor"]["presence_probability"], abs=1e-4)
    assert half["echo"]["inverse_strength"] == 1.0
    capsys.readouterr()
    assert main(["demo", "-o", str(tmp_path / "demo"), "--model", str(checkpoint), "--seconds", "2"]) == 0
    compressor_row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("compressor"))
    assert compressor_row.endswith("(the model's inverse strength for it: 0.5)")


def test_kept_effects_are_left_in(tmp_path, estimator, unet, checkpoints, capsys):
    result = master(CLIP, SR, model=estimator, keep=("echo", "reverb"))
    assert result.report["kept"] == ["echo", "reverb"]
    for name, effect in result.report["effects"].items():
        kept = name in ("echo", "reverb")
        assert (effect["inverse_strength"] == 0.0) == kept and (kept <= (effect["correction"] == "none"))
    with pytest.raises(ValueError, match="keep: unknown effect 'flanger'; effects are eq, gain"):
        master(CLIP, SR, model=estimator, keep=["flanger"])
    with pytest.raises(ValueError, match="keep needs the parameter model"):
        master(CLIP, SR, model=unet, keep=["echo"])
    sf.write(tmp_path / "song.wav", CLIP.T.numpy(), SR)
    song, out = str(tmp_path / "song.wav"), str(tmp_path / "out")
    assert main(["master", song, "-o", out, "--model", str(checkpoints / "param.pt"), "--keep", "reverb"]) == 0
    assert json.loads((tmp_path / "out" / "song_mastered.json").read_text())["kept"] == ["reverb"]
    assert main(["master", song, "-o", out, "--model", str(checkpoints / "unet.pt"), "--keep", "reverb"]) == 2
    assert "keep needs the parameter model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["master", song, "-o", out, "--keep", "flanger"])
    assert "invalid choice: 'flanger'" in capsys.readouterr().err


def test_amount_scales_the_whole_correction(tmp_path, checkpoints, unet, capsys):
    checkpoint = param_with_a_level_correction(tmp_path, checkpoints, 3.0)
    full, half = (master(CLIP, SR, model=checkpoint, amount=amount, peak_ceiling_db=0.0) for amount in (1.0, 0.5))
    assert half.report["amount"] == 0.5 and full.report["amount"] == 1.0
    for name, effect in half.report["effects"].items():
        assert effect["inverse_strength"] == 0.5 * full.report["effects"][name]["inverse_strength"]
    assert half.report["residual_correction"]["level_db"] == pytest.approx(
        0.5 * full.report["residual_correction"]["level_db"])
    for model in (checkpoint, unet):  # nothing applied: the input comes back (through the unit filter)
        untouched = master(CLIP, SR, model=model, amount=0.0, peak_ceiling_db=0.0).audio
        assert torch.allclose(untouched, CLIP, atol=1e-5)
    again = master(CLIP, SR, model=checkpoint, report=half.report, amount=0.5, peak_ceiling_db=0.0)
    assert again.report["residual_correction"]["level_db"] == pytest.approx(
        0.25 * full.report["residual_correction"]["level_db"])  # a report's correction is scaled again
    with pytest.raises(ValueError, match=r"amount must lie in \[0, 1\], got 1.5"):
        master(CLIP, SR, model=checkpoint, amount=1.5)
    sf.write(tmp_path / "song.wav", CLIP.T.numpy(), SR)
    assert main(["master", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), "--model", str(checkpoint),
                 "--amount", "0.3"]) == 0
    assert json.loads((tmp_path / "out" / "song_mastered.json").read_text())["amount"] == 0.3
    assert main(["master", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out2"), "--amount", "-1"]) == 2
    assert "amount must lie in [0, 1]" in capsys.readouterr().err


def test_an_earlier_report_is_applied_again(tmp_path, checkpoints, unet, capsys):
    checkpoint = param_with_a_level_correction(tmp_path, checkpoints, 3.0)
    save_policy(tmp_path / f"param{POLICY_SUFFIX}", Policy({"reverb": 0.5}, {"echo": [2.0, -1.0]}, 0.5), "test")
    first = master(CLIP, SR, model=checkpoint)
    again = master(CLIP, SR, model=checkpoint, report=json.loads(first.to_json()))
    torch.testing.assert_close(again.audio, first.audio, rtol=1e-3, atol=1e-4)  # the report rounds to 4 digits
    assert again.report["estimate_given"] and again.report["effects"] == first.report["effects"]
    assert again.report["residual_correction"] == first.report["residual_correction"]
    other_mix = CLIP.flip(-1)  # the same correction for another mix: not a new estimate
    reused = master(other_mix, SR, model=checkpoint, report=first.report)
    assert reused.report["effects"] == first.report["effects"]

    edited = json.loads(first.to_json())
    edited["effects"]["gain"].update(presence_probability=1.0, inverse_strength=1.0)
    edited["effects"]["gain"]["estimated"]["gain_db"]["value"] = -6.0
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    louder = master(CLIP, SR, model=checkpoint, report=tmp_path / "edited.json", peak_ceiling_db=0.0)
    assert louder.report["effects"]["gain"]["correction"] == "+6.0 dB"

    edited["effects"]["gain"]["estimated"]["gain_db"]["value"] = 99.0
    with pytest.raises(ValueError, match="gain_db"):
        master(CLIP, SR, model=checkpoint, report=edited)
    not_finite = json.loads(first.to_json())
    not_finite["residual_correction"]["level_db"] = float("nan")
    wrong_strength = json.loads(first.to_json())
    wrong_strength["effects"]["echo"]["inverse_strength"] = 2.0
    for bad, message in (({"model": "unet"}, "no 'effects'"), ({"effects": {"eq": {}}}, "malformed"),
                         (not_finite, "finite level"), (wrong_strength, r"strength of echo must lie in \[0, 1\]")):
        with pytest.raises(ValueError, match=message):
            master(CLIP, SR, model=checkpoint, report=bad)
    with pytest.raises(ValueError, match="U-Net has no parameters"):
        master(CLIP, SR, model=unet, report=first.report)
    with pytest.raises(ValueError, match="cannot read the report"):
        master(CLIP, SR, model=checkpoint, report=tmp_path / "missing.json")

    sf.write(tmp_path / "song.wav", CLIP.T.numpy(), SR)
    song, out = str(tmp_path / "song.wav"), tmp_path / "out"
    (tmp_path / "bad.json").write_text(json.dumps(edited))
    master_with = ["master", song, "-o", str(out), "--model", str(checkpoint), "--report"]
    assert main([*master_with, str(tmp_path / "bad.json")]) == 2
    assert "gain_db" in capsys.readouterr().err and not out.exists()
    (tmp_path / "first.json").write_text(first.to_json())
    assert main([*master_with, str(tmp_path / "first.json")]) == 0
    assert json.loads((out / "song_mastered.json").read_text())["effects"] == first.report["effects"]


@pytest.mark.parametrize("content, message", [
    ('{"strength": {"flanger": 0.5}}', "unknown effect 'flanger'"),
    ('{"strength": {"echo": 1.5}}', r"strength of echo must lie in \[0, 1\], got 1.5"),
    ('{"strengths": {}}', "not a policy file"),
    ('not json', "not a policy file"),
    ('{"strength": {}, "calibration": {"flanger": [1, 0]}}', "unknown effect 'flanger'"),
    ('{"strength": {}, "calibration": {"echo": [1]}}', r"echo must be \[a, b\] or \[a, b, c\], got 1"),
    ('{"strength": {}, "calibration": {"eq": [1, 0, 2]}}', r"eq must be \[a, b\], got 3"),
    ('{"strength": {}, "calibration": {"echo": 1}}', "not a policy file"),
    ('{"strength": {}, "calibration": {"echo": [NaN, 0]}}', "calibration values must be finite"),
    ('{"strength": {}, "residual": 2}', r"residual must lie in \[0, 1\], got 2.0"),
    ('{"strength": {}, "mask": -0.5}', r"mask must lie in \[0, 1\], got -0.5"),
    ('{"strength": {}, "threshold": {"echo": 1.5}}', r"threshold of echo must lie in \[0, 1\], got 1.5"),
    ('{"strength": {}, "threshold": {"flanger": 0.5}}', "unknown effect 'flanger'"),
])
def test_a_bad_policy_file_is_named(tmp_path, estimator, content, message):
    checkpoint = tmp_path / "param.pt"
    save_checkpoint(checkpoint, estimator, "param", {}, step=0)
    (tmp_path / f"param{POLICY_SUFFIX}").write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        master(CLIP, SR, model=checkpoint)
    assert "param.policy.json" in str(error.value)


def test_a_policy_round_trips_and_the_shipped_one_reads(tmp_path):
    policy = Policy({"eq": 0.25}, {"gain": [1.5, -0.5], "echo": [1.0, 0.5, 2.0]}, 0.75, {"echo": 0.7}, 0.5)
    save_policy(tmp_path / "p.json", policy, "test")
    assert load_policy(tmp_path / "p.json") == policy
    shipped = load_policy(pretrained.shipped_weights("param").with_name("param" + POLICY_SUFFIX))
    assert set(shipped.strength) <= set(Chain(SR).effect_names)
    unet = load_policy(pretrained.shipped_weights("unet").with_name("unet" + POLICY_SUFFIX))
    assert unet.strength == {} and 0.0 < unet.mask < 1.0  # the baseline at a fitted share of its trained change


def test_the_unet_policy_sets_its_mask_and_residual_strengths(tmp_path, unet):
    checkpoint = tmp_path / "unet.pt"
    save_checkpoint(checkpoint, unet, "unet", {}, step=0)
    level_only_correction(40 + 1, 20 * np.log10(2)).save(tmp_path / f"unet{RESIDUAL_SUFFIX}")
    quiet = CLIP * 1e-2
    full = master(quiet, SR, model=checkpoint, peak_ceiling_db=0.0)
    assert full.report["mask_strength"] == 1.0 and full.report["residual_correction"]["level_db"] == pytest.approx(
        6.02, abs=0.01)
    save_policy(tmp_path / f"unet{POLICY_SUFFIX}", Policy({}, {}, 0.5, {}, 0.0), "test")
    masked = master(quiet, SR, model=checkpoint, peak_ceiling_db=0.0)  # no mask: only half the level correction
    assert masked.report["mask_strength"] == 0.0
    torch.testing.assert_close(masked.audio, quiet * 10 ** (3.01 / 20), rtol=1e-3, atol=1e-6)
    save_policy(tmp_path / f"unet{POLICY_SUFFIX}", Policy({}, {}, 0.0, {}, 0.5), "test")
    half = master(quiet, SR, model=checkpoint, peak_ceiling_db=0.0, amount=0.5)
    assert half.report["mask_strength"] == 0.25 and "residual_correction" not in half.report
    torch.testing.assert_close(half.audio, unet(quiet[None], 0.25)[0], rtol=1e-4, atol=1e-6)


def test_an_effect_below_its_threshold_is_left_alone_and_the_report_says_so(tmp_path, estimator):
    checkpoint = tmp_path / "param.pt"
    save_checkpoint(checkpoint, estimator, "param", {}, step=0)
    plain = master(CLIP, SR, model=checkpoint).report["effects"]
    effects = [name for name, effect in plain.items() if effect["presence_probability"] > MIN_PRESENCE + 0.01]
    above, below = effects[::2], effects[1::2]
    assert above and below, plain
    threshold = {**{name: plain[name]["presence_probability"] + 0.01 for name in above},
                 **{name: plain[name]["presence_probability"] - 0.01 for name in below}}
    save_policy(tmp_path / f"param{POLICY_SUFFIX}", Policy({}, {}, 1.0, threshold), "test")
    gated = master(CLIP, SR, model=checkpoint)
    for name in above:  # less sure than its threshold: untouched, and the report's strength is the one applied
        assert gated.report["effects"][name]["inverse_strength"] == 0.0 and not gated.report["effects"][name]["applied"]
    for name in below:
        assert gated.report["effects"][name] == plain[name]
    again = master(CLIP, SR, model=checkpoint, report=json.loads(gated.to_json()))  # the report reproduces it
    torch.testing.assert_close(again.audio, gated.audio, rtol=1e-3, atol=1e-4)
    save_policy(tmp_path / f"param{POLICY_SUFFIX}", Policy({}, {}, 1.0, dict.fromkeys(plain, 0.0)), "test")
    torch.testing.assert_close(master(CLIP, SR, model=checkpoint).audio, master(CLIP, SR, model=estimator).audio)


def test_calibration_moves_presence_and_with_it_the_correction(tmp_path, estimator):
    checkpoint = tmp_path / "param.pt"
    save_checkpoint(checkpoint, estimator, "param", {}, step=0)
    plain = master(CLIP, SR, model=checkpoint).report["effects"]
    names = list(plain)
    save_policy(tmp_path / f"param{POLICY_SUFFIX}", Policy({}, {name: [1.0, -30.0] for name in names}), "test")
    off = master(CLIP, SR, model=checkpoint)
    for name in names:  # a calibration that says "absent" to everything leaves the audio alone
        assert off.report["effects"][name]["presence_probability"] < 1e-6
        assert not off.report["effects"][name]["applied"]
    scale = off.audio.abs().max() / CLIP.abs().max()
    torch.testing.assert_close(off.audio, CLIP * scale, rtol=1e-4, atol=1e-6)
    save_policy(tmp_path / f"param{POLICY_SUFFIX}", Policy({}, {name: [1.0, 0.0] for name in names}), "test")
    same = master(CLIP, SR, model=checkpoint).report["effects"]  # the identity calibration changes nothing
    for name in names:
        assert same[name]["presence_probability"] == pytest.approx(plain[name]["presence_probability"], abs=1e-4)


@pytest.mark.parametrize(
    "audio, message",
    [
        (torch.zeros(2, SR), "silence"),
        (torch.full((2, SR), float("nan")), "NaN"),
        (torch.zeros(2, 0), "empty"),
        (torch.zeros(2, 3, 100), r"\(samples,\) or \(channels, samples\)"),
        (torch.zeros(SR, 2) + 0.1, "not \\(samples, channels\\)"),
        ([0.1, 0.2], "numpy array or a torch tensor"),
    ],
)
def test_bad_input_is_rejected(estimator, audio, message):
    with pytest.raises((ValueError, TypeError), match=message):
        master(audio, SR, model=estimator)


def test_bad_options_are_rejected(estimator):
    with pytest.raises(ValueError, match="sample_rate"):
        master(CLIP, 100, model=estimator)
    with pytest.raises(ValueError, match="target_lufs"):
        master(CLIP, SR, model=estimator, target_lufs=5.0)
    with pytest.raises(FileNotFoundError, match="no model checkpoint"):
        master(CLIP, SR, model="does/not/exist.pt")


def test_a_short_track_is_heard_whole_a_long_one_in_windows(estimator, unet):
    short = music_like(7.0, SR, 1, seed=8)
    windows = model_windows(estimator, short)
    assert windows.shape == (1, 2, 7 * SR)
    torch.testing.assert_close(windows[0], short.expand(2, -1))
    samples = int(WHOLE_SECONDS * SR) + 1
    long = torch.full((2, 1), 0.5).expand(2, samples)  # a view: no memory
    assert model_windows(estimator, long).shape == (8, 2, 5 * SR)
    assert model_windows(unet, short).shape == (1, 2, 5 * SR)  # the U-Net's residual correction: 5 s windows


def test_windows_and_aggregation(estimator):
    windows = analysis_windows(music_like(20.0, SR, 2, seed=8), 5 * SR)
    assert windows.shape == (4, 2, 5 * SR)
    chain = estimator.chain
    params = chain.sample_params(5, torch.Generator().manual_seed(0))
    params["gain"]["gain_db"] = torch.tensor([-6.0, -6.0, -6.0, -6.0, 20.0])  # one window hears it wrong
    params["gain"]["present"] = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0])
    combined = aggregate(chain, params)
    assert float(combined["gain"]["gain_db"]) == pytest.approx(-6.0, abs=1e-4)
    assert float(combined["gain"]["present"]) == pytest.approx(0.8)


def test_master_command_end_to_end(tmp_path, checkpoints):
    source = tmp_path / "in"
    source.mkdir()
    sf.write(source / "song.wav", CLIP.T.numpy(), SR)
    (source / "broken.mp3").write_bytes(b"not audio at all")
    before = (source / "song.wav").read_bytes()
    out = tmp_path / "out"
    code = main(["master", str(source), "-o", str(out), "--model", str(checkpoints / "param.pt"), "--plot"])
    assert code == 1  # the broken file is reported, the good one mastered
    assert (out / "song_mastered.wav").is_file() and (out / "song_mastered.png").is_file()
    assert json.loads((out / "song_mastered.json").read_text())["model"] == "param"
    assert sf.info(out / "song_mastered.wav").frames == CLIP.shape[-1]
    assert (source / "song.wav").read_bytes() == before
    assert main(["master", str(source / "song.wav"), "-o", str(out), "--model", str(checkpoints / "unet.pt")]) == 0
    for output_format, name, subtype in (("wav16", "song_mastered.wav", "PCM_16"),
                                         ("flac", "song_mastered.flac", "PCM_24")):
        folder = tmp_path / output_format
        assert main(["master", str(source / "song.wav"), "-o", str(folder), "--model", str(checkpoints / "param.pt"),
                     "--format", output_format]) == 0
        assert sf.info(folder / name).subtype == subtype and sf.info(folder / name).frames == CLIP.shape[-1]


def test_master_command_keeps_the_files_rate_and_channels(tmp_path, checkpoints):
    model = ["--model", str(checkpoints / "param.pt")]
    files = {"mono48k.flac": (music_like(2.0, 48000, 1, seed=3), 48000),
             "quad22k.wav": (music_like(2.0, 22050, 4, seed=4), 22050),
             "tiny_rate.wav": (music_like(2.0, 6000, 2, seed=5), 6000)}  # under master()'s 8 kHz: resampled
    for name, (audio, rate) in files.items():
        sf.write(tmp_path / name, audio.T.numpy(), rate)
    assert main(["master", *(str(tmp_path / name) for name in files), "-o", str(tmp_path / "out"), *model]) == 0
    for name, channels, rate, frames in (("mono48k", 1, 48000, 96000), ("quad22k", 4, 22050, 44100),
                                         ("tiny_rate", 2, SR, 2 * SR)):
        info = sf.info(tmp_path / "out" / f"{name}_mastered.wav")
        assert (info.channels, info.samplerate, info.frames) == (channels, rate, frames)


def test_master_command_notes_a_loudness_target_it_missed(tmp_path, checkpoints, capsys):
    sf.write(tmp_path / "song.wav", CLIP.T.numpy(), SR)
    model = ["--model", str(checkpoints / "param.pt")]
    assert main(["master", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), "--target-lufs", "-1", *model]) == 0
    assert "the limiter takes at most 12 dB off a peak" in capsys.readouterr().err
    assert main(["master", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out2"), "--target-lufs", "-20",
                 "--true-peak", *model]) == 0
    assert "note:" not in capsys.readouterr().err
    output = json.loads((tmp_path / "out2" / "song_mastered.json").read_text())["output"]
    assert output["loudness_lufs"] == pytest.approx(-20.0, abs=0.1) and output["true_peak"]


def test_master_command_refuses_bad_settings_before_any_file(tmp_path, capsys):
    sf.write(tmp_path / "song.wav", CLIP.T.numpy(), SR)
    code = main(["master", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), "--target-lufs", "5"])
    assert code == 2 and "target_lufs must lie in [-60, 0]" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_demo_command(tmp_path, checkpoints, capsys):
    assert main(["demo", "-o", str(tmp_path), "--model", str(checkpoints / "param.pt"), "--seconds", "3"]) == 0
    printed = capsys.readouterr().out
    assert "echo" in printed and "MR-STFT" in printed
    for name in ("clean", "degraded", "mastered"):
        assert sf.info(tmp_path / f"{name}.wav").frames == 3 * SR
    assert "degradation" in json.loads((tmp_path / "demo.json").read_text())


def test_demo_prints_the_residual_correction_when_the_model_has_one(tmp_path, estimator, capsys):
    checkpoint = tmp_path / "param.pt"
    save_checkpoint(checkpoint, estimator, "param", {}, step=0)
    args = ["demo", "-o", str(tmp_path / "demo"), "--model", str(checkpoint), "--seconds", "2"]
    assert main(args) == 0
    assert "residual" not in capsys.readouterr().out
    n_features = 40 + 1 + len(estimator.chain.estimated) + len(estimator.chain.flat_params)
    level_only_correction(n_features, 6.0).save(tmp_path / f"param{RESIDUAL_SUFFIX}")
    assert main(args) == 0
    assert "level +6.0 dB, tonal balance +0.0 to +0.0 dB over 40 bands" in capsys.readouterr().out


def test_demo_on_a_synthesised_clip_and_a_missing_file(tmp_path, checkpoints, capsys):
    model = ["--model", str(checkpoints / "param.pt")]
    assert main(["demo", "-o", str(tmp_path), "--synthetic", "--seconds", "2", *model]) == 0
    assert sf.info(tmp_path / "clean.wav").frames == 2 * SR
    assert main(["demo", "-o", str(tmp_path / "x"), "--clip", str(tmp_path / "missing.wav"), *model]) == 2
    assert "missing.wav" in capsys.readouterr().err
    for seconds in ("0", "-1", "0.00001"):
        assert main(["demo", "-o", str(tmp_path / "y"), "--seconds", seconds, *model]) == 2
        assert "--seconds must be at least 0.5" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


@pytest.mark.parametrize("frames", [1, 220])
def test_demo_on_a_clip_too_short_says_so_in_one_line(tmp_path, checkpoints, capsys, frames):
    sf.write(tmp_path / "short.wav", np.full((frames, 2), 0.1), SR)
    model = ["--model", str(checkpoints / "param.pt")]
    assert main(["demo", "-o", str(tmp_path / "out"), "--clip", str(tmp_path / "short.wav"), *model]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "the demo needs at least 0.5 s" in error


def param_with_a_level_correction(folder, checkpoints, level_db: float):
    """A copy of the test parameter model in ``folder`` with a residual correction of ``level_db`` next to it."""
    checkpoint = folder / "param.pt"
    checkpoint.write_bytes((checkpoints / "param.pt").read_bytes())
    chain = pretrained.resolve_model(checkpoint).chain
    n_features = 40 + 1 + len(chain.estimated) + len(chain.flat_params)
    level_only_correction(n_features, level_db).save(folder / f"param{RESIDUAL_SUFFIX}")
    return checkpoint


def level_only_correction(n_features: int, level_db: float) -> ResidualCorrection:
    weights = np.zeros((n_features + 1, 41))
    weights[-1, -1] = level_db  # the intercept: the same level correction whatever the features
    return ResidualCorrection([0.0] * n_features, [1.0] * n_features, weights.tolist())


@pytest.mark.parametrize("kind", ["param", "unet"])
def test_residual_correction_next_to_the_checkpoint_is_applied(tmp_path, estimator, unet, kind):
    model = {"param": estimator, "unet": unet}[kind]
    checkpoint = tmp_path / f"{kind}.pt"
    save_checkpoint(checkpoint, model, kind, {}, step=0)
    quiet = CLIP * 1e-2
    plain = master(quiet, SR, model=checkpoint, peak_ceiling_db=0.0)
    assert "residual_correction" not in plain.report
    n_features = 40 + 1 + (len(estimator.chain.estimated) + len(estimator.chain.flat_params) if kind == "param" else 0)
    level_only_correction(n_features, 20 * np.log10(2)).save(tmp_path / f"{kind}{RESIDUAL_SUFFIX}")
    corrected = master(quiet, SR, model=str(checkpoint), peak_ceiling_db=0.0)
    torch.testing.assert_close(corrected.audio, 2 * plain.audio, rtol=1e-4, atol=1e-6)
    report = json.loads(corrected.to_json())["residual_correction"]
    assert report["level_db"] == pytest.approx(6.02, abs=0.01) and len(report["bands_db"]) == 40
    off = master(quiet, SR, model=checkpoint, peak_ceiling_db=0.0, correct_residual=False)
    torch.testing.assert_close(off.audio, plain.audio)
    sf.write(tmp_path / "song.wav", quiet.T.numpy(), SR)
    for flags, applied in (([], True), (["--no-residual-correction"], False)):
        out = tmp_path / f"out{len(flags)}"
        assert main(["master", str(tmp_path / "song.wav"), "-o", str(out), "--model", str(checkpoint), *flags]) == 0
        assert ("residual_correction" in json.loads((out / "song_mastered.json").read_text())) == applied


def test_long_tracks_are_inverted_in_chunks_without_seams(monkeypatch):
    chain = Chain(SR)
    params = chain.sample_params(1, torch.Generator().manual_seed(7))
    for effect in params.values():
        effect["present"] = torch.full((1,), 0.8)
    params["echo"].update(delay_ms=torch.tensor([300.0]), level_db=torch.tensor([-6.0]))  # inverse tail 5 s
    degraded = chain(music_like(60.0, SR, 2, seed=8)[None], params)[0]
    whole = invert(chain, degraded, params)
    monkeypatch.setattr(chunks, "ONE_PASS_SECONDS", 20.0)
    monkeypatch.setattr(chunks, "CHUNK_SECONDS", 15.0)
    monkeypatch.setattr(chunks, "CHUNK_MARGIN_SECONDS", 10.0)
    lengths = []
    monkeypatch.setattr(chain, "inverse", lambda y, *args, **kwargs: lengths.append(y.shape[-1]) or
                        Chain.inverse(chain, y, *args, **kwargs))
    chunked = invert(chain, degraded, params)
    assert len(lengths) == 4 and max(lengths) <= 35 * SR + 2048  # 15 s each, 10 s of margin either side
    assert float((chunked - whole).abs().max()) <= 1e-4 * float(whole.abs().max())  # seams under -80 dB


def test_long_tracks_are_limited_in_chunks_without_seams(monkeypatch):
    audio = music_like(40.0, SR, 2, seed=10)
    audio[:, :: SR // 20] = 0.95  # a click every 50 ms: the limiter's ramps cross every seam
    whole, report = set_level(audio, SR, -12.0, -1.0)
    monkeypatch.setattr(chunks, "ONE_PASS_SECONDS", 20.0)
    monkeypatch.setattr(chunks, "CHUNK_SECONDS", 15.0)
    monkeypatch.setattr(chunks, "CHUNK_MARGIN_SECONDS", 2.0)
    chunked, chunked_report = set_level(audio, SR, -12.0, -1.0)
    assert report["peak_limiting_db"] < -1 and chunked_report == report
    assert torch.allclose(chunked, whole, atol=1e-6)


def test_long_tracks_are_filtered_with_the_unet_correction_in_chunks_without_seams(monkeypatch):
    audio = music_like(40.0, SR, 2, seed=9)
    extra = extra_response(6 * torch.linspace(0, 3 * np.pi, 40, dtype=torch.float64).sin(), 3.0, SR)
    whole = filter_with(audio, extra, SR)
    monkeypatch.setattr(chunks, "ONE_PASS_SECONDS", 20.0)
    monkeypatch.setattr(chunks, "CHUNK_SECONDS", 10.0)
    monkeypatch.setattr(chunks, "CHUNK_MARGIN_SECONDS", 1.0)
    chunked = filter_with(audio, extra, SR)
    assert not torch.allclose(whole, audio, atol=1e-2)
    assert float((chunked - whole).abs().max()) <= 1e-4 * float(whole.abs().max())


def test_analysis_windows_of_an_hour_long_track():
    """Window starts past 2^24 samples are not float32-exact; they must still give full windows."""
    hour = torch.full((2, 1), 0.5).expand(2, 3600 * SR - 3)  # a view: no memory
    windows = analysis_windows(hour, 5 * SR)
    assert windows.shape == (8, 2, 5 * SR)
