"""Audio loading policy, clear errors, atomic writes, JSON lines, track ids and splits."""

import json
import os
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from dmaster.audio import (
    AudioError,
    append_jsonl,
    atomic_path,
    load_audio,
    read_jsonl,
    read_window,
    remove_stale_temporaries,
    save_audio,
    write_json_atomic,
)
from dmaster.data.splits import find_tracks, split_of, track_id

RATE = 44100


def tone(seconds: float, rate: int, frequency: float = 1000.0, channels: int = 2) -> np.ndarray:
    """``(frames, channels)`` float32 sine at −6 dBFS, a different phase per channel."""
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * frequency * t + c) for c in range(channels)], axis=1).astype(np.float32)


def test_stereo_at_the_working_rate_loads_exactly(tmp_path):
    data = tone(0.5, RATE)
    sf.write(tmp_path / "a.wav", data, RATE, subtype="FLOAT")
    audio = load_audio(tmp_path / "a.wav", RATE)
    assert audio.dtype == torch.float32 and audio.shape == (2, data.shape[0])
    assert torch.equal(audio, torch.from_numpy(data.T))


def test_mono_is_duplicated_and_more_channels_fold_down(tmp_path):
    mono = tone(0.2, RATE, channels=1)
    sf.write(tmp_path / "mono.flac", mono, RATE)
    audio = load_audio(tmp_path / "mono.flac", RATE)
    assert audio.shape == (2, mono.shape[0]) and torch.equal(audio[0], audio[1])

    quad = tone(0.2, RATE, channels=4)
    sf.write(tmp_path / "quad.wav", quad, RATE, subtype="FLOAT")
    audio = load_audio(tmp_path / "quad.wav", RATE)
    assert audio.shape == (2, quad.shape[0])
    np.testing.assert_allclose(audio[0], (quad[:, 0] + quad[:, 2]) / 2, atol=1e-7)
    np.testing.assert_allclose(audio[1], (quad[:, 1] + quad[:, 3]) / 2, atol=1e-7)


def test_other_rates_are_resampled_and_long_files_clipped(tmp_path):
    sf.write(tmp_path / "low.wav", tone(1.0, 22050, frequency=1000.0), 22050, subtype="FLOAT")
    audio = load_audio(tmp_path / "low.wav", RATE)
    assert abs(audio.shape[-1] - RATE) <= 1
    spectrum = torch.fft.rfft(audio[0]).abs()
    assert abs(int(spectrum.argmax()) * RATE / audio.shape[-1] - 1000.0) < 2.0
    assert load_audio(tmp_path / "low.wav", RATE, max_seconds=0.25).shape == (2, round(0.25 * RATE))


def test_mp3_and_ogg_load_as_stereo(tmp_path):
    for name, audio_format in (("a.mp3", "MP3"), ("a.ogg", "OGG")):
        sf.write(tmp_path / name, tone(0.5, RATE), RATE, format=audio_format)
        audio = load_audio(tmp_path / name, RATE)
        assert audio.shape[0] == 2 and abs(audio.shape[1] - RATE // 2) < 0.05 * RATE


@pytest.mark.parametrize("make, words", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: sf.write(p, np.zeros((0, 2), np.float32), RATE, format="WAV"), "empty"),
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)), "cannot decode"),
    (lambda p: sf.write(p, np.zeros((1000, 2), np.float32), RATE, format="WAV"), "silent"),
    (lambda p: sf.write(p, np.full((1000, 2), 1e-6, np.float32), RATE, format="WAV", subtype="FLOAT"), "silent"),
    (lambda p: sf.write(p, np.array([[0.5, np.nan]] * 100, np.float32), RATE, format="WAV", subtype="FLOAT"), "NaN"),
])
def test_unusable_files_raise_clear_errors(tmp_path, make, words):
    path = tmp_path / "input.wav"
    make(path)
    with pytest.raises(AudioError, match=words) as error:
        load_audio(path, RATE)
    assert str(path) in str(error.value)
    assert isinstance(error.value, ValueError)


def test_float_wav_round_trip_is_exact_and_does_not_clip(tmp_path):
    audio = torch.randn(2, 1000) * 3
    save_audio(tmp_path / "x.wav", audio, RATE)
    assert sf.info(str(tmp_path / "x.wav")).subtype == "FLOAT"
    assert torch.equal(load_audio(tmp_path / "x.wav", RATE), audio)
    assert torch.equal(read_window(tmp_path / "x.wav", 900, 300), torch.cat([audio[:, 900:], torch.zeros(2, 200)], 1))
    with pytest.raises(ValueError, match="NaN"):
        save_audio(tmp_path / "y.wav", torch.full((2, 10), float("nan")), RATE)
    assert list(tmp_path.iterdir()) == [tmp_path / "x.wav"]


