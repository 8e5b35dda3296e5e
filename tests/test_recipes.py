"""The recipes run end to end on tiny inputs: fitting inverse strengths and residual corrections, collecting
the Debian music; so do benchmarks/eq_identifiability.py, estimate_costs.py, loudness_targets.py and
quality.py."""

import json
import runpy
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from dmaster.checkpoint import save_checkpoint
from dmaster.data.splits import split_of
from dmaster.mastering.pretrained import load_policy
from dmaster.residual import ResidualCorrection
from dmaster.synth import music_like

SR = 44100
RECIPES = Path(__file__).parent.parent / "recipes"
BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def tiny_corpus(root: Path, train: int = 9, val: int = 2, test: int = 0) -> None:
    wanted = {"train": train, "val": val, "test": test}
    for k in range(1000):
        name = f"track{k:03d}"
        if wanted[split_of(name)] > 0:
            wanted[split_of(name)] -= 1
            sf.write(root / f"{name}.wav", music_like(2.0, SR, 2, seed=k).T.numpy(), SR)
        if not any(wanted.values()):
            return


def corpus_and_model(folder: Path, estimator, train: int = 9, val: int = 2) -> Path:
    """A :func:`tiny_corpus` in ``folder / "music"`` and ``estimator`` saved as ``folder / "param.pt"`` (returned)."""
    (folder / "music").mkdir()
    tiny_corpus(folder / "music", train, val)
    checkpoint = folder / "param.pt"
    save_checkpoint(checkpoint, estimator, "param", {}, step=0)
    return checkpoint


def run_recipe(monkeypatch, script: str, *args: str, folder: Path = RECIPES) -> None:
    """Run ``<folder>/<script>`` as ``python <folder>/<script> ARGS`` in this process."""
    monkeypatch.setattr(sys, "argv", [script, *args])
    with torch.enable_grad():  # the script turns gradients off for its process; give them back on exit
        runpy.run_path(str(folder / script), run_name="__main__")


def test_fit_residual_recipe_runs_end_to_end(tmp_path, estimator, monkeypatch, capsys):
    checkpoint = corpus_and_model(tmp_path, estimator)
    run_recipe(monkeypatch, "fit_residual.py", "--model", str(checkpoint), "--music-root", str(tmp_path / "music"),
               "--draws", "1", "--clean", "1", "--seconds", "2", "--max-tracks", "6")
    printed = capsys.readouterr().out
    assert "cross-validated RMS error" in printed and "held-out train MR-STFT (3 excerpts)" in printed
    sidecar = tmp_path / "param.residual.json"
    if "nothing written" in printed:
        assert not sidecar.exists()
    else:
        correction = ResidualCorrection.load(sidecar)
        assert len(correction.feature_mean) == 40 + 1 + 5 + len(estimator.chain.flat_params)
        assert "12 excerpts of 6 train tracks" in correction.description  # one degraded, one clean each
        assert "1 degraded and 1 clean each" in correction.description


def test_fit_policy_recipe_runs_end_to_end(tmp_path, estimator, unet, monkeypatch, capsys):
    checkpoint = corpus_and_model(tmp_path, estimator, train=1, val=3)
    run_recipe(monkeypatch, "fit_policy.py", "--model", str(checkpoint), "--music-root", str(tmp_path / "music"),
               "--draws", "1", "--seconds", "2")
    printed = capsys.readouterr().out
    assert "6 val excerpts of 3 tracks (3 degraded)" in printed and "compressor at 0: " in printed
    assert "clean weight 0: " in printed  # the harm budget's first fit (no weight on harm), always made
    assert "clean mean on unseen albums" in printed  # the budget is judged on albums each half was not fitted on
    assert "gain at 0: " not in printed  # a level-matched distance cannot judge the gain
    assert "residual at 0: " not in printed  # no residual correction next to this checkpoint
    policy = load_policy(tmp_path / "param.policy.json")
    description = json.loads((tmp_path / "param.policy.json").read_text())["description"]
    assert ("no weight of" in description) == ("no clean weight meets the budget" in printed)  # says what held
    assert set(policy.strength) == set(estimator.chain.effect_names)
    assert set(policy.strength.values()) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert set(policy.calibration) <= set(estimator.chain.effect_names) - {"gain"}  # those that help, gain unjudged
    assert set(policy.threshold) == set(estimator.chain.effect_names)
    assert set(policy.threshold.values()) <= {0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9}
    assert "whether it is calibrated" in description
    assert "calibration [a, b] ([a, b, c] with the measured echo level) fitted" in description
    save_checkpoint(tmp_path / "unet.pt", unet, "unet", {}, step=0)  # the U-Net: its mask strength
    run_recipe(monkeypatch, "fit_policy.py", "--model", str(tmp_path / "unet.pt"), "--music-root",
               str(tmp_path / "music"), "--draws", "1", "--seconds", "2")
    printed = capsys.readouterr().out
    assert "mask at 0.5: " in printed and "residual at" not in printed and "clean weight 0: " in printed
    policy = load_policy(tmp_path / "unet.policy.json")
    assert policy.strength == {} and policy.mask in {0.0, 0.25, 0.5, 0.75, 1.0}
    assert "mask and residual strengths" in json.loads((tmp_path / "unet.policy.json").read_text())["description"]
    (tmp_path / "estimator.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a dmaster model checkpoint"):
        run_recipe(monkeypatch, "fit_policy.py", "--model", str(tmp_path / "estimator.pt"))


