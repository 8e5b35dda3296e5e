"""What `dmaster master` and master() do with odd inputs and settings: nothing the user has is
overwritten or dropped, one bad file never stops a batch, every error is one line, lengths are exact."""

import json
import os
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmaster.apps.master import output_names
from dmaster.audio import atomic_path
from dmaster.checkpoint import save_checkpoint
from dmaster.cli import main
from dmaster.loudness import integrated_loudness
from dmaster.mastering import inputs, level, master
from dmaster.synth import music_like

SR = 44100
CLIP = music_like(2.0, SR, 2, seed=7)


@pytest.fixture(scope="module")
def model(tmp_path_factory, estimator):
    path = tmp_path_factory.mktemp("model") / "param.pt"
    save_checkpoint(path, estimator, "param", {}, step=0)
    return ["--model", str(path)]


def write(path: Path, audio: torch.Tensor = CLIP, rate: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.T.numpy(), rate)
    return path


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# -- outputs never land on a file the command did not write ------------------------------------------


def test_a_users_file_with_an_output_name_is_never_overwritten(tmp_path, model, capsys):
    folder = tmp_path / "album"
    write(folder / "song.wav")
    mine = write(folder / "song_mastered.wav", CLIP * 0.5)
    before = mine.read_bytes()
    assert main(["master", str(folder), "-o", str(folder), *model]) == 1
    assert mine.read_bytes() == before
    err = capsys.readouterr().err
    assert f"{folder / 'song_mastered.wav'} exists and was not written by dmaster master" in err
    assert (folder / "song_mastered_mastered.wav").is_file()  # the user's file is an input like any other
    assert main(["master", str(folder), "-o", str(folder), "--overwrite", *model]) == 1
    assert mine.read_bytes() == before


def test_inputs_sharing_a_name_each_get_their_own_output(tmp_path, model, capsys):
    inputs = [write(tmp_path / "a" / "song.wav"), write(tmp_path / "b" / "song.wav"),
              write(tmp_path / "x" / "song.wav"), write(tmp_path / "x" / "song.flac")]
    out = tmp_path / "out"
    assert main(["master", *map(str, inputs), "-o", str(out), *model]) == 0
    assert "4 files into" in capsys.readouterr().err
    reports = sorted(out.glob("*.json"))
    assert len(reports) == 4 and len(list(out.glob("*.wav"))) == 4
    assert sorted(json.loads(r.read_text())["files"]["input"] for r in reports) == sorted(map(str, inputs))
    assert main(["master", *map(str, inputs), "-o", str(out), *model]) == 0  # a rerun: all done, nothing added
    assert "0 mastered, 4 already done" in capsys.readouterr().err and len(list(out.iterdir())) == 8


def test_output_names_tell_same_named_inputs_apart():
    names = output_names([Path("/m/a/song.wav"), Path("/m/b/song.wav"), Path("/m/x/song.flac"),
                          Path("/m/x/song.wav"), Path("/m/x/other.wav")])
    assert list(names.values()) == ["a_song_wav_mastered", "b_song_wav_mastered", "song_flac_mastered",
                                    "x_song_wav_mastered", "other_mastered"]
    assert output_names([Path("/m/a_b/c.wav"), Path("/m/a/b_c.wav")]).keys() == {Path("/m/a_b/c.wav"),
                                                                                  Path("/m/a/b_c.wav")}
    tricky = output_names([Path("/a_b/c/d.wav"), Path("/a/b_c/d.wav")])  # equal at every level
    assert len(set(tricky.values())) == 2


@pytest.mark.parametrize("inside", [False, True])
def test_a_rerun_never_masters_its_own_outputs(tmp_path, model, inside):
    folder = tmp_path / "music"
    write(folder / "song.wav")
    out = folder / "mastered" if inside else folder
    for _ in range(2):
        assert main(["master", str(folder), "-o", str(out), *model]) == 0
    assert sorted(p.name for p in out.glob("*.wav") if p.name != "song.wav") == ["song_mastered.wav"]


