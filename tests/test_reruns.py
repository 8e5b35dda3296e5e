"""`dmaster master` run again over the same files: a rerun never lies. Done means the same input, the same
settings and the audio the report describes; anything else is redone (a run killed half-way) or skipped and
said so; outputs of every earlier format stay claimed; two runs never write into one folder at once; settings
that contradict each other are refused once, before any file; hand-edited reports are read strictly."""

import errno
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from dmaster.apps.master import LOCK_NAME
from dmaster.cli import main
from dmaster.loudness import integrated_loudness
from dmaster.mastering import master
from dmaster.mastering.report import read_report
from dmaster.synth import music_like

SR = 44100
CLIP = music_like(1.0, SR, 2, seed=21)


@pytest.fixture(scope="module")
def model(checkpoints):
    return ["--model", str(checkpoints / "param.pt")]


def write(path: Path, audio: torch.Tensor = CLIP) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.T.numpy(), SR, subtype="FLOAT")
    return path


def error_lines(capsys) -> list[str]:
    """What the command printed to stderr, without the progress bar."""
    return [line.split("\r")[-1] for line in capsys.readouterr().err.splitlines() if line.split("\r")[-1].strip()
            and not line.split("\r")[-1].startswith("mastering:")]


def files_of(report: Path) -> dict:
    return json.loads(report.read_text())["files"]


# -- 1. done means the same input, the same settings and the audio the report describes ----------------------


def test_a_rerun_with_other_settings_is_skipped_and_said_so(tmp_path, model, capsys):
    song, out = write(tmp_path / "song.wav"), tmp_path / "out"
    assert main(["master", str(song), "-o", str(out), *model]) == 0
    before = (out / "song_mastered.wav").read_bytes()
    capsys.readouterr()
    assert main(["master", str(song), "-o", str(out), "--target-lufs", "-24", *model]) == 0  # a skip is no failure
    lines = error_lines(capsys)
    assert f"{song}: skipped: mastered with other settings (target_lufs was none, now -24.0); --overwrite to redo" \
        in lines
    assert lines[-1] == f"1 file into {out}: 0 mastered, 0 already done, 1 skipped, 0 failed " \
                        "(--overwrite redoes the skipped)"
    assert (out / "song_mastered.wav").read_bytes() == before
    assert main(["master", str(song), "-o", str(out), "--target-lufs", "-24", "--overwrite", *model]) == 0
    assert files_of(out / "song_mastered.json")["settings"]["target_lufs"] == -24.0
    audio, rate = sf.read(out / "song_mastered.wav", dtype="float32")
    assert integrated_loudness(audio.T, rate) == pytest.approx(-24.0, abs=0.1)
    capsys.readouterr()
    assert main(["master", str(song), "-o", str(out), "--target-lufs", "-24", *model]) == 0
    assert error_lines(capsys)[-1].endswith(": 0 mastered, 1 already done, 0 skipped, 0 failed")


def test_a_changed_input_file_is_not_taken_as_done(tmp_path, model, capsys):
    song, out = write(tmp_path / "song.wav"), tmp_path / "out"
    assert main(["master", str(song), "-o", str(out), *model]) == 0
    write(song, CLIP.flip(-1) * 0.5)  # the same name, other music
    capsys.readouterr()
    assert main(["master", str(song), "-o", str(out), *model]) == 0
    assert f"{song}: skipped: the input file changed since it was mastered; --overwrite to redo" in error_lines(capsys)
    assert main(["master", str(song), "-o", str(out), "--overwrite", *model]) == 0
    assert files_of(out / "song_mastered.json")["input_size"] == song.stat().st_size
    capsys.readouterr()
    assert main(["master", str(song), "-o", str(out), *model]) == 0
    assert "1 already done" in error_lines(capsys)[-1]


