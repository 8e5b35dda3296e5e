"""Master a mix towards a reference: take the reference's tonal balance, dynamics and loudness, and print
the correction in physical units.

    python examples/reference_master.py [MIX] [REFERENCE] [OUTPUT.wav]

Without files, the mix is the bundled clip made dull and quiet, and the reference is the same clip made
bright and loud: the output should come out bright and loud.
"""

import sys
from importlib import resources

import soundfile as sf

from dmaster.effects import eq, gain
from dmaster.limiter import peak_db
from dmaster.mastering.level import set_level
from dmaster.mastering.pretrained import resolve_model
from dmaster.mastering.reference import match_reference, prepare_reference

model = resolve_model(None)  # the shipped parameter model; everything below runs at its rate
rate = model.sample_rate
if len(sys.argv) > 2:
    audio, file_rate = sf.read(sys.argv[1], dtype="float32", always_2d=True)
    mix = prepare_reference(audio.T, file_rate, rate)  # reads and resamples any (channels, samples) audio
    reference = prepare_reference(sys.argv[2], None, rate)
else:
    clip = prepare_reference(str(resources.files("dmaster") / "assets" / "feelings_excerpt.ogg"), None, rate)
    mix = gain.forward(eq.forward(clip[None], rate, high_shelf_hz=3000.0, high_shelf_gain_db=-6.0), rate, -8.0)[0]
    reference = eq.forward(clip[None, :, : 5 * rate], rate, high_shelf_hz=5000.0, high_shelf_gain_db=4.0,
                           low_shelf_hz=100.0, low_shelf_gain_db=2.0)[0]

matched, report = match_reference(mix, reference, model)
# the level stage: the reference's loudness, true peaks under -1 dBTP (what master(reference=...) does)
output, level = set_level(matched, rate, report["reference_loudness_lufs"], -1.0, true_peak=True)

curve = report["correction"]["eq_curve_db"]
print("correction (dB): " + ", ".join(f"{band} {curve[band]:+.1f}" for band in ("93 Hz", "1067 Hz", "9053 Hz")))
print(f"compressor applied: {report['correction']['compressor_applied']}")
print(f"refinement loss before (dB²): {report['refinement']['spectrum_loss_db2_before']}")
print(f"refinement loss after (dB²): {report['refinement']['spectrum_loss_db2_after']}")
print(f"reference loudness (LUFS): {report['reference_loudness_lufs']}")
print(f"loudness reached (LUFS): {level['loudness_lufs']}")
print(f"true peak (dBTP): {peak_db(output, true_peak=True):.2f}")
if len(sys.argv) > 3:
    sf.write(sys.argv[3], output.T.numpy(), rate, subtype="PCM_24")