# -- lengths -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 22050, 48000, 96000, 192000, 384000])
def test_resampling_back_gives_exactly_the_input_length(rate):
    lengths = np.random.default_rng(rate).integers(1, 50000, 60).tolist() + [1, 2, 3, 144031]
    for samples in lengths:
        audio = torch.randn(2, samples) * 0.1
        working = inputs.resample(audio, rate, SR, inputs.resampled_length(samples, rate, SR))
        assert working.shape[-1] >= 1
        assert inputs.resample(working, SR, rate, samples).shape == (2, samples)


def test_master_keeps_the_length_at_48_khz(estimator):
    audio = music_like(144031 / 48000, 48000, 2, seed=1)[:, :144031]
    assert master(audio, 48000, model=estimator).audio.shape == (2, 144031)


# -- one odd file never stops the batch ------------------------------------------------------------------


def test_one_odd_file_never_stops_the_batch(tmp_path, model, monkeypatch, capsys):
    folder = tmp_path / "in"
    write(folder / "tiny.wav", CLIP[:, :1000])
    write(folder / "one_sample_96k.wav", CLIP[:, :1] + 0.5, 96000)
    write(folder / "good.wav")
    (folder / "text.wav").write_text("not audio")
    write(folder / "crashes.wav", CLIP * 0.123)
    real = master

    def flaky(audio, sample_rate, **options):
        if float(audio.abs().max()) == pytest.approx(0.123 * float(CLIP.abs().max()), rel=1e-3):
            raise RuntimeError("something unexpected\nover two lines")
        return real(audio, sample_rate, **options)

    monkeypatch.setattr("dmaster.apps.master.master", flaky)
    out = tmp_path / "out"
    assert main(["master", str(folder), "-o", str(out), "--plot", *model]) == 1
    lines = error_lines(capsys)
    assert f"{folder / 'crashes.wav'}: something unexpected over two lines" in lines
    assert any(line.startswith(f"{folder / 'text.wav'}: cannot decode") for line in lines)
    assert lines[-1].endswith("3 mastered, 0 already done, 0 skipped, 2 failed")
    for name in ("tiny", "one_sample_96k", "good"):
        assert json.loads((out / f"{name}_mastered.json").read_text())["files"]["input"] == str(folder / f"{name}.wav")
        assert (out / f"{name}_mastered.png").is_file()
    assert sf.info(out / "one_sample_96k_mastered.wav").frames == 1
    assert not (out / "crashes_mastered.json").exists() and not (out / "crashes_mastered.wav").exists()


# -- loudness ----------------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(channels=st.integers(1, 5), seconds=st.floats(0.41, 3.0), rate=st.sampled_from([32000, 44100, 48000]),
       seed=st.integers(0, 10**6))
def test_loudness_is_pyloudnorms_up_to_five_channels(channels, seconds, rate, seed):
    rng = np.random.default_rng(seed)
    samples = int(seconds * rate)
    audio = rng.standard_normal((channels, samples)) * np.linspace(1e-4, 0.5, samples)
    expected = pyloudnorm.Meter(rate).integrated_loudness(audio.T.copy())
    assert integrated_loudness(audio, rate) == pytest.approx(expected, abs=1e-9)


def test_loudness_of_5_1_leaves_the_lfe_out():
    audio = np.asarray(music_like(2.0, SR, 6, seed=3))
    louder_lfe = audio.copy()
    louder_lfe[3] *= 10
    assert integrated_loudness(louder_lfe, SR) == pytest.approx(integrated_loudness(audio, SR), abs=1e-9)


