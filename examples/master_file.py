"""Master one file with the shipped model for streaming (−16 LUFS, peaks under −1 dBTP) and print
what it estimated and the level it reached.

    python examples/master_file.py [SONG] [OUTPUT.wav]

Without a song it masters a synthesised clip with an added echo and a treble boost.
"""

import sys

import soundfile as sf

import dmaster
from dmaster.effects import echo, eq
from dmaster.synth import music_like

if len(sys.argv) > 1:
    audio, sample_rate = sf.read(sys.argv[1], dtype="float32", always_2d=True)
    audio = audio.T  # (channels, samples)
else:
    sample_rate = 44100
    clean = music_like(6.0, sample_rate, 2, seed=11)[None]
    degraded = echo.forward(eq.forward(clean, sample_rate, bell_4_hz=8000.0, bell_4_gain_db=8.0, bell_4_q=1.0),
                            sample_rate, delay_ms=250.0, level_db=-8.0)
    audio = degraded[0].numpy()

result = dmaster.master(audio, sample_rate, target_lufs=-16.0, true_peak=True)
print(result.to_json())
output = result.report["output"]
print(f"loudness {output['loudness_lufs']} LUFS, limiter {output.get('peak_limiting_db', 0.0)} dB on the loudest peak")
if len(sys.argv) > 2:
    sf.write(sys.argv[2], result.audio.T, result.sample_rate, subtype="PCM_24")