@pytest.mark.parametrize("output_format, suffix, subtype, bits", [
    ("wav24", ".wav", "PCM_24", 24), ("wav16", ".wav", "PCM_16", 16), ("flac", ".flac", "PCM_24", 24)])
def test_pcm_formats_are_dithered_clipped_and_reproducible(tmp_path, output_format, suffix, subtype, bits):
    audio = torch.from_numpy(tone(0.5, RATE).T.copy())
    audio[0, 100], audio[1, 200] = 1.7, -1.7  # over full scale: clipped, not wrapped around
    path = tmp_path / f"x{suffix}"
    save_audio(path, audio, RATE, output_format)
    assert sf.info(str(path)).subtype == subtype
    read = torch.from_numpy(sf.read(str(path), dtype="float64")[0].T.copy()).float()
    step = 2.0 ** (1 - bits)
    inside = audio.abs() < 0.99
    assert float((read - audio)[inside].abs().max()) <= 1.5 * step  # rounding plus at most 1 LSB of dither
    assert float(read[0, 100]) == pytest.approx(1 - step) and float(read[1, 200]) == -1.0
    first = path.read_bytes()
    save_audio(path, audio, RATE, output_format)
    assert path.read_bytes() == first
    if bits == 16:  # the dither decorrelates the error from the signal: it is not just rounding
        assert not torch.equal(read, torch.round(audio * 2**15).clamp(-(2**15), 2**15 - 1) / 2**15)


def test_an_unknown_output_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="output_format must be one of"):
        save_audio(tmp_path / "x.mp3", torch.zeros(2, 10), RATE, "mp3")
    assert not list(tmp_path.iterdir())


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "record.json"
    write_json_atomic(target, {"version": 1})
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as temporary:
        temporary.write_text('{"version": 2, "half')
        raise KeyboardInterrupt
    assert json.loads(target.read_text()) == {"version": 1}
    assert list(tmp_path.iterdir()) == [target]


def test_stale_temporaries_are_removed_and_fresh_ones_kept(tmp_path):
    old, fresh = tmp_path / ".a.wav.1-ab.tmp", tmp_path / ".b.wav.2-cd.tmp"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert remove_stale_temporaries(tmp_path) == [old]
    assert not old.exists() and fresh.exists()


def test_json_lines_survive_a_torn_last_line(tmp_path):
    path = tmp_path / "manifest.jsonl"
    append_jsonl(path, {"id": "a"})
    with open(path, "a") as file:
        file.write('{"id": "b", "par')  # killed mid-line
    append_jsonl(path, {"id": "c"})
    with pytest.warns(UserWarning, match="not valid JSON"):
        assert read_jsonl(path) == [{"id": "a"}, {"id": "c"}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_track_ids_and_search(tmp_path):
    root = tmp_path / "fma_small"
    for name in ("000/000002.mp3", "000/000005.MP3", "001/001039.flac", "001/notes.txt", "x.Wav"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    assert track_id(root / "000/000002.mp3", root) == "000_000002"
    assert [t.id for t in find_tracks(root)] == ["000_000002", "000_000005", "001_001039", "x"]
    assert [t.id for t in find_tracks(root, ["001"])] == ["001_001039"]
    with pytest.raises(FileNotFoundError, match="002"):
        find_tracks(root, ["002"])


def test_splits_are_deterministic_by_track_with_the_asked_fractions():
    ids = [f"{i // 1000:03d}_{i:06d}" for i in range(4000)]
    splits = [split_of(i) for i in ids]
    assert splits == [split_of(i) for i in ids]
    assert split_of("000_000002") == "train"  # pinned: hashlib, not hash(), so it never changes
    counts = {s: splits.count(s) / len(ids) for s in ("train", "val", "test")}
    assert abs(counts["val"] - 0.1) < 0.02 and abs(counts["test"] - 0.1) < 0.02
    assert {split_of(i, 0.0, 0.0) for i in ids[:50]} == {"train"}
    with pytest.raises(ValueError, match="fraction"):
        split_of("x", 0.6, 0.6)


@pytest.mark.parametrize("max_seconds", [0.0, -1.0])
def test_a_non_positive_max_seconds_is_refused(tmp_path, max_seconds):
    sf.write(tmp_path / "a.wav", np.zeros((100, 2), np.float32) + 0.1, RATE)
    with pytest.raises(ValueError, match="max_seconds must be positive"):
        load_audio(tmp_path / "a.wav", RATE, max_seconds)
