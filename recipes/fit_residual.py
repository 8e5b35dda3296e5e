"""Fit a model's residual correction (dmaster.residual) and write it next to the checkpoint.

On excerpts of the train tracks, degraded by the generator or (``--clean`` per track) left as they are:
``master()`` meets music that needs nothing too, and a correction fitted to degraded music alone moves it. The
model's restoration as ``master()`` makes it but without a correction (with the policy fitted by
recipes/fit_policy.py, if it ran before: the parameter model's presence calibrations, inverse strengths and
thresholds, the U-Net's mask strength) is compared with the original: the targets are the difference of their
long-term spectra (relative to the mean, 40 bands) and of their loudness (ITU-R BS.1770). A ridge regression
maps the analysis windows' features to them; its strength is chosen by cross-validation over train tracks
(grouped by track). The band strength and a level offset are then chosen for the MR-STFT distance of
``master()``'s output (the peak kept under −1 dBFS) with the cross-validated (held-out track) predictions on
every fourth train excerpt. A correction that does not improve the val split (its excerpts drawn the same way)
is not written.

    python recipes/fit_residual.py --model dmaster/weights/param.pt     # writes dmaster/weights/param.residual.json
    python recipes/fit_residual.py --model dmaster/weights/unet.pt      # writes dmaster/weights/unet.residual.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
from pathlib import Path

import numpy as np
import pyloudnorm
import torch

from dmaster.audio import load_audio
from dmaster.data.generate import degraded_excerpts
from dmaster.data.splits import find_tracks, split_of, spread
from dmaster.effects import Chain
from dmaster.mastering.estimation import model_windows, track_estimate
from dmaster.mastering.level import PEAK_CEILING_DB, set_level
from dmaster.mastering.pretrained import RESIDUAL_SUFFIX, Policy, resolve_model, resolve_policy
from dmaster.mastering.restoration import filter_with, restore, restore_estimate
from dmaster.metrics import mrstft_distance
from dmaster.models import ParamEstimator
from dmaster.residual import ResidualCorrection, band_levels_db, extra_response, regression_features

RIDGE_STRENGTHS = (10.0, 30.0, 100.0, 300.0, 1000.0)
BAND_STRENGTHS = (0.5, 0.75, 1.0)
LEVEL_OFFSETS_DB = (-6.0, -5.0, -4.0, -3.0, -2.0, -1.5, -1.0, -0.5, 0.0)
SELECTION_EVERY = 4
"""Every this many train excerpts is kept (audio and all) for choosing the band strength and level offset."""


def examples(model, policy: Policy, tracks, draws: int, clean_excerpts: int, seconds: float, seed: int,
             keep_audio_every: int):
    """Per excerpt (``draws`` degraded and ``clean_excerpts`` left clean per track): the track id, features,
    targets (40 band dB + level dB) and, for every ``keep_audio_every``-th excerpt, the uncorrected restoration
    (as ``master()`` makes it with ``policy``) and the original."""
    sample_rate = model.sample_rate
    chain = Chain(sample_rate)
    meter = pyloudnorm.Meter(sample_rate)
    rows = []
    for track in tracks:
        audio = load_audio(track.path, sample_rate)
        for clean, _, degraded in degraded_excerpts(chain, audio, track.id, draws, seconds, seed, clean_excerpts):
            windows = model_windows(model, degraded)
            params = None
            if isinstance(model, ParamEstimator):  # as master() restores, keeping the raw estimate
                params = track_estimate(model, windows)
                restored = restore_estimate(model.chain, degraded, params, policy).audio
            else:
                restored = restore(model, degraded, policy).audio
            loudness = [meter.integrated_loudness(a.T.double().numpy()) for a in (clean, restored)]
            if not all(map(math.isfinite, loudness)):
                continue  # a silent excerpt
            spectra = [band_levels_db(a[None], sample_rate) for a in (clean, restored)]
            target = torch.cat([spectra[0] - spectra[0].mean() - spectra[1] + spectra[1].mean(),
                                torch.tensor([loudness[0] - loudness[1]], dtype=torch.float64)])
            if not torch.isfinite(target).all():
                continue  # audio that is not finite (the band levels have a power floor)
            estimate = () if params is None else chain.to_vectors(params)  # the features: the raw estimate
            row = {"track": track.id, "x": regression_features(windows, sample_rate, *estimate), "y": target}
            if len(rows) % keep_audio_every == 0:
                row.update(restored=restored, clean=clean)
            rows.append(row)
        print(f"{track.id}: {len(rows)} excerpts", flush=True)
    return rows


def ridge(x: np.ndarray, y: np.ndarray, strength: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardisation (mean, scale) and weights ``(features + 1, targets)`` with an intercept row."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    design = np.c_[(x - mean) / scale, np.ones(len(x))]
    penalty = strength * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0
    return mean, scale, np.linalg.solve(design.T @ design + penalty, design.T @ y)


def predict(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.c_[(x - mean) / scale, np.ones(len(x))] @ weights


def cross_validated(x: np.ndarray, y: np.ndarray, groups: np.ndarray, strength: float, folds: int = 8) -> np.ndarray:
    """Held-out predictions of ``y``: each track's excerpts predicted by a fit without them."""
    tracks = np.unique(groups)
    np.random.default_rng(0).shuffle(tracks)
    predicted = np.zeros_like(y)
    for held_out in np.array_split(tracks, folds):
        test = np.isin(groups, held_out)
        predicted[test] = predict(x[test], *ridge(x[~test], y[~test], strength))
    return predicted