@pytest.mark.parametrize("channels", [6, 8, 16])
def test_a_loudness_target_is_reached_with_many_channels(tmp_path, model, channels):
    write(tmp_path / "surround.wav", music_like(2.0, SR, channels, seed=channels) * 0.3)
    assert main(["master", str(tmp_path / "surround.wav"), "-o", str(tmp_path / "out"), "--target-lufs", "-20",
                 *model]) == 0
    audio, rate = sf.read(tmp_path / "out" / "surround_mastered.wav", dtype="float32")
    assert audio.shape[1] == channels
    report = json.loads((tmp_path / "out" / "surround_mastered.json").read_text())["output"]
    assert report["loudness_lufs"] == pytest.approx(integrated_loudness(audio.T, rate), abs=0.01)
    assert report["loudness_lufs"] == pytest.approx(-20.0, abs=0.1)


@pytest.mark.parametrize("level_db", [-89.0, -120.0])
def test_the_reported_loudness_is_measured_even_for_very_quiet_input(estimator, level_db):
    quiet = CLIP / CLIP.abs().max() * 10 ** (level_db / 20)
    result = master(quiet, SR, model=estimator, target_lufs=-14.0)
    reached = result.report["output"]["loudness_lufs"]
    assert reached == pytest.approx(integrated_loudness(result.audio, SR), abs=0.01)
    assert reached == pytest.approx(-14.0, abs=0.1)


def test_a_loudness_that_cannot_be_measured_is_said_so():
    drift = torch.linspace(0, 1e-3, 30 * 8000).expand(2, -1)  # K-weighting's high-pass leaves almost nothing
    audio, report = level.set_level(drift, 8000, -14.0, -1.0)
    assert "loudness_lufs" not in report and "absolute gate" in report["target_missed"]
    assert float(audio.abs().max()) == pytest.approx(10 ** (-1 / 20), rel=1e-5)


# -- reports, settings and messages ---------------------------------------------------------------------------


@pytest.mark.parametrize("field, value, message", [
    ("level_db", 1000.0, r"level_db must lie in \[-24, 24\] dB"),
    ("bands_db", 100.0, r"bands_db must lie in \[-12, 12\] dB"),
])
def test_a_report_with_an_out_of_range_residual_correction_is_refused(tmp_path, model, estimator, capsys, field,
                                                                      value, message):
    report = master(CLIP, SR, model=estimator).report
    residual = {"level_db": 0.0, "bands_db": {f"{k} Hz": 0.0 for k in range(40)}}
    residual[field] = value if field == "level_db" else {**residual["bands_db"], "0 Hz": value}
    path = tmp_path / "edited.json"
    path.write_text(json.dumps({**report, "residual_correction": residual}))
    with pytest.raises(ValueError, match=message):
        master(CLIP, SR, model=estimator, report=path)
    write(tmp_path / "song.wav")
    assert main(["master", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), "--report", str(path),
                 *model]) == 2
    assert len(error_lines(capsys)) == 1 and not (tmp_path / "out").exists()


def test_command_line_mistakes_get_one_line(tmp_path, model, capsys):
    song = write(tmp_path / "song.wav")
    (tmp_path / "file").write_text("")
    text_model = tmp_path / "model.pt"
    text_model.write_text("not a checkpoint")
    for arguments, message in (
            (["-o", str(tmp_path / "file"), *model], "is a file; name a folder"),
            (["-o", str(tmp_path / "out"), "--model", str(text_model)], "is not a dmaster model checkpoint"),
            (["-o", str(tmp_path / "out"), "--target-lufs", "-14", "--normalise-peak", *model], "choose one")):
        assert main(["master", str(song), *arguments]) == 2
        lines = error_lines(capsys)
        assert len(lines) == 1 and message in lines[0], lines


