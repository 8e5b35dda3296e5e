"""Choose a parameter model's per-effect inverse strengths and write them next to the checkpoint.

``master()`` weights each effect's inverse by the model's presence probability; the strength
scales that weight further (0 leaves the effect alone, 1 trusts the estimate fully). It is
what the estimate of an effect is worth: an inverse driven by a poor estimate does more harm
than leaving the effect in. On excerpts of the train tracks degraded by the generator, one
sweep of coordinate descent over the effects in chain order picks, for each, the strength in
:data:`STRENGTHS` with the lowest mean MR-STFT distance of ``master()``'s output (without a
residual correction; the peak kept under −1 dBFS) to the original, where it beats the current
one by more than twice the standard error of the paired difference (else the current stays).
The val split is the gate: strengths that do not improve it are not written. Fit the residual
correction after this (``recipes/fit_residual.py``): it corrects what the restoration with
these strengths leaves.

    python recipes/fit_strength.py --model dmaster/weights/param.pt   # writes dmaster/weights/param.strength.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dmaster.data.audio import load_audio
from dmaster.data.generate import degraded_excerpts
from dmaster.data.splits import find_tracks, split_of
from dmaster.mastering.estimation import estimate
from dmaster.mastering.level import set_level
from dmaster.mastering.pretrained import STRENGTH_SUFFIX, resolve_model, save_strength
from dmaster.mastering.restoration import apply_estimate
from dmaster.metrics import mrstft_distance
from dmaster.models import ParamEstimator

STRENGTHS = (0.0, 0.5, 1.0)
PEAK_CEILING_DB = -1.0


def excerpts(model, tracks, draws: int, seconds: float, seed: int) -> list[dict]:
    """Per excerpt: the original, the degraded audio and the model's estimate from it."""
    chain, sample_rate = model.chain, model.sample_rate
    rows = []
    for track in tracks:
        audio = load_audio(track.path, sample_rate)
        for clean, _, degraded in degraded_excerpts(chain, audio, track.id, draws, seconds, seed):
            if float(clean.abs().max()) == 0.0:
                continue  # digital silence: nothing to measure
            rows.append({"clean": clean, "degraded": degraded, "estimate": estimate(model, degraded)})
    return rows


def distances(model, rows: list[dict], strength: dict[str, float]) -> np.ndarray:
    """Per excerpt, the MR-STFT distance to the original of ``master()``'s output with ``strength``."""
    out = []
    for row in rows:
        restored = apply_estimate(model.chain, row["degraded"], row["estimate"], strength)
        restored = set_level(restored, model.sample_rate, None, PEAK_CEILING_DB)[0]
        out.append(float(mrstft_distance(restored[None], row["clean"][None])))
    return np.array(out)


def clearly_better(new: np.ndarray, old: np.ndarray) -> bool:
    """Whether ``new`` distances beat ``old`` (paired, per excerpt) by more than twice the standard error."""
    difference = old - new
    return difference.mean() > 2 * difference.std(ddof=1) / np.sqrt(len(difference))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("dmaster/weights/param.pt"))
    parser.add_argument("--music-root", type=Path, default=Path("data/raw/debian_music"))
    parser.add_argument("--draws", type=int, default=2, help="excerpts (and degradations) per train track")
    parser.add_argument("--val-draws", type=int, default=6, help="excerpts (and degradations) per val track")
    parser.add_argument("--seconds", type=float, default=15.0, help="excerpt length")
    parser.add_argument("--seed", type=int, default=8000, help="seed of each track's first degradation")
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    model = resolve_model(args.model)
    if not isinstance(model, ParamEstimator):
        parser.error(f"{args.model} is not a parameter model: the U-Net has no effects to weight")
    tracks = find_tracks(args.music_root)
    train = excerpts(model, [t for t in tracks if split_of(t.id) == "train"], args.draws, args.seconds, args.seed)
    full = dict.fromkeys(model.chain.effect_names, 1.0)
    initial = distances(model, train, full)
    strength, best = dict(full), initial
    print(f"{len(train)} train excerpts, every effect at strength 1: MR-STFT {initial.mean():.4f}", flush=True)
    for effect in model.chain.effect_names:
        for candidate in [s for s in STRENGTHS if s != full[effect]]:
            scores = distances(model, train, {**strength, effect: candidate})
            print(f"  {effect} at {candidate:g}: {scores.mean():.4f}", flush=True)
            if clearly_better(scores, best):
                strength, best = {**strength, effect: candidate}, scores
    val = excerpts(model, [t for t in tracks if split_of(t.id) == "val"], args.val_draws, args.seconds, args.seed)
    baseline, chosen = distances(model, val, full).mean(), distances(model, val, strength).mean()
    description = (f"chosen by coordinate descent over {STRENGTHS} on {len(train)} excerpts of the train tracks "
                   f"({args.seconds:g} s, {args.draws} degradations each, seeds from {args.seed}; a change kept when "
                   f"it lowers the MR-STFT of master()'s output without residual correction by over two standard "
                   f"errors): {initial.mean():.3f} -> {best.mean():.3f}; {len(val)} val excerpts: {baseline:.3f} -> "
                   f"{chosen:.3f}")
    print(f"strengths {strength}\n{description}")
    if chosen >= baseline:
        print("no gain on the val split: nothing written")
        return
    out = args.model.with_name(args.model.stem + STRENGTH_SUFFIX)
    save_strength(out, strength, description)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
