"""Turn a folder of music into (original, degraded) training pairs.

    python examples/demaster_folder.py [MUSIC_FOLDER] [OUTPUT_FOLDER]

Without a folder it writes three synthetic tracks to a temporary one first.
"""

import json
import sys
import tempfile
from pathlib import Path

import soundfile as sf

from dmaster.data.generate import generate
from dmaster.synth import music_like

work = Path(tempfile.mkdtemp(prefix="dmaster-example-"))
if len(sys.argv) > 1:
    music = Path(sys.argv[1])
else:
    music = work / "music"
    music.mkdir()
    for seed in range(3):
        sf.write(music / f"track{seed}.flac", music_like(4.0, 44100, 2, seed=seed).T.numpy(), 44100)
output = Path(sys.argv[2]) if len(sys.argv) > 2 else work / "pairs"

summary = generate(music, output, seed=0, batch_size=4, spectrograms=True)
print(f"{summary.written} pairs in {output}")
first = json.loads((output / "manifest.jsonl").read_text().splitlines()[0])
print((output / "output_txt" / f"{first['id']}.txt").read_text())
