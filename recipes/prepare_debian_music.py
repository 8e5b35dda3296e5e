"""Collect the CC/GPL music of four Debian packages into one folder of tracks.

    python recipes/prepare_debian_music.py EXTRACTED_ROOT data/raw/debian_music

EXTRACTED_ROOT is where the packages were unpacked (``dpkg -x PACKAGE.deb ROOT``):
fretsonfire-songs-sectoid, fretsonfire-songs-muldjord, hyperrogue-music and
wesnoth-1.16-music. Frets on Fire songs come as stems (``song.ogg`` backing and
``guitar.ogg``); they are summed into one mix, peak-normalised only if the sum
clips. Other tracks are copied as they are. Existing outputs are kept.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from dmaster.data.audio import atomic_path


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


def main(root: Path, destination: Path) -> None:
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
    print(f"{found} tracks under {destination}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
