"""Master a song, then give another mix of it (an instrumental, a radio edit) the same correction.

    python examples/another_mix.py [SONG] [OTHER_MIX]

Without files it uses a synthesised song, quiet and with a muffled top, and as its other mix
the same song with the lead part left out. The second call estimates nothing: it applies the
first report (``report=``), so both mixes are treated alike; ``keep=`` leaves an effect in.
"""

import sys

import numpy as np
import soundfile as sf
import torch

import dmaster
from dmaster.effects import eq, gain
from dmaster.synth import music_like


def degrade(clean: np.ndarray, sample_rate: int) -> np.ndarray:
    """``clean`` (channels, samples) with its top muffled and turned down by 8 dB."""
    x = torch.from_numpy(clean)[None]
    x = eq.forward(x, sample_rate, high_shelf_hz=5000.0, high_shelf_q=0.7, high_shelf_gain_db=-6.0)
    return gain.forward(x, sample_rate, gain_db=-8.0)[0].numpy()


if len(sys.argv) > 2:
    song, sample_rate = sf.read(sys.argv[1], dtype="float32", always_2d=True)
    other, other_rate = sf.read(sys.argv[2], dtype="float32", always_2d=True)
    if other_rate != sample_rate:
        sys.exit("the two mixes must share a sample rate")
    song, other = song.T, other.T
else:
    sample_rate = 44100
    backing, lead = music_like(8.0, sample_rate, 2, seed=21).numpy(), music_like(8.0, sample_rate, 2, seed=22).numpy()
    song, other = degrade(backing + 0.5 * lead, sample_rate), degrade(backing, sample_rate)

first = dmaster.master(song, sample_rate)
again = dmaster.master(other, sample_rate, report=first.report)
with_dynamics = dmaster.master(other, sample_rate, report=first.report, keep=["compressor"])
for name, result in (("song", first), ("other mix, same correction", again),
                     ("other mix, dynamics kept", with_dynamics)):
    applied = [f"{effect} {report['correction_strength']:.2f}" for effect, report in result.report["effects"].items()
               if report["applied"]]
    print(f"{name}: {', '.join(applied) or 'nothing undone'}")
