"""Choose the reference refinement's trust and limit (:mod:`dmaster.mastering.reference`) on cleared music.

For items built as ``benchmarks/reference_match.py`` builds them, but from the ``val`` tracks of the
cleared corpus (never the external check set), the true tonal correction is known: the 40-band
response of the reference's style EQ less the input's (pedalboard's filters, measured on an impulse).
Per item this recipe takes the swap's correction S (``match_reference(steps=0)``) and the
difference D between the reference's and the input's long-term band spectra, and scores every
candidate target curve ``S + trust * clip(D - S, ±limit)`` by its rms distance (dB, mean over
:data:`dmaster.mastering.tone.MATCH_RANGE_HZ` removed) from the true correction, for same-track and
other-track references. The chosen pair minimises the mean of both sets; a two-fold cross-validation
over the tracks shows what that choice is worth on tracks it was not chosen on. Two more lines say how far any
such rule can go: the rms of D − E (how much the two passages' own content differs, the noise in the
reference's evidence) and the best linear estimate of E from S and D (ridge regression on the other half of
the tracks, a matrix over all bands, scored on the held-out half): the bound of every trust-and-limit rule.
It prints; it writes nothing (the constants live in ``dmaster/mastering/reference.py``).

    python recipes/fit_reference_trust.py --music-root data/raw/debian_music   # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import pedalboard
import torch

from dmaster.data.splits import find_tracks, split_of, spread
from dmaster.mastering import reference, tone
from dmaster.residual import STFT_SIZE

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import reference_match as protocol  # noqa: E402  (benchmarks/reference_match.py: the items and their styles)

TRUSTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
LIMITS_DB = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, float("inf"))
SETS = ("same track", "other track")
RIDGES = (1e2, 1e3, 1e4, 1e5)
"""Regularisations tried for the linear bound (the features are dB, summed over items)."""


def style_eq_db(style: dict[str, float]) -> np.ndarray:
    """The 40 band levels (dB) of a style's EQ (its shelves and peak filter), from its impulse response."""
    rate = protocol.SAMPLE_RATE
    board = pedalboard.Pedalboard(protocol.style_eq(style))
    impulse = np.zeros((1, rate), np.float32)
    impulse[0, 0] = 1.0
    factor = -(-rate // STFT_SIZE)  # the DTFT at the STFT's bins, exactly: a longer transform, every factor-th bin
    response = np.fft.rfft(board(impulse, rate)[0], STFT_SIZE * factor)[::factor]
    return tone.band_levels_db(torch.from_numpy(np.abs(response).astype(np.float64) ** 2), rate).numpy()


def centred(db: np.ndarray) -> np.ndarray:
    """Band levels ``(..., 40)`` → those inside the match range, less their mean (as the refinement compares)."""
    return tone.centred(torch.from_numpy(db))[..., tone.match_weights() > 0].numpy()


def measure(paths: list[Path], seeds: list[int]) -> dict[str, dict[str, np.ndarray]]:
    """Per set: the true corrections E, the swap's S and the spectral differences D ``(items, bands)``, and the
    track of each item."""
    rows: dict[str, dict[str, list]] = {name: {"E": [], "S": [], "D": [], "track": []} for name in SETS}
    for seed in seeds:
        for item in protocol.make_items(paths, seed):
            first, second = item["styles"]
            truth = style_eq_db(second) - style_eq_db(first)
            for name, ref in item["reference"].items():
                _, report = reference.match_reference(item["input"], ref, "param", steps=0)
                spectra = report["spectra_db"]
                for key, values in (("E", truth), ("S", list(report["correction"]["eq_curve_db"].values())),
                                    ("D", np.subtract(list(spectra["reference"].values()),
                                                      list(spectra["input"].values())))):
                    rows[name][key].append(centred(np.asarray(values, dtype=np.float64)))
                rows[name]["track"].append(item["track"])
        print(f"seed {seed}: {len(paths)} tracks measured", flush=True)
    return {name: {k: np.asarray(v) for k, v in values.items()} for name, values in rows.items()}


def errors(data: dict[str, np.ndarray], trust: float, limit: float) -> np.ndarray:
    """Per item, the rms distance (dB) of the target curve at ``trust`` and ``limit`` from the true correction."""
    target = data["S"] + trust * np.clip(data["D"] - data["S"], -limit, limit)
    return np.sqrt(((data["E"] - target) ** 2).mean(-1))


def linear_bound(data: dict[str, np.ndarray], ridge: float) -> float:
    """Mean rms error (dB) of the ridge-regression estimate ``S + [D − S, 1] · A`` of E, ``A`` fitted on one half
    of the tracks and scored on the other (both ways)."""
    tracks = sorted(set(data["track"]))
    features = np.concatenate([data["D"] - data["S"], np.ones((len(data["D"]), 1))], 1)
    wanted = data["E"] - data["S"]
    out = []
    for fold in (0, 1):
        held = np.array([t in tracks[fold::2] for t in data["track"]])
        x, y = features[~held], wanted[~held]
        matrix = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ y)
        out.append(np.sqrt(((wanted[held] - features[held] @ matrix) ** 2).mean(-1)))
    return float(np.concatenate(out).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--music-root", type=Path, default=Path("data/raw/debian_music"))
    parser.add_argument("--tracks", type=int, default=40, help="val tracks used, spread evenly over the split")
    parser.add_argument("--seeds", default="16,17", help="comma-separated style seeds")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    paths = [t.path for t in spread([t for t in find_tracks(args.music_root) if split_of(t.id) == "val"], args.tracks)]
    if len(paths) < 2:
        parser.error(f"--music-root {args.music_root}: {len(paths)} val tracks; the cross-validation needs 2")
    data = measure(paths, [int(s) for s in args.seeds.split(",")])
    grid = list(itertools.product(TRUSTS, LIMITS_DB))

    def score(pair: tuple[float, float], keep=lambda tracks: np.ones(len(tracks), bool)) -> list[float]:
        return [float(errors(data[name], *pair)[keep(data[name]["track"])].mean()) for name in SETS]

    swap = score((0.0, 0.0))
    none = [float(np.sqrt((data[n]["E"] ** 2).mean(-1)).mean()) for n in SETS]
    print(f"rms error (dB), {len(data[SETS[0]]['E'])} items per set: same track | other track")
    print(f"  no correction {none[0]:.3f} | {none[1]:.3f};  swap alone {swap[0]:.3f} | {swap[1]:.3f}")
    noise = [float(np.sqrt(((data[n]["D"] - data[n]["E"]) ** 2).mean(-1)).mean()) for n in SETS]
    print(f"  the spectral difference itself (D; its rms error is the passages' own difference) {noise[0]:.3f} | "
          f"{noise[1]:.3f}")
    bound = [min(linear_bound(data[n], ridge) for ridge in RIDGES) for n in SETS]
    print(f"  best linear estimate from S and D, on held-out tracks (ridge from {RIDGES}) {bound[0]:.3f} | "
          f"{bound[1]:.3f}")
    for pair in grid:
        print("  trust {:.1f} limit {:>4} dB: {:.3f} | {:.3f}".format(*pair, *score(pair)))
    best = min(grid, key=lambda pair: sum(score(pair)))
    print("chosen: trust {} limit {} dB: {:.3f} | {:.3f}".format(*best, *score(best)))
    tracks = sorted(set(data[SETS[0]]["track"]))
    for fold in (0, 1):
        held = {t for i, t in enumerate(tracks) if i % 2 == fold}
        seen = lambda names: np.array([t not in held for t in names])  # noqa: E731
        unseen = lambda names: np.array([t in held for t in names])  # noqa: E731
        pick = min(grid, key=lambda pair: sum(score(pair, seen)))
        now = (reference.REFERENCE_TRUST, reference.REFERENCE_LIMIT_DB)
        print("fold {}: chosen on the other half trust {} limit {} dB -> held out {:.3f} | {:.3f}; "
              "shipped {:.3f} | {:.3f}".format(fold, *pick, *score(pick, unseen), *score(now, unseen)))


if __name__ == "__main__":
    main()