def test_an_output_folder_that_cannot_be_written_is_one_line(tmp_path, model, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out"))

    monkeypatch.setattr("tempfile.TemporaryFile", refuse)
    assert main(["master", str(write(tmp_path / "song.wav")), "-o", str(tmp_path / "out"), *model]) == 2
    assert error_lines(capsys) == [f"dmaster master: error: {tmp_path / 'out'}: Permission denied"]


def test_a_failed_write_reports_its_own_error_not_the_clean_up(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(PermissionError) as raised:
        with atomic_path(tmp_path / "out.wav") as temporary:
            temporary.write_bytes(b"x")
    assert raised.value.__context__ is None


@pytest.mark.parametrize("audio, error, message", [
    (torch.zeros(0, SR), ValueError, "empty"),
    (torch.zeros(60, 2) + 0.1, ValueError, "reads as 60 channels of 2 samples"),
])
def test_api_edges_get_clear_errors(estimator, audio, error, message):
    with pytest.raises(error, match=message):
        master(audio, SR, model=estimator)


@pytest.mark.parametrize("setting, value", [("target_lufs", "-14"), ("amount", None), ("peak_ceiling_db", True)])
def test_settings_that_are_not_numbers_are_named(estimator, setting, value):
    with pytest.raises(ValueError, match=f"{setting} must be a number"):
        master(CLIP, SR, model=estimator, **{setting: value})


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.int16, torch.int32])
def test_the_output_has_the_inputs_dtype(estimator, dtype):
    audio = CLIP * 0.5
    if not dtype.is_floating_point:
        audio = (audio * -torch.iinfo(dtype).min).to(dtype)
    result = master(audio.to(dtype), SR, model=estimator, amount=0.0)
    assert result.audio.dtype == dtype and result.audio.shape == audio.shape
    numpy_audio = audio.numpy() if dtype != torch.bfloat16 else None
    if numpy_audio is not None:
        assert master(numpy_audio, SR, model=estimator).audio.dtype == numpy_audio.dtype


def test_int16_pcm_comes_back_at_its_level(estimator):
    pcm = (CLIP[0] * 0.25 * 32768).to(torch.int16).numpy()
    out = master(pcm, SR, model=estimator, amount=0.0, peak_ceiling_db=0.0).audio
    assert out.dtype == np.int16 and np.abs(out.astype(int) - pcm).max() <= 2  # dither: ±1 LSB, rounding


def test_keep_takes_a_single_name(estimator):
    one = master(CLIP, SR, model=estimator, keep="reverb").report
    assert one["kept"] == ["reverb"] and one == master(CLIP, SR, model=estimator, keep=("reverb",)).report


# -- what the command tells the user ----------------------------------------------------------------------------


def test_aiff_in_a_folder_is_mastered_and_other_files_are_noted(tmp_path, model, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "song.aiff", CLIP.T.numpy(), SR)
    (folder / "notes.txt").write_text("liner notes")
    assert main(["master", str(folder), "-o", str(tmp_path / "out"), *model]) == 0
    assert (tmp_path / "out" / "song_mastered.wav").is_file()
    assert "passed over 1 files not named as audio (1 .txt)" in capsys.readouterr().err


def test_a_file_shorter_than_its_header_says_is_warned_about(tmp_path, model, capsys):
    song = write(tmp_path / "song.wav")
    song.write_bytes(song.read_bytes()[: len(song.read_bytes()) // 2])  # the header still claims all frames
    assert main(["master", str(song), "-o", str(tmp_path / "out"), *model]) == 0
    err = capsys.readouterr().err
    assert f"{song}: warning: decoded" in err and "truncated or damaged?" in err
    warning = json.loads((tmp_path / "out" / "song_mastered.json").read_text())["files"]["warnings"]
    assert len(warning) == 1 and "truncated or damaged?" in warning[0]


def test_the_help_describes_the_demo_truthfully(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "bundled clip of real music" in capsys.readouterr().out


def test_a_run_killed_between_its_outputs_is_finished_by_a_rerun(tmp_path, model, monkeypatch):
    song = write(tmp_path / "song.wav")
    out = tmp_path / "out"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("dmaster.apps.master.save_audio", killed)  # after the claim, before the audio
    assert main(["master", str(song), "-o", str(out), "--plot", *model]) == 130  # interrupted
    assert (out / "song_mastered.json").is_file() and not (out / "song_mastered.wav").exists()
    monkeypatch.undo()
    assert main(["master", str(song), "-o", str(out), "--plot", *model]) == 0
    assert (out / "song_mastered.wav").is_file()
