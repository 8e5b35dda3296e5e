"""master(reference=…) and `dmaster master --reference`: the wiring of dmaster.mastering.reference into the pipeline."""

import json

import numpy as np
import pytest
import soundfile as sf

from dmaster.checkpoint import save_checkpoint
from dmaster.cli import main
from dmaster.loudness import integrated_loudness
from dmaster.mastering import master
from dmaster.synth import music_like

SR = 44100
CLIP = music_like(2.0, SR, 2, seed=11)
QUIET_REFERENCE = music_like(3.0, 48000, 1, seed=12) * 0.1


@pytest.fixture(scope="module")
def model(tmp_path_factory, estimator):
    path = tmp_path_factory.mktemp("model") / "param.pt"
    save_checkpoint(path, estimator, "param", {}, step=0)
    return path


def test_the_output_takes_the_references_loudness_unless_a_target_is_given(estimator):
    result = master(CLIP.numpy(), SR, model=estimator, reference=QUIET_REFERENCE.numpy(), reference_sample_rate=48000)
    reference_lufs = integrated_loudness(QUIET_REFERENCE.expand(2, -1), 48000)  # mono: as it plays on both speakers
    assert result.audio.shape == CLIP.shape and result.audio.dtype == np.float32
    assert integrated_loudness(result.audio, SR) == pytest.approx(reference_lufs, abs=0.2)
    assert {"input_estimate", "reference_estimate", "correction"} <= result.report["reference"].keys()
    louder = master(CLIP, SR, model=estimator, reference=QUIET_REFERENCE, reference_sample_rate=48000,
                    target_lufs=-16.0, true_peak=True)
    assert louder.report["output"]["loudness_lufs"] == pytest.approx(-16.0, abs=0.1)


@pytest.mark.parametrize("options, message", [
    ({"model": "unet"}, "needs the parameter model"),
    ({"report": {"effects": {}}}, "give one"),
    ({"normalise_peak": True}, "each set the output level"),
])
def test_reference_mode_refuses_what_it_cannot_do(estimator, options, message):
    with pytest.raises(ValueError, match=message):
        master(CLIP, SR, **{"model": estimator, **options}, reference=CLIP)


def test_the_command_matches_a_reference_file_read_once(tmp_path, model, monkeypatch, capsys):
    for name in ("a.wav", "b.wav"):
        sf.write(tmp_path / name, CLIP.T.numpy(), SR)
    sf.write(tmp_path / "reference.flac", QUIET_REFERENCE.T.numpy(), 48000)
    reads = []
    import dmaster.mastering.reference as reference_module
    real = reference_module.read_audio
    monkeypatch.setattr(reference_module, "read_audio", lambda path: reads.append(path) or real(path))
    out = tmp_path / "out"
    assert main(["master", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "-o", str(out), "--model", str(model),
                 "--reference", str(tmp_path / "reference.flac"), "--plot"]) == 0
    assert len(reads) == 1
    report = json.loads((out / "a_mastered.json").read_text())
    assert report["reference"]["reference_loudness_lufs"] == pytest.approx(report["output"]["loudness_lufs"], abs=0.1)
    assert (out / "a_mastered.png").is_file()


def test_a_silent_reference_is_refused_before_any_file(tmp_path, model, capsys):
    sf.write(tmp_path / "a.wav", CLIP.T.numpy(), SR)
    sf.write(tmp_path / "silent.wav", np.full((SR, 2), 1e-5, np.float32), SR)  # under the −70 LUFS gate
    assert main(["master", str(tmp_path / "a.wav"), "-o", str(tmp_path / "out"), "--model", str(model),
                 "--reference", str(tmp_path / "silent.wav")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "silent.wav" in lines[0] and not (tmp_path / "out").exists()
