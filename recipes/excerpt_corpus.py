"""Copy excerpts of a music folder's train and val tracks as Ogg Vorbis, to carry a corpus where it must be small.

    python recipes/excerpt_corpus.py data/raw/debian_music data/raw/debian_music_excerpts --seconds 45 --offset 20

Each track keeps its relative path (so its id and split stay the same) with the suffix
``.ogg``; the excerpt starts at ``--offset`` seconds, or earlier where the track is too
short. Test tracks are left out. Existing outputs are kept.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import soundfile as sf

from dmaster.audio import atomic_path
from dmaster.data.splits import find_tracks, split_of

BLOCK = 4096  # frames per write: libsndfile's Vorbis encoder has crashed on single large writes


def write_excerpt(source: Path, output: Path, seconds: float, offset: float, quality: float) -> None:
    info = sf.info(str(source))
    frames = round(seconds * info.samplerate)
    start = max(0, min(round(offset * info.samplerate), info.frames - frames))
    audio, rate = sf.read(str(source), start=start, frames=frames, dtype="float32", always_2d=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as path, sf.SoundFile(str(path), "w", rate, audio.shape[1], format="OGG",
                                                   subtype="VORBIS", compression_level=quality) as handle:
        for begin in range(0, len(audio), BLOCK):
            handle.write(audio[begin : begin + BLOCK])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--offset", type=float, default=20.0, help="start of the excerpt (s)")
    parser.add_argument("--quality", type=float, default=0.5, help="libsndfile compression level, 0 = best")
    args = parser.parse_args()
    for track in find_tracks(args.root):
        if split_of(track.id) == "test":
            continue
        output = (args.output / track.path.relative_to(args.root)).with_suffix(".ogg")
        if not output.exists():
            write_excerpt(track.path, output, args.seconds, args.offset, args.quality)
            print(output)


if __name__ == "__main__":
    main()
