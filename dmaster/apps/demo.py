"""``dmaster demo``: offline, on a bundled clip of real music (or a synthesised one) — degrade, master,
write files, print the estimate."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

import torch

from ..audio import AudioError, load_audio, save_audio, write_json_atomic
from ..effects import Chain
from ..mastering import master
from ..metrics import mrstft_distance, si_sdr
from ..synth import music_like

SAMPLE_RATE = 44100
BUNDLED_CLIP = "feelings_excerpt.ogg"
"""10 s of a held-out test track (Sectoid, "Feelings", MIT licence; see dmaster/assets/README.md)."""
SYNTHETIC_SECONDS = 8.0
MIN_SECONDS = 0.5
"""The shortest clip the demo takes: the scores compare spectrogram frames of up to 4096 samples."""
DEGRADATION = {
    "eq": {"present": True, "bell_3_hz": 2500.0, "bell_3_q": 1.5, "bell_3_gain_db": 6.0,
           "low_shelf_hz": 120.0, "low_shelf_gain_db": -5.0},
    "gain": {"present": True, "gain_db": -8.0},
    "echo": {"present": True, "delay_ms": 180.0, "level_db": -9.0},
    "compressor": {"present": True, "threshold_db": -24.0, "ratio": 4.0, "attack_ms": 5.0, "release_ms": 120.0,
                   "knee_db": 4.0, "makeup_db": 6.0},
}
"""What the demo does to the clip (physical units); unnamed parameters keep their neutral values."""


def demo_params(chain: Chain) -> dict:
    item = chain.to_json(chain.neutral_params(1))[0]
    for effect, values in DEGRADATION.items():
        item[effect].update(values)
    return chain.from_json([item])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, default=Path("experiments/demo"),
                        help="folder for clean, degraded and mastered WAVs and the JSON (default: experiments/demo)")
    parser.add_argument("--model", default=None, help="'param' (default), 'unet' or a checkpoint path")
    parser.add_argument("--clip", type=Path, default=None,
                        help="audio file to degrade and master (default: the bundled 10 s of real music)")
    parser.add_argument("--synthetic", action="store_true", help="use a synthesised clip instead")
    parser.add_argument("--seconds", type=float, default=None,
                        help=f"at most this many seconds of the clip (default: all of a file, "
                             f"{SYNTHETIC_SECONDS:g} synthesised)")


def demo_clip(args: argparse.Namespace) -> torch.Tensor:
    """The clean clip ``(2, samples)`` at :data:`SAMPLE_RATE`."""
    if args.synthetic:
        return music_like(args.seconds or SYNTHETIC_SECONDS, SAMPLE_RATE, 2, seed=7)
    if args.clip is not None:
        return load_audio(args.clip, SAMPLE_RATE, args.seconds)
    with resources.as_file(resources.files("dmaster") / "assets" / BUNDLED_CLIP) as path:
        return load_audio(path, SAMPLE_RATE, args.seconds)


def run(args: argparse.Namespace) -> int:
    chain = Chain(SAMPLE_RATE)
    try:
        if args.seconds is not None and not args.seconds >= MIN_SECONDS:
            raise ValueError(f"--seconds must be at least {MIN_SECONDS:g}, got {args.seconds:g}")
        clean = demo_clip(args)
        if clean.shape[-1] < MIN_SECONDS * SAMPLE_RATE:
            raise ValueError(f"the clip is {clean.shape[-1] / SAMPLE_RATE:.3g} s long; the demo needs at least "
                             f"{MIN_SECONDS:g} s")
        params = demo_params(chain)
        degraded = chain(clean[None], params)[0]
        result = master(degraded, SAMPLE_RATE, model=args.model, peak_ceiling_db=0.0)
    except (AudioError, FileNotFoundError, ValueError) as error:
        print(f"dmaster demo: error: {error}", file=sys.stderr)
        return 2
    mastered = torch.as_tensor(result.audio)
    args.output.mkdir(parents=True, exist_ok=True)
    for name, audio in (("clean", clean), ("degraded", degraded), ("mastered", mastered)):
        save_audio(args.output / f"{name}.wav", audio, SAMPLE_RATE)
    truth = chain.to_json(params)[0]
    write_json_atomic(args.output / "demo.json", {"degradation": truth, "mastering": result.report})

    print(f"{'effect':<11} {'degraded with':<44} estimate")
    for spec in chain.specs:
        true_effect = truth[spec.name]
        told = ", ".join(f"{k} {v:g}" for k, v in DEGRADATION.get(spec.name, {}).items() if k != "present") or "—"
        found = result.report.get("effects", {}).get(spec.name)
        estimate = (f"p={found['presence_probability']:.2f}: {found['correction']}" if found
                    else "(U-Net: no parameters)")
        if found and found["inverse_strength"] < 1:
            estimate += f" (the model's inverse strength for it: {found['inverse_strength']:g})"
        print(f"{spec.name:<11} {told if true_effect['present'] else 'off':<44} {estimate}")
    residual = result.report.get("residual_correction")
    if residual:
        bands = residual["bands_db"].values()
        print(f"{'residual':<11} {'—':<44} level {residual['level_db']:+.1f} dB, "
              f"tonal balance {min(bands):+.1f} to {max(bands):+.1f} dB over {len(bands)} bands")
    for name, audio in (("degraded", degraded), ("mastered", mastered)):
        pair = (audio[None], clean[None])
        print(f"{name:>9}: MR-STFT {float(mrstft_distance(*pair)):.3f}, SI-SDR {float(si_sdr(*pair)):.1f} dB")
    print(f"files in {args.output}/", file=sys.stderr)
    return 0