def corrected_mrstft(rows, corrections, sample_rate: int) -> float:
    """Mean MR-STFT distance of ``master()``'s output for ``rows``, each restoration filtered with its
    correction (band dB (40,), level dB) from ``corrections``, or left alone where that is ``None``."""
    distances = []
    for row, correction in zip(rows, corrections or [None] * len(rows)):
        out = row["restored"]
        if correction is not None:
            out = filter_with(out, extra_response(*correction, sample_rate), sample_rate)
        out = set_level(out, sample_rate, None, PEAK_CEILING_DB)[0]
        distances.append(float(mrstft_distance(out[None], row["clean"][None])))
    return float(np.mean(distances))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("dmaster/weights/param.pt"))
    parser.add_argument("--music-root", type=Path, default=Path("data/raw/debian_music"))
    parser.add_argument("--draws", type=int, default=8, help="excerpts (and degradations) per track")
    parser.add_argument("--clean", type=int,
                        help="excerpts per track left clean, so that the correction learns to leave alone what "
                             "needs nothing (master() meets such music too); default 1 for a parameter model, 0 for "
                             "the U-Net baseline, whose policy is fitted for degraded music alone")
    parser.add_argument("--seconds", type=float, default=15.0, help="excerpt length")
    parser.add_argument("--seed", type=int, default=9000, help="seed of each track's first degradation")
    parser.add_argument("--max-tracks", type=int, help="at most this many train tracks, spread over the sorted list "
                                                       "(so over every package); default all")
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    model = resolve_model(args.model)
    if args.clean is None:
        args.clean = int(isinstance(model, ParamEstimator))
    tracks = find_tracks(args.music_root)
    policy = resolve_policy(args.model)  # the one recipes/fit_policy.py fitted, if it ran before
    train_tracks = spread([t for t in tracks if split_of(t.id) == "train"], args.max_tracks or None)
    train = examples(model, policy, train_tracks, args.draws, args.clean, args.seconds, args.seed,
                     SELECTION_EVERY)
    val = examples(model, policy, [t for t in tracks if split_of(t.id) == "val"], args.draws, args.clean,
                   args.seconds, args.seed, 1)
    x, y = (torch.stack([r[k] for r in train]).numpy() for k in ("x", "y"))
    groups = np.array([r["track"] for r in train])

    held_out = {s: cross_validated(x, y, groups, s) for s in RIDGE_STRENGTHS}
    errors = {s: float(np.sqrt(((p - y) ** 2).mean())) for s, p in held_out.items()}
    strength = min(errors, key=errors.get)
    print("cross-validated RMS error (dB) by ridge strength:", {s: round(e, 3) for s, e in errors.items()},
          f"(none: {np.sqrt((y ** 2).mean()):.3f})")
    mean, scale, weights = ridge(x, y, strength)
    fitted = {"feature_mean": mean.tolist(), "feature_scale": scale.tolist(), "weights": weights.tolist()}

    # band strength and level offset: on the train excerpts kept with their audio, each corrected as
    # a fit without its track would correct it
    kept = [i for i, r in enumerate(train) if "restored" in r]
    selection = [train[i] for i in kept]
    raw = torch.from_numpy(held_out[strength][kept])
    scores = {(b, o): corrected_mrstft(selection, [ResidualCorrection(**fitted, band_strength=b, level_offset_db=o)
                                                   .limited(r) for r in raw], model.sample_rate)
              for b, o in itertools.product(BAND_STRENGTHS, LEVEL_OFFSETS_DB)}
    band_strength, level_offset = min(scores, key=scores.get)
    uncorrected = corrected_mrstft(selection, None, model.sample_rate)
    print(f"held-out train MR-STFT ({len(selection)} excerpts): {uncorrected:.4f} without; "
          + ", ".join(f"{b:g}/{o:+g} dB {v:.4f}" for (b, o), v in scores.items()))
    correction = ResidualCorrection(**fitted, band_strength=band_strength, level_offset_db=level_offset)
    baseline = corrected_mrstft(val, None, model.sample_rate)
    corrected = corrected_mrstft(val, [correction.predict(r["x"]) for r in val], model.sample_rate)
    description = (f"ridge (strength {strength:g}) fitted on {len(train)} excerpts of {len(set(groups))} train tracks "
                   f"({args.seconds:g} s, {args.draws} degraded and {args.clean} clean each, seeds from {args.seed}); "
                   f"band strength {band_strength:g} and level offset {level_offset:+g} dB chosen with held-out-track "
                   f"predictions on {len(selection)} of them: MR-STFT {uncorrected:.3f} -> "
                   f"{scores[band_strength, level_offset]:.3f}; "
                   f"{len(val)} val excerpts: {baseline:.3f} -> {corrected:.3f}")
    out = args.model.with_name(args.model.stem + RESIDUAL_SUFFIX)
    if corrected >= baseline:
        print(f"{description}\nno gain on the val split: nothing written"
              + (f" ({out}, fitted before, is left as it is: delete it to go without a correction)"
                 if out.exists() else ""))
        return
    dataclasses.replace(correction, description=description).save(out)
    print(f"{description}\nwrote {out}")


if __name__ == "__main__":
    main()