def test_a_report_never_describes_other_audio(tmp_path, model, monkeypatch, capsys):
    """Killed after the audio, before the report (here: in the plot): the next run redoes the file."""
    song, out = write(tmp_path / "song.wav"), tmp_path / "out"
    assert main(["master", str(song), "-o", str(out), "--plot", *model]) == 0

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("dmaster.apps.master.save_comparison", killed)
    louder = ["--target-lufs", "-16", "--plot"]
    assert main(["master", str(song), "-o", str(out), *louder, "--overwrite", *model]) == 130
    report = json.loads((out / "song_mastered.json").read_text())
    assert "output" not in report and "mastered_size" not in report["files"]  # the claim, not a report to trust
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["master", str(song), "-o", str(out), *louder, *model]) == 0  # redone, no --overwrite needed
    assert "1 mastered" in error_lines(capsys)[-1]
    report = json.loads((out / "song_mastered.json").read_text())
    audio, rate = sf.read(out / "song_mastered.wav", dtype="float32")
    assert report["output"]["loudness_lufs"] == pytest.approx(integrated_loudness(audio.T, rate), abs=0.01)
    assert report["files"]["mastered_size"] == (out / "song_mastered.wav").stat().st_size
    write(out / "song_mastered.wav", CLIP * 0.1)  # someone else's audio under the report: not overwritten unasked
    capsys.readouterr()
    assert main(["master", str(song), "-o", str(out), *louder, *model]) == 0
    assert f"{song}: skipped: {out / 'song_mastered.wav'} changed after it was mastered (edited?); --overwrite to " \
           "redo" in error_lines(capsys)


def test_a_report_that_records_no_settings_is_not_taken_as_done(tmp_path, model, capsys):
    song, out = write(tmp_path / "song.wav"), tmp_path / "out"
    assert main(["master", str(song), "-o", str(out), *model]) == 0
    report = json.loads((out / "song_mastered.json").read_text())
    report["files"] = {key: report["files"][key] for key in ("input", "mastered", "report", "plot")}  # as before
    (out / "song_mastered.json").write_text(json.dumps(report))
    capsys.readouterr()
    assert main(["master", str(song), "-o", str(out), *model]) == 0
    assert "did not record its settings; --overwrite to redo" in error_lines(capsys)[0]


# -- 2. outputs of any earlier format stay claimed ---------------------------------------------------------------


def test_outputs_of_an_earlier_format_are_never_inputs(tmp_path, model, capsys):
    music = tmp_path / "music"
    write(music / "song.wav")
    assert main(["master", str(music), "-o", str(music), *model]) == 0
    capsys.readouterr()
    assert main(["master", str(music), "-o", str(music), "--format", "flac", *model]) == 0
    assert "format was \"wav\", now \"flac\"" in error_lines(capsys)[0]
    assert main(["master", str(music), "-o", str(music), "--format", "flac", "--overwrite", *model]) == 0
    assert files_of(music / "song_mastered.json")["mastered"] == "song_mastered.flac"
    for _ in range(2):  # the .wav of the first run is no longer in the report, and still never an input
        assert main(["master", str(music), "-o", str(music), *model]) == 0
    assert sorted(path.name for path in music.iterdir()) == ["song.wav", "song_mastered.flac", "song_mastered.json",
                                                             "song_mastered.wav"]


def test_an_input_with_dots_in_its_name_keeps_them_in_its_outputs(tmp_path, model):
    song, out = write(tmp_path / "live.2024.wav"), tmp_path / "out"
    assert main(["master", str(song), "-o", str(out), *model]) == 0
    assert sorted(path.name for path in out.iterdir()) == ["live.2024_mastered.json", "live.2024_mastered.wav"]


# -- 3. one run at a time writes into a folder -------------------------------------------------------------------


