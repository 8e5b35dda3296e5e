"""Collect the CC/GPL music of Debian packages into one folder of tracks.

    python recipes/prepare_debian_music.py EXTRACTED_ROOT data/raw/debian_music

EXTRACTED_ROOT is where the packages were unpacked (``dpkg -x PACKAGE.deb ROOT``). The
training corpus: fretsonfire-songs-sectoid, fretsonfire-songs-muldjord, hyperrogue-music and
wesnoth-1.16-music. Frets on Fire songs come as stems (``song.ogg`` backing and
``guitar.ogg``); they are summed into one mix, peak-normalised only if the sum clips. The
external test corpus (``recipes/external_music.sh``; no model was trained or fitted on it):
singularity-music (CC BY-SA), planetblupi-music-ogg (GPL-3+) and nexuiz-music (GPL-2+, its
tracks inside a zip archive, ``music.pk3``); of these, tracks under 32 kHz or 25 s are left
out. Other tracks are copied as they are. Existing outputs are kept. It refuses to collect the external corpus
into a folder holding the training corpus's manifest.

``recipes/corpus.py`` builds the larger training corpus (many more packages, with a manifest of licences) and uses
:func:`mix_stems` and :func:`slug` from here, so that the tracks of these four packages keep their names.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

from dmaster.audio import atomic_path

CLEARED_MUSIC = Path(__file__).with_name("cleared_music.json")
"""The music cleared for training and fitting, and the external check's packages (``recipes/cleared_music.json``)."""
EXTERNAL_PACKAGES = tuple(p["package"] for p in json.loads(CLEARED_MUSIC.read_text())["external_check"])
"""The external check's packages (``external_check`` of :data:`CLEARED_MUSIC`): no model, fit or choice of settings
may see them."""
EXTERNAL_FOLDERS = ("singularity", "planetblupi", "nexuiz")
"""The folders their tracks are collected in."""
EXTERNAL_PATHS = ("usr/share/games/singularity", "usr/share/planetblupi", "usr/share/games/nexuiz")
"""Where the external packages keep their music when unpacked."""


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def mix_stems(folder: Path, output: Path) -> None:
    stems = [folder / name for name in ("song.ogg", "guitar.ogg", "rhythm.ogg") if (folder / name).is_file()]
    signals = [sf.read(stem, dtype="float32", always_2d=True) for stem in stems]
    rate = signals[0][1]
    length = max(len(data) for data, _ in signals)
    mix = np.zeros((length, 2), dtype=np.float32)
    for data, _ in signals:
        mix[: len(data)] += data if data.shape[1] == 2 else np.repeat(data[:, :1], 2, axis=1)
    peak = float(np.abs(mix).max())
    if peak > 1.0:
        mix /= peak / 10 ** (-1 / 20)
    with atomic_path(output) as temporary:
        sf.write(temporary, mix, rate, format="FLAC", subtype="PCM_16")


def check_separate(root: Path, destination: Path) -> None:
    """Exit if the external check's music would go into the training corpus (a folder with ``corpus.py``'s
    manifest).

    Args:
        root: Where the packages were unpacked.
        destination: The folder the tracks go to.
    """
    if (destination / "manifest.jsonl").exists() and any((root / path).exists() for path in EXTERNAL_PATHS):
        sys.exit(f"refused: {destination} is a training corpus; the external check's music "
                 f"({', '.join(EXTERNAL_PACKAGES)}) never goes there")


def main(root: Path, destination: Path) -> None:
    check_separate(root, destination)
    found = 0
    for song in sorted(root.glob("usr/share/games/fretsonfire/data/songs/*/*/song.ogg")):
        target = destination / "fretsonfire" / f"{slug(song.parent.parent.name)}_{slug(song.parent.name)}.flac"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            mix_stems(song.parent, target)
        found += 1
    for pattern, package in (("usr/share/hyperrogue/music/*.ogg", "hyperrogue"),
                             ("usr/share/games/wesnoth/*/data/core/music/*.ogg", "wesnoth")):
        for track in sorted(root.glob(pattern)):
            target = destination / package / f"{slug(track.stem)}.ogg"
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                shutil.copyfile(track, target)
            found += 1
    for pattern, package in (("usr/share/games/singularity/music/*.ogg", "singularity"),
                             ("usr/share/planetblupi/music/*.ogg", "planetblupi")):
        for track in sorted(root.glob(pattern)):
            found += copy_if_long_and_wide(track.read_bytes(), destination / package / f"{slug(track.stem)}.ogg")
    for archive in sorted(root.glob("usr/share/games/nexuiz/data/music.pk3")):
        with zipfile.ZipFile(archive) as pk3:
            for name in sorted(n for n in pk3.namelist() if n.endswith(".ogg")):
                found += copy_if_long_and_wide(pk3.read(name), destination / "nexuiz" / f"{slug(Path(name).stem)}.ogg")
    print(f"{found} tracks under {destination}")


def copy_if_long_and_wide(data: bytes, target: Path) -> int:
    """Write ``data`` (an audio file) to ``target`` if it is at least 25 s long at 32 kHz or more; 1 if written
    (or there already)."""
    if target.exists():
        return 1
    info = sf.info(io.BytesIO(data))
    if info.samplerate < 32000 or info.duration < 25.0:
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as temporary:
        temporary.write_bytes(data)
    return 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
