"""The reference long-term spectrum of ``dmaster.tonal``: the median over the train tracks.

    python recipes/tonal_reference.py data/raw/debian_music dmaster/assets/tonal_reference.json

Each track's first 60 s (silent tracks skipped), at 44.1 kHz; the split is by track, as in training.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from dmaster.data.audio import AudioError, load_audio, write_json_atomic
from dmaster.data.splits import find_tracks, split_of
from dmaster.features import level_db
from dmaster.tonal import BAND_EDGES_HZ, long_term_spectrum

SAMPLE_RATE = 44100


def main() -> None:
    root, output = Path(sys.argv[1]), Path(sys.argv[2])
    spectra = []
    for track in find_tracks(root):
        if split_of(track.id) != "train":
            continue
        try:
            audio = load_audio(track.path, SAMPLE_RATE, 60.0)
        except AudioError:
            continue
        if float(level_db(audio[None])) > -60.0:
            spectra.append(long_term_spectrum(audio, SAMPLE_RATE))
    write_json_atomic(output, {
        "description": f"median long-term spectrum (dB re its mean) of {len(spectra)} train tracks of {root.name}, "
                       "first 60 s each",
        "band_edges_hz": [round(f, 2) for f in BAND_EDGES_HZ],
        "band_db": [round(float(v), 3) for v in np.median(spectra, 0)],
        "spread_db": [round(float(v), 2) for v in np.std(spectra, 0)],
    })


if __name__ == "__main__":
    main()