def test_a_second_run_into_the_same_folder_refuses(tmp_path, model, capsys):
    music = tmp_path / "music"
    song = write(music / "song.wav")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, f'{os.getpid()}\\n'.encode())\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"), str(music / LOCK_NAME)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        assert main(["master", str(music), "-o", str(music), *model]) == 2
        assert error_lines(capsys) == [f"dmaster master: error: another dmaster master (pid {holder.pid}) is writing "
                                       f"into {music}; wait for it or choose another -o"]
        assert sorted(path.name for path in music.iterdir()) == [LOCK_NAME, "song.wav"]
    finally:
        holder.kill()  # the lock dies with its process, also on a kill
        holder.wait()
    assert main(["master", str(music), "-o", str(music), *model]) == 0
    lines = error_lines(capsys)
    assert not any(line.startswith("note:") for line in lines), lines  # the lock file is no input, nor noted
    assert sorted(path.name for path in music.iterdir()) == ["song.wav", "song_mastered.json", "song_mastered.wav"]
    with open(write(tmp_path / "other" / "a.wav").with_name(LOCK_NAME), "w") as held:  # held in this process
        fcntl.flock(held, fcntl.LOCK_EX)
        assert main(["master", str(song), "-o", str(tmp_path / "other"), *model]) == 2
        assert "pid unknown" in error_lines(capsys)[0]


def test_a_folder_that_cannot_be_locked_is_mastered_with_a_note(tmp_path, model, monkeypatch, capsys):
    def unsupported(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", unsupported)
    assert main(["master", str(write(tmp_path / "song.wav")), "-o", str(tmp_path / "out"), *model]) == 0
    assert f"note: {tmp_path / 'out'}: cannot be locked; another dmaster master writing into it at the same time " \
           "would mix its outputs with this one's" in error_lines(capsys)


# -- 4. settings that contradict each other: refused once, before any file --------------------------------------


@pytest.mark.parametrize("options, message", [
    (["--reference", "REFERENCE", "--report", "REPORT"], "--reference and --report each say what to apply; give one"),
    (["--reference", "REFERENCE", "--normalise-peak"], "--reference and --normalise-peak each set the output level"),
    (["--reference", "REFERENCE", "--model", "UNET"], "--reference needs the parameter model"),
    (["--ambience"], "--ambience takes the reference's echo and reverb: it needs --reference"),
    (["--reference", "FOLDER"], "--reference FOLDER is a folder; name one audio file"),
    (["-o", ""], "-o is empty; name a folder for the mastered files"),
])
def test_contradicting_settings_are_refused_once_before_any_file(tmp_path, checkpoints, capsys, options, message):
    folder = tmp_path / "in"
    for name in ("a.wav", "b.wav", "c.wav"):
        write(folder / name)
    (tmp_path / "folder").mkdir()
    names = {"REFERENCE": str(write(tmp_path / "reference.wav")), "REPORT": str(tmp_path / "report.json"),
             "UNET": str(checkpoints / "unet.pt"), "FOLDER": str(tmp_path / "folder")}
    options = [names.get(option, option) for option in options]
    out = tmp_path / "out"
    arguments = ["master", str(folder), "-o", str(out), "--model", str(checkpoints / "param.pt"), *options]
    assert main(arguments) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith(f"dmaster master: error: {message}".replace("FOLDER",
                                                                                               names["FOLDER"])), lines
    assert not out.exists() and not (tmp_path / "mastered").exists()
    assert sorted(path.name for path in folder.iterdir()) == ["a.wav", "b.wav", "c.wav"]


def test_an_empty_input_name_is_refused(tmp_path, model, capsys):
    assert main(["master", "", "-o", str(tmp_path / "out"), *model]) == 2
    assert error_lines(capsys) == ['dmaster master: error: an input is named "" (empty); name audio files or folders '
                                   '("." for the current one)']


# -- 5. symbolic links in an input folder ----------------------------------------------------------------------


def test_symbolic_links_in_an_input_folder_are_noted_and_folders_not_followed(tmp_path, model, capsys):
    folder, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    write(folder / "song.wav")
    write(elsewhere / "other.wav")
    (folder / "linked").symlink_to(elsewhere, target_is_directory=True)
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "gone.wav").symlink_to(tmp_path / "deleted.wav")
    out = tmp_path / "out"
    assert main(["master", str(folder), "-o", str(out), *model]) == 0
    notes = [line for line in error_lines(capsys) if line.startswith("note:")]
    assert notes == [f"note: {folder}: passed over 2 symbolic links to folders (not followed) and 1 broken link"]
    assert sorted(path.name for path in out.iterdir()) == ["song_mastered.json", "song_mastered.wav"]


