"""recipes/corpus.py on tiny fabricated packages (no network): which files become tracks, the manifest with its
licences and splits, the docs table, the cleared list read from recipes/cleared_music.json, refusing what it does
not clear and the external check's packages, and a rerun that does nothing new."""

import dataclasses
import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dmaster.audio import load_audio
from dmaster.data.splits import find_tracks, split_of
from dmaster.synth import music_like

RECIPES = Path(__file__).parent.parent / "recipes"
SR = 44100


def load_recipe_module(script: str, name: str = "corpus_recipe"):
    spec = importlib.util.spec_from_file_location(name, RECIPES / script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def corpus(monkeypatch):
    module = load_recipe_module("corpus.py")
    monkeypatch.setattr(module, "MIN_SECONDS", 2.0)  # short files keep the test fast
    monkeypatch.setattr(module.subprocess, "run", lambda *a, **k: pytest.fail(f"no download expected: {a}"))
    yield module
    sys.modules.pop("corpus_recipe", None)


def write(path: Path, seconds: float, rate: int = SR, seed: int = 0, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, music_like(seconds, rate, 2, seed=seed).T.numpy(), rate, **kwargs)
    return path


DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: someone
License: GPL-2+

Files: data/music/zipped.wav
Copyright: someone else
License: CC-BY-SA-3.0
"""


def fake_packages(corpus, unpacked: Path, cache: Path):
    """Two unpacked packages, as :func:`corpus.unpack` leaves them, and their (empty) cached debs."""
    games = corpus.Package(
        "fake-music", "fake", ("usr/share/games/fake/music/**/*.{wav,opus}", "usr/share/games/fake/music.pk3!music/*"),
        "GPL-2+", source=("usr/share/games/fake/", "data/"),
        exclude=(("ambience/*", "an ambience loop"),), licences=(("theme.opus", "CC0-1.0", "README"),))
    plain = corpus.Package("plain-music", "plain", ("usr/share/plain/*.wav",), "CC-BY-4.0")
    root = unpacked / "fake-music"
    music = root / "usr/share/games/fake/music"
    write(music / "good.wav", 3.0, seed=1)
    write(music / "album/Second Song.wav", 3.0, seed=2)
    write(music / "short.wav", 1.0, seed=3)
    write(music / "narrow.wav", 3.0, rate=22050, seed=4)
    write(music / "ambience/wind.wav", 3.0, seed=5)
    sf.write(music / "silent.wav", np.zeros((3 * SR, 2)), SR)
    (music / "broken.wav").write_bytes(b"RIFF not really a wave file")
    shutil.copyfile(music / "good.wav", music / "good_again.wav")
    write(music / "theme.opus", 3.0, rate=48000, seed=6, format="OGG", subtype="OPUS")
    write(root / "tmp/zipped.wav", 3.0, seed=7)
    write(root / "tmp/effect.wav", 3.0, seed=8)
    with zipfile.ZipFile(root / "usr/share/games/fake/music.pk3", "w") as pk3:
        pk3.write(root / "tmp/zipped.wav", "music/zipped.wav")
        pk3.write(root / "tmp/effect.wav", "sound/effect.wav")  # not music: not in the pattern
    shutil.rmtree(root / "tmp")
    (root / "usr/share/doc/fake-music").mkdir(parents=True)
    (root / "usr/share/doc/fake-music/copyright").write_text(DEP5)
    write(unpacked / "plain-music/usr/share/plain/one.wav", 2.5, seed=9)
    (unpacked / "plain-music/usr/share/doc/plain-music").mkdir(parents=True)
    (unpacked / "plain-music/usr/share/doc/plain-music/copyright").write_text("Creative Commons Attribution 4.0\n")
    cache.mkdir()
    for package in (games, plain):
        (cache / f"{package.name}_1.0-1_all.deb").write_bytes(b"")
        marker = json.dumps({"deb": f"{package.name}_1.0-1_all.deb", "paths": corpus.unpack_patterns(package)})
        (unpacked / f"{package.name}.unpacked").write_text(marker + "\n")
    return games, plain


def test_corpus_collects_tracks_with_licences_and_splits(tmp_path, corpus, capsys):
    games, plain = fake_packages(corpus, tmp_path / "unpacked", tmp_path / "debs")
    out, docs = tmp_path / "music", tmp_path / "corpus.md"
    docs.write_text("# Corpus\n\nbefore\n\n<!-- BEGIN corpus -->\nold table\n<!-- END corpus -->\n\nafter\n")
    summary = corpus.build([games, plain], out, tmp_path / "debs", tmp_path / "unpacked", docs)

    records = {r["path"]: r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    assert sorted(records) == ["fake/album_second_song.wav", "fake/good.wav", "fake/theme.ogg", "fake/zipped.wav",
                               "plain/one.wav"]
    assert {r["track"] for r in records.values()} == {t.id for t in find_tracks(out)}  # what the trainer reads
    for r in records.values():
        assert r["split"] == split_of(r["track"]) and r["seconds"] >= 2.0 and r["rate"] >= 32000
    assert records["fake/good.wav"]["licence"] == "GPL-2+"
    assert records["fake/good.wav"]["licence_from"] == "debian/copyright: Files: *"
    assert records["fake/zipped.wav"]["licence"] == "CC-BY-SA-3.0"  # from the zip, licensed by its source path
    assert records["fake/zipped.wav"]["source"] == "usr/share/games/fake/music.pk3!music/zipped.wav"
    assert records["fake/theme.ogg"]["licence"] == "CC0-1.0" and records["fake/theme.ogg"]["format"] == "OGG/OPUS"
    assert load_audio(out / "fake/theme.ogg", SR).shape[0] == 2  # Opus, written as .ogg, reads back
    assert records["plain/one.wav"]["licence"] == "CC-BY-4.0" and "by hand" in records["plain/one.wav"]["licence_from"]

    skipped = {s["source"].rsplit("/", 1)[-1]: s["reason"] for s in summary["packages"]["fake-music"]["skipped"]}
    assert skipped["short.wav"].startswith("1.0 s is shorter than 2 s")
    assert skipped["narrow.wav"] == "22050 Hz is below 32000 Hz"
    assert skipped["wind.wav"] == "an ambience loop"
    assert skipped["silent.wav"].startswith("near-silent")
    assert skipped["broken.wav"].startswith("unusable: ")  # reported, and the run went on
    assert skipped["good_again.wav"] == "the same file as fake/good.wav"
    assert len(skipped) == 6 and "effect.wav" not in skipped

    assert summary["total"]["tracks"] == 5 and sum(summary["total"]["splits"].values()) == 5
    assert (out / "licences/fake-music/copyright").read_text() == DEP5
    text = docs.read_text()
    assert text.startswith("# Corpus\n\nbefore\n\n<!-- BEGIN corpus -->\n| package |") and text.endswith("after\n")
    assert "old table" not in text and "| fake-music | 1.0-1 | 4 |" in text and "| **2 packages** | | **5** |" in text

    # a rerun finds everything in place: nothing is decoded, written or removed
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    corpus.build([games, plain], out, tmp_path / "debs", tmp_path / "unpacked", docs)
    assert "fake-music: up to date (4 tracks)" in capsys.readouterr().out
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()} == before

    # a changed rule collects the package again; a track it now leaves out is removed
    stricter = dataclasses.replace(games, exclude=games.exclude + (("good.wav", "left out now"),))
    corpus.build([stricter, plain], out, tmp_path / "debs", tmp_path / "unpacked", docs)
    assert not (out / "fake/good.wav").exists() and (out / "fake/good_again.wav").exists()
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 5  # the copy takes the place of the original


def test_corpus_refuses_the_external_packages(tmp_path, corpus):
    for name in ("singularity-music", "planetblupi-music-ogg", "nexuiz-music"):
        with pytest.raises(SystemExit, match="refused"):
            corpus.build([corpus.Package(name, "x", ("*.ogg",), "GPL-2+")], tmp_path / "music", tmp_path, tmp_path)
        with pytest.raises(SystemExit, match="refused"):
            corpus.main(["--packages", name, "--out", str(tmp_path / "music"), "--no-docs"])
    assert not {p.name for p in corpus.PACKAGES} & {"singularity-music", "planetblupi-music-ogg", "nexuiz-music"}
    write(tmp_path / "music/nexuiz/thunder.wav", 3.0)  # their music under a training root stops the run
    with pytest.raises(SystemExit, match="external check"):
        corpus.build([], tmp_path / "music", tmp_path, tmp_path)


def test_corpus_list_follows_the_cleared_list(corpus):
    names = [p.name for p in corpus.PACKAGES]
    assert len(set(names)) == len(names) >= 12
    assert {"fretsonfire-songs-sectoid", "fretsonfire-songs-muldjord", "hyperrogue-music",
            "wesnoth-1.16-music"} <= set(names)  # the first corpus's packages, same folders
    assert "0ad-data" not in names
    assert set(names) <= set(corpus.CLEARED_PACKAGES)
    for package in corpus.PACKAGES:
        assert package.licence and package.music and all(p.startswith("usr/share/") for p in package.music)


def test_the_cleared_list_is_the_file_in_the_repository(tmp_path, corpus):
    listed = json.loads((RECIPES / "cleared_music.json").read_text())
    assert corpus.CLEARED_MUSIC == RECIPES / "cleared_music.json" and corpus.CLEARED == listed
    cleared = [p["package"] for p in listed["cleared"] + listed["cleared_small"]]
    external = [p["package"] for p in listed["external_check"]]
    assert list(corpus.CLEARED_PACKAGES) == cleared and len(set(cleared)) == len(cleared)
    assert external == ["singularity-music", "planetblupi-music-ogg", "nexuiz-music"]
    assert not set(external) & set(cleared)
    prepare = load_recipe_module("prepare_debian_music.py", "prepare_recipe")
    assert prepare.EXTERNAL_PACKAGES == corpus.EXTERNAL_PACKAGES == tuple(external)
    for p in listed["cleared"]:
        assert p["licences"] and p["music"] and all(m.startswith("usr/share/") for m in p["music"])
    # a package the file does not list is refused, and so is one of the external check's
    with pytest.raises(SystemExit, match="refused: lmms-data: not cleared"):
        corpus.check_cleared(["zaz-data", "lmms-data"])
    with pytest.raises(SystemExit, match="external check"):
        corpus.check_cleared(["nexuiz-music"])
    with pytest.raises(SystemExit) as refused:
        corpus.main(["--packages", "lmms-data", "--out", str(tmp_path / "music"), "--no-docs"])
    assert refused.value.code == 2 and not (tmp_path / "music").exists()
    # docs/corpus.md shows the file as it is (python recipes/corpus.py --cleared-table writes it)
    docs = (RECIPES.parent / "docs" / "corpus.md").read_text()
    begin, end = "<!-- BEGIN cleared -->\n", "<!-- END cleared -->"
    assert docs[docs.index(begin) + len(begin): docs.index(end)] == corpus.cleared_table(listed)
    copy = tmp_path / "corpus.md"
    copy.write_text(docs.replace(corpus.cleared_table(listed), "stale\n"))
    corpus.main(["--cleared-table", "--docs", str(copy)])
    assert copy.read_text() == docs


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_corpus_unpacks_only_the_music_of_a_deb(tmp_path, corpus):
    tree = tmp_path / "tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN/control").write_text("Package: fake-music\nVersion: 1.0-1\nArchitecture: all\n"
                                         "Maintainer: nobody <nobody@example.org>\nDescription: fake\n")
    write(tree / "usr/share/games/fake/music/a.wav", 1.0)
    (tree / "usr/share/games/fake/levels").mkdir(parents=True)
    (tree / "usr/share/games/fake/levels/big.dat").write_bytes(b"x" * 1000)
    (tree / "usr/share/doc/fake-music").mkdir(parents=True)
    (tree / "usr/share/doc/fake-music/copyright").write_text(DEP5)
    (tmp_path / "debs").mkdir()
    deb = tmp_path / "debs/fake-music_1.0-1_all.deb"
    subprocess.check_call(["dpkg-deb", "--root-owner-group", "-Znone", "--build", str(tree), str(deb)],
                          stdout=subprocess.DEVNULL)
    package = corpus.Package("fake-music", "fake", ("usr/share/games/fake/music/*.wav",), "GPL-2+")
    root = corpus.unpack(package, corpus.fetch("fake-music", tmp_path / "debs"), tmp_path / "unpacked")
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "usr/share/doc/fake-music/copyright", "usr/share/games/fake/music/a.wav"]
    (root / "usr/share/games/fake/music/a.wav").unlink()
    assert corpus.unpack(package, deb, tmp_path / "unpacked") == root  # once per deb: not unpacked again
    assert not (root / "usr/share/games/fake/music/a.wav").exists()


def test_prepare_debian_music_keeps_the_external_music_out_of_the_corpus(tmp_path):
    root, corpus_root = tmp_path / "extracted", tmp_path / "music"
    write(root / "usr/share/games/singularity/music/song.ogg", 1.0, format="OGG")
    corpus_root.mkdir()
    (corpus_root / "manifest.jsonl").write_text("")
    prepare = load_recipe_module("prepare_debian_music.py", "prepare_recipe")
    with pytest.raises(SystemExit, match="refused"):
        prepare.main(root, corpus_root)
    assert list(corpus_root.iterdir()) == [corpus_root / "manifest.jsonl"]
