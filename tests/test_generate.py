"""``dmaster demaster`` end to end on a tiny FMA-like tree: outputs, errors, reruns,
determinism, shards and interrupted writes."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from dmaster import audio as audio_module
from dmaster import cli
from dmaster.apps.demaster import parse_shard
from dmaster.data.describe import describe_effect
from dmaster.data.generate import degrade_batch, degraded_excerpts, select_shard, track_params
from dmaster.effects import SPEC_VERSION, SPECS, Chain
from dmaster.synth import music_like

RATE = 44100
GOOD = {"000_000002", "000_000005", "001_001039", "001_mono", "002_low_rate"}
BROKEN = {"002/broken.mp3", "002/empty.mp3"}


@pytest.fixture(scope="module")
def fma(tmp_path_factory) -> Path:
    """``data/raw/fma_small`` with three stereo MP3s, a mono WAV, a 22.05 kHz FLAC,
    a corrupt MP3 and an empty one; clips of 2 s."""
    root = tmp_path_factory.mktemp("tree") / "data/raw/fma_small"
    for folder in ("000", "001", "002"):
        (root / folder).mkdir(parents=True)
    base = music_like(2.0, RATE, 2, seed=3).T.numpy()
    for k, name in enumerate(("000/000002.mp3", "000/000005.mp3", "001/001039.mp3")):
        sf.write(root / name, np.roll(base, 7000 * k, axis=0) * (0.9 - 0.2 * k), RATE, format="MP3")
    sf.write(root / "001/mono.wav", base[:, 0], RATE)
    sf.write(root / "002/low_rate.flac", soxr.resample(base, RATE, 22050), 22050)
    (root / "002/broken.mp3").write_bytes(np.random.default_rng(0).bytes(6000))
    (root / "002/empty.mp3").write_bytes(b"")
    return root


def demaster(*args: str | Path) -> int:
    """Run ``dmaster demaster`` in-process."""
    return cli.main(["demaster", *map(str, args)])


def manifest(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "manifest.jsonl").read_text().splitlines()]


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def first_run(fma, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("run") / "output_full"
    before = tree_digest(fma)
    assert demaster(fma, "-o", output, "--batch-size", "4") == 0
    assert tree_digest(fma) == before, "inputs must never be modified"
    return output


def test_every_output_is_written_and_exactly_the_broken_inputs_are_reported(fma, first_run):
    records = manifest(first_run)
    assert sorted(r["id"] for r in records) == sorted(GOOD)
    errors = [json.loads(line) for line in (first_run / "errors.jsonl").read_text().splitlines()]
    assert sorted(Path(e["source"]).relative_to(fma).as_posix() for e in errors) == sorted(BROKEN)
    assert all(e["source"] in e["reason"] for e in errors)
    for record in records:
        ident = record["id"]
        for kind in ("original", "degraded"):
            data, rate = sf.read(first_run / f"output_audio/{ident}_{kind}.wav", dtype="float32")
            assert rate == RATE and data.shape == (record["frames"], 2)
        assert (first_run / f"output_spectrograms/{ident}.png").read_bytes()[:4] == b"\x89PNG"
        assert json.loads((first_run / f"output_txt/{ident}.json").read_text()) == record
        text = (first_run / f"output_txt/{ident}.txt").read_text()
        assert all(word in text for word in ("EQ:", "Gain:", "Echo:", "Reverb:", "Compressor:"))
        assert record["seed"] == 0 and record["spec_version"] == SPEC_VERSION and record["sample_rate"] == RATE
        assert abs(record["duration_s"] - 2.0) < 0.1 and record["split"] in ("train", "val", "test")
        Chain(RATE).from_json([record["params"]])  # valid parameters
    mono, _ = sf.read(first_run / "output_audio/001_mono_original.wav")
    assert np.array_equal(mono[:, 0], mono[:, 1])
    assert not list(first_run.rglob("*.tmp"))


def test_a_rerun_skips_every_finished_pair(fma, first_run, capsys):
    stamps = {p: p.stat().st_mtime_ns for p in first_run.rglob("*") if p.is_file()}
    assert demaster(fma, "-o", first_run) == 0
    assert "0 pairs written, 5 already done" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in first_run.rglob("*") if p.is_file()} == stamps


def test_one_seed_gives_identical_audio_and_batching_only_rounding(fma, first_run, tmp_path):
    assert demaster(fma, "-o", tmp_path / "same", "--no-spectrograms", "--batch-size", "4") == 0
    assert demaster(fma, "-o", tmp_path / "batch1", "--no-spectrograms", "--batch-size", "1") == 0
    assert not list((tmp_path / "same/output_spectrograms").iterdir())
    for ident in GOOD:
        name = f"output_audio/{ident}_degraded.wav"
        assert (tmp_path / "same" / name).read_bytes() == (first_run / name).read_bytes()
        # other batch sizes: float32 FFTs on grids of other lengths
        np.testing.assert_allclose(sf.read(tmp_path / "batch1" / name)[0], sf.read(first_run / name)[0], atol=5e-5)
    assert [r["params"] for r in sorted(manifest(tmp_path / "batch1"), key=lambda r: r["id"])] == \
        [r["params"] for r in sorted(manifest(first_run), key=lambda r: r["id"])]


def test_shards_together_give_exactly_the_full_set(fma, tmp_path):
    output = tmp_path / "sharded"
    assert demaster(fma, "-o", output, "--no-spectrograms", "--shard", "1/2") == 0
    first = {r["id"] for r in manifest(output)}
    assert demaster(fma, "-o", output, "--no-spectrograms", "--shard", "2/2") == 0
    ids = [r["id"] for r in manifest(output)]
    assert first and len(ids) == len(set(ids)) and set(ids) == GOOD and first < GOOD


def test_limit_and_subfolders_select_tracks(fma, tmp_path):
    assert demaster(fma, "-o", tmp_path / "out", "--no-spectrograms", "--subfolders", "001", "002", "--limit", "2") == 0
    assert [r["id"] for r in manifest(tmp_path / "out")] == ["001_001039", "001_mono"]


def test_an_interrupted_run_leaves_no_partial_file_and_resumes(fma, tmp_path, monkeypatch):
    output = tmp_path / "out"
    real_write, calls = audio_module.wavfile.write, []

    def write_then_die(file, rate, data):
        calls.append(file)
        if len(calls) == 5:  # third pair's original: write half of it, then the process is interrupted
            real_write(file, rate, data[: len(data) // 2])
            raise KeyboardInterrupt
        real_write(file, rate, data)

    monkeypatch.setattr(audio_module.wavfile, "write", write_then_die)
    assert demaster(fma, "-o", output, "--no-spectrograms", "--batch-size", "8") == 130
    monkeypatch.undo()
    assert not [p for p in output.rglob("*") if p.name.startswith(".")], "no temporary file may remain"
    assert not Path(calls[-1]).exists() and not (output / "output_audio/001_001039_original.wav").exists()
    assert len(manifest(output)) == 2 and len(list(output.glob("output_audio/*.wav"))) == 4

    lines = (output / "manifest.jsonl").read_text().splitlines()  # killed mid-line, after the JSON of pair 2
    (output / "manifest.jsonl").write_text(lines[0] + "\n" + lines[1][:40])
    with pytest.warns(UserWarning, match="not valid JSON"):
        assert demaster(fma, "-o", output, "--no-spectrograms") == 0
    ids = [r["id"] for r in manifest_lines_that_parse(output)]
    assert sorted(ids) == sorted(GOOD)


def manifest_lines_that_parse(output: Path) -> list[dict]:
    records = []
    for line in (output / "manifest.jsonl").read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return records


def test_unsafe_or_inconsistent_output_folders_are_refused(fma, first_run, capsys):
    before = tree_digest(fma)
    assert demaster(fma, "-o", fma / "000" / "out") == 2
    assert demaster(fma, "-o", fma) == 2
    assert "overlaps the input folder" in capsys.readouterr().err
    assert tree_digest(fma) == before
    assert demaster(fma, "-o", first_run, "--seed", "1") == 2
    assert "generated with" in capsys.readouterr().err
    assert demaster(fma / "missing", "-o", first_run.parent / "other") == 2


def test_parameters_belong_to_the_track_not_the_batch():
    chain = Chain(RATE)
    together = chain.to_json(track_params(chain, 7, ["a", "b", "c"]))
    assert together[1] == chain.to_json(track_params(chain, 7, ["b"]))[0]
    assert together[0] != chain.to_json(track_params(chain, 8, ["a"]))[0]


def test_batched_degradation_matches_one_by_one():
    chain = Chain(RATE)
    clips = [music_like(0.4, RATE, 2, seed=1), music_like(0.5, RATE, 2, seed=2)[:, :15000]]
    params = track_params(chain, 0, ["a", "b"])
    for effect in params.values():
        effect["present"][:] = 1.0
    batched = degrade_batch(chain, clips, params, torch.device("cpu"))
    for i, clip in enumerate(clips):
        alone = degrade_batch(chain, [clip], {e: {k: v[i : i + 1] for k, v in p.items()} for e, p in params.items()},
                              torch.device("cpu"))[0]
        assert batched[i].shape == clip.shape
        torch.testing.assert_close(batched[i], alone, atol=5e-5, rtol=0)  # float32 FFTs on grids of other lengths


def test_parameters_in_words():
    eq = next(s for s in SPECS if s.name == "eq")
    values = {"present": True, **{p.name: p.neutral for p in eq.params},
              "bell_2_gain_db": 5.8, "bell_2_hz": 2100.0, "bell_2_q": 1.4}
    assert "bell 2 +5.8 dB at 2100 Hz, Q 1.40" in describe_effect(eq, values)
    assert describe_effect(eq, {**values, "present": False}) == "EQ: off"
    compressor = next(s for s in SPECS if s.name == "compressor")
    text = describe_effect(compressor, {"present": True, "threshold_db": -24.0, "ratio": 3.1, "attack_ms": 12.0,
                                        "release_ms": 180.0, "knee_db": 6.0, "makeup_db": 4.0})
    assert text == ("Compressor: threshold -24.0 dBFS, ratio 3.1:1, attack 12 ms, release 180 ms, knee 6.0 dB, "
                    "makeup +4.0 dB")


def test_shard_arguments():
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/4", "5/4", "1-4", "a/b"):
        with pytest.raises(Exception, match="k/N"):
            parse_shard(bad)
    items = list(range(10))
    assert sorted(x for k in (1, 2, 3) for x in select_shard(items, k, 3)) == items


def test_degraded_excerpts_are_spread_evenly_and_drawn_per_track():
    chain = Chain(44100)
    audio = torch.arange(10 * 44100, dtype=torch.float32).expand(2, -1) / 1e6
    excerpts = list(degraded_excerpts(chain, audio, "song", 3, 1.0, 7))
    assert [int(clean[0, 0] * 1e6) for clean, _, _ in excerpts] == [99225, 198450, 297675]  # 9 s spread in quarters
    for k, (clean, params, degraded) in enumerate(excerpts):
        assert clean.shape == (2, 44100)
        expected = track_params(chain, 7 + k, ["song"])
        assert all(torch.equal(params[e][n], expected[e][n]) for e in expected for n in expected[e])
        torch.testing.assert_close(degraded, chain(clean[None], params)[0])
    whole, _, _ = next(degraded_excerpts(chain, audio[:, :1000], "song", 2, 1.0, 7))
    assert whole.shape == (2, 1000)  # a track shorter than the excerpt is taken whole
    with_clean = list(degraded_excerpts(chain, audio, "song", 2, 1.0, 7, clean=1))  # spread over all three
    assert [int(clean[0, 0] * 1e6) for clean, _, _ in with_clean] == [99225, 198450, 297675]
    torch.testing.assert_close(with_clean[1][2], excerpts[1][2])  # the degraded ones as without it
    last, params, given = with_clean[2]
    assert params is None and given is last  # left as it is