# -- 6. hand-edited reports --------------------------------------------------------------------------------------


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["effects"]["echo"]["estimated"].update(feedback={"value": 0.5, "unit": ""}),
     r"effects.echo.estimated.feedback is not a parameter of echo \(its parameters are delay_ms"),
    (lambda r: r["effects"]["echo"]["estimated"]["delay_ms"].update(unit="s"),
     r"effects.echo.estimated.delay_ms.unit must be 'ms', got 's'"),
    (lambda r: r["effects"]["echo"]["estimated"]["delay_ms"].update(value="120"),
     r"effects.echo.estimated.delay_ms.value must be a number, got '120'"),
    (lambda r: r["effects"]["gain"].update(presence_probability=True),
     r"effects.gain.presence_probability must be a number, got True"),
    (lambda r: r["effects"]["reverb"].update(inverse_strength="0.5"),
     r"effects.reverb.inverse_strength must be a number, got '0.5'"),
    (lambda r: r["effects"]["eq"]["estimated"]["low_shelf_gain_db"].pop("unit"),
     r"effects.eq.estimated.low_shelf_gain_db.unit is missing"),
    (lambda r: r["effects"]["eq"]["estimated"]["low_shelf_gain_db"].update(comment="louder"),
     r"effects.eq.estimated.low_shelf_gain_db must be \{\"value\": a number, \"unit\": 'dB'\}"),
])
def test_a_hand_edited_report_with_a_wrong_field_is_refused_naming_it(tmp_path, estimator, edit, message):
    report = json.loads(master(CLIP, SR, model=estimator).to_json())
    edit(report)
    with pytest.raises(ValueError, match=message):
        master(CLIP, SR, model=estimator, report=report)
    (tmp_path / "edited.json").write_text(json.dumps(report))
    with pytest.raises(ValueError, match=f"{tmp_path / 'edited.json'}: malformed report: {message}"):
        master(CLIP, SR, model=estimator, report=tmp_path / "edited.json")


def test_a_residual_correction_as_text_is_refused(estimator):
    report = json.loads(master(CLIP, SR, model=estimator).to_json())
    report["residual_correction"] = {"level_db": "3", "bands_db": {}}
    with pytest.raises(ValueError, match="residual_correction.level_db must be a number, got '3'"):
        master(CLIP, SR, model=estimator, report=report)


# -- 7. a kill mid-file --------------------------------------------------------------------------------------------


def test_a_kill_mid_file_is_redone_the_same_with_no_temporary_file_left(tmp_path, model, monkeypatch, capsys):
    song = write(tmp_path / "song.wav")
    assert main(["master", str(song), "-o", str(tmp_path / "clean"), "--format", "wav16", *model]) == 0
    out = tmp_path / "out"

    def killed(path, *args, **kwargs):  # what SIGKILL leaves in the middle of save_audio: a partial temporary
        Path(path).with_name(f".{Path(path).name}.{os.getpid()}-0badc0de.tmp").write_bytes(b"RIFF partial")
        raise KeyboardInterrupt

    monkeypatch.setattr("dmaster.apps.master.save_audio", killed)
    assert main(["master", str(song), "-o", str(out), "--format", "wav16", *model]) == 130
    assert (out / ".song_mastered.wav.{}-0badc0de.tmp".format(os.getpid())).is_file()
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["master", str(song), "-o", str(out), "--format", "wav16", *model]) == 0
    assert f"note: {out}: removed 1 temporary file of outputs left by an interrupted run" in error_lines(capsys)
    assert sorted(path.name for path in out.iterdir()) == ["song_mastered.json", "song_mastered.wav"]
    assert (out / "song_mastered.wav").read_bytes() == (tmp_path / "clean" / "song_mastered.wav").read_bytes()


def test_a_report_written_before_an_effect_joined_the_chain_reads_it_as_absent(estimator):
    report = master(music_like(1.0, 44100, 2, seed=1).numpy(), 44100, model=estimator).report
    del report["effects"]["stereo"]
    params, strength, _ = read_report(report, estimator)
    assert float(params["stereo"]["present"][0]) == 0.0 and strength["stereo"] == 1.0