def test_fit_policy_descent_sweeps_until_it_settles():
    # parts that interact: the best mask strength depends on the residual's, so one sweep in order (mask kept at 1
    # while the residual is 1, then the residual turned off) stops short of the best pair (mask 0.25, residual 0)
    search_weights = runpy.run_path(str(RECIPES / "fit_policy.py"))["search_weights"]
    rows = [{"degraded": k % 2 == 0, "album": k // 2} for k in range(8)]

    def score(parts):
        mask, residual = parts["mask"][0], parts["residual"][0]
        best_mask = 1.0 if residual == 1.0 else 0.25
        return np.array([(mask - best_mask) ** 2 + residual + 0.01 * k for k in range(len(rows))])

    start = {"mask": (1.0, 0.0, False), "residual": (1.0, 0.0, False)}
    chosen, scores, clean_weight, _ = search_weights(rows, start, score, clean_budget=float("inf"))
    assert chosen == {"mask": (0.25, 0.0, False), "residual": (0.0, 0.0, False)} and clean_weight == 0.0
    np.testing.assert_allclose(scores, 0.01 * np.arange(8))


def test_fit_policy_calibrates_only_where_it_helps():
    # an effect's calibration is one more choice of the descent, from uncalibrated: kept where it lowers the
    # objective clearly (eq: degraded items better), left out where it only moves clean music (echo)
    search_weights = runpy.run_path(str(RECIPES / "fit_policy.py"))["search_weights"]
    rows = [{"degraded": k % 2 == 0, "album": k // 4} for k in range(16)]
    degraded = np.array([r["degraded"] for r in rows])

    def score(parts):
        eq, echo = parts["eq"], parts["echo"]
        base = 1.0 + 0.01 * np.arange(len(rows)) + (1 - eq[0]) + (1 - echo[0]) + eq[1] + echo[1]
        return base - 0.3 * (eq[2] and degraded) + 0.2 * (echo[2] and ~degraded)

    start = {"eq": (1.0, 0.0, False), "echo": (1.0, 0.0, False)}
    chosen, _, clean_weight, _ = search_weights(rows, start, score, clean_budget=float("inf"))
    assert chosen == {"eq": (1.0, 0.0, True), "echo": (1.0, 0.0, False)} and clean_weight == 0.0


def test_fit_policy_folds_split_by_album(tmp_path):
    # tracks of one album (a corpus package's folder) stay in one half; a track at the top is its own album
    albums = runpy.run_path(str(RECIPES / "fit_policy.py"))["albums"]
    paths = [tmp_path / "b" / "1.ogg", tmp_path / "a" / "1.ogg", tmp_path / "b" / "2.ogg", tmp_path / "c.ogg"]
    tracks = [SimpleNamespace(path=path, id=path.stem) for path in paths]
    assert albums(tracks, tmp_path) == [1, 0, 1, 2]


def test_eq_identifiability_benchmark_runs_end_to_end(tmp_path, monkeypatch):
    (tmp_path / "music").mkdir()
    tiny_corpus(tmp_path / "music", train=3, val=1)
    out = tmp_path / "out"
    run_recipe(monkeypatch, "eq_identifiability.py", "--music-root", str(tmp_path / "music"), "--split", "val",
               "--excerpts", "2", "--seconds", "1", "--out", str(out), folder=BENCHMARKS)
    report = json.loads((out / "eq_identifiability.json").read_text())
    assert report["spread"]["train_excerpts"] == 6 and len(report["rows"]) == 2
    for system in ("identity", "LMMSE estimate from the long-term spectrum", "param model (master() path)"):
        assert system in (out / "eq_identifiability.md").read_text()
        assert report["summary"][system]["spectrum_error_db"] >= 0
    identity = report["summary"]["identity"]["spectrum_error_db"]
    assert identity > 0.5  # the EQ (always on here) moved the spectrum


def test_estimate_costs_benchmark_runs_end_to_end(tmp_path, estimator, monkeypatch):
    checkpoint = corpus_and_model(tmp_path, estimator, train=0, val=2)
    out = tmp_path / "out"
    run_recipe(monkeypatch, "estimate_costs.py", "--music-root", str(tmp_path / "music"), "--draws", "2",
               "--seconds", "1", "--model", str(checkpoint), "--no-readme", "--out", str(out), folder=BENCHMARKS)
    rows = json.loads((out / "estimate_costs.json").read_text())["rows"]
    assert len(rows) == 4
    for row in rows:
        compressor = row["scores"]["compressor"]
        assert "… its threshold_db and makeup_db true" in compressor and "… its presence true" in compressor
        for effect, scores in row["scores"].items():
            if not row["present"][effect]:  # the effect off: its presence set true leaves the oracle
                assert scores["… its presence true"] == pytest.approx(scores["oracle"])
    text = (out / "estimate_costs.md").read_text()
    assert "**echo**" in text and "the model's estimate" in text


def test_loudness_targets_benchmark_runs_end_to_end(tmp_path, monkeypatch):
    (tmp_path / "music").mkdir()
    tiny_corpus(tmp_path / "music", train=0, val=2)
    out = tmp_path / "out"
    run_recipe(monkeypatch, "loudness_targets.py", "--music-root", str(tmp_path / "music"), "--targets", "-14", "-6",
               "--out", str(out), folder=BENCHMARKS)
    rows = json.loads((out / "loudness_targets.json").read_text())["rows"]
    assert len(rows) == 4 and "| -6 |" in (out / "loudness_targets.md").read_text()
    for row in rows:
        assert row["true_peak"]["output_true_peak_dbtp"] <= -1.0 + 0.05
        assert abs(row["sample_peak"]["loudness_lufs"] - row["target_lufs"]) <= \
            abs(row["turned_down_lufs"] - row["target_lufs"]) + 0.1


def test_quality_benchmark_runs_every_set_end_to_end(tmp_path, estimator, unet, monkeypatch):
    pytest.importorskip("pedalboard")  # set (c)'s independent chain (the bench extra)
    (tmp_path / "music").mkdir()
    tiny_corpus(tmp_path / "music", train=0, val=0, test=2)
    for package, seed in (("singularity", 100), ("nexuiz", 101)):  # fabricated "external" music
        (tmp_path / "external" / package).mkdir(parents=True)
        sf.write(tmp_path / "external" / package / "song.wav", music_like(2.0, SR, 2, seed=seed).T.numpy(), SR)
    save_checkpoint(tmp_path / "param.pt", estimator, "param", {}, step=0)
    save_checkpoint(tmp_path / "unet.pt", unet, "unet", {}, step=0)
    out = tmp_path / "out"
    run_recipe(monkeypatch, "quality.py", "--music-root", str(tmp_path / "music"), "--external-root",
               str(tmp_path / "external"), "--quick", "--seconds", "1", "--max-tracks", "1", "--param-model",
               str(tmp_path / "param.pt"), "--unet-model", str(tmp_path / "unet.pt"), "--no-readme", "--out", str(out),
               folder=BENCHMARKS)
    sets = json.loads((out / "quality.json").read_text())["sets"]
    assert sorted(sets) == ["a", "b", "c", "d"]
    for name, result in sets.items():
        systems = set(result["summary"])
        assert {"identity", "loudness-only", "param", "unet"} <= systems
        assert ("oracle" in systems) == (name in "ab")  # known only for the project's chain
        assert ("oracle, EQ not inverted" in systems) == (name in "ab")
        assert "param, no residual correction" not in systems  # the checkpoint has none: no row equal to param's
        assert {"param − loudness-only", "param − unet", "unet − identity"} <= set(result["paired"])
        assert set(result["presence"]) == set(estimator.chain.effect_names) and result["targets"]
        for row in result["rows"]:
            assert row["mrstft_level_matched"] >= 0 and row["mrstft"] >= 0
    assert sets["d"]["summary"]["identity"]["mrstft_level_matched"] < 1e-3  # the clean original is the reference
    assert sets["a"]["summary"]["oracle"]["mrstft_level_matched"] < sets["a"]["summary"]["identity"][
        "mrstft_level_matched"]
    assert sets["c"]["pedalboard"] and sets["d"]["pedalboard"] is None
    markdown = (out / "quality.md").read_text()
    for heading in ("### (a)", "### (b)", "### (c)", "### (d)", "param − loudness-only", "### Harm against gain",
                    "| param, amount 0.5 |", "| param without its policy |"):
        assert heading in markdown
    for result in sets.values():  # amount 1 is the default; a smaller amount moves the input less
        summary = result["summary"]
        assert "param, amount 0.25" in summary and "param without its policy" in summary
    quality = runpy.run_path(str(BENCHMARKS / "quality_sets.py"))
    headline = quality["headline_markdown"]({k: sets[k] for k in "ad"}, "header")
    assert headline.count("\n| (") == 2 and "| — |" in headline  # (d) has no oracle


def test_prepare_debian_music_collects_every_package(tmp_path):
    root, out = tmp_path / "extracted", tmp_path / "music"

    def ogg(path: Path, seconds: float, rate: int = SR) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, music_like(seconds, rate, 2, seed=len(str(path))).T.numpy(), rate, format="OGG")
        return path

    song = root / "usr/share/games/fretsonfire/data/songs/Sectoid/Metal Madness"
    ogg(song / "song.ogg", 1.0)
    ogg(song / "guitar.ogg", 1.0)
    ogg(root / "usr/share/games/wesnoth/1.16/data/core/music/battle.ogg", 1.0)
    ogg(root / "usr/share/games/singularity/music/A New Journey.ogg", 26.0)
    ogg(root / "usr/share/games/singularity/music/jingle.ogg", 5.0)  # too short for the external corpus
    ogg(root / "usr/share/planetblupi/music/music000.ogg", 26.0, rate=22050)  # too narrow
    archive = root / "usr/share/games/nexuiz/data/music.pk3"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as pk3:
        pk3.writestr("sound/cdtracks/thunder.ogg", ogg(tmp_path / "thunder.ogg", 26.0).read_bytes())
    for _ in range(2):  # a second run keeps what is there
        runpy.run_path(str(RECIPES / "prepare_debian_music.py"), run_name="prepare")["main"](root, out)
    found = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert found == ["fretsonfire/sectoid_metal_madness.flac", "nexuiz/thunder.ogg", "singularity/a_new_journey.ogg",
                     "wesnoth/battle.ogg"]
    assert sf.info(out / "fretsonfire/sectoid_metal_madness.flac").channels == 2


def test_fit_reference_trust_recipe_runs_end_to_end(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pedalboard")
    (tmp_path / "music").mkdir()
    names = [name for name in (f"track{k:03d}" for k in range(100)) if split_of(name) == "val"][:2]
    for k, name in enumerate(names):  # two passages of 10 s each
        sf.write(tmp_path / "music" / f"{name}.wav", music_like(20.5, SR, 2, seed=k).T.numpy(), SR)
    run_recipe(monkeypatch, "fit_reference_trust.py", "--music-root", str(tmp_path / "music"), "--seeds", "1")
    printed = capsys.readouterr().out
    assert "2 items per set" in printed and "chosen: trust" in printed and "fold 1: " in printed
    assert "best linear estimate from S and D" in printed
    (tmp_path / "music" / next(p.name for p in (tmp_path / "music").iterdir())).unlink()
    with pytest.raises(SystemExit):
        run_recipe(monkeypatch, "fit_reference_trust.py", "--music-root", str(tmp_path / "music"))
    assert "1 val tracks" in capsys.readouterr().err
