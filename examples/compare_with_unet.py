"""Master the same degraded clip with the parameter model and the U-Net baseline, and score both.

    python examples/compare_with_unet.py
"""

import torch

from dmaster import Chain, master
from dmaster.metrics import mrstft_distance, si_sdr
from dmaster.synth import music_like

torch.set_grad_enabled(False)
chain = Chain(44100)
clean = music_like(6.0, 44100, 2, seed=12)
params = chain.sample_params(1, torch.Generator().manual_seed(3))
degraded = chain(clean[None], params)[0]
print("degradation:", {k: v for k, v in chain.to_json(params)[0].items() if v["present"]})

outputs = {"degraded (identity)": degraded, "oracle inverse": chain.inverse(degraded[None], params)[0]}
for name in ("param", "unet"):
    outputs[f"{name} model"] = master(degraded, 44100, model=name).audio
print(f"{'':<22}{'MR-STFT':>9}{'SI-SDR dB':>11}")
for name, audio in outputs.items():
    pair = (audio[None], clean[None])
    print(f"{name:<22}{float(mrstft_distance(*pair)):9.3f}{float(si_sdr(*pair)):11.2f}")
