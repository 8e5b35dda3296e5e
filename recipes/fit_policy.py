"""Fit the policy by which master() applies a model's correction; write it next to the checkpoint.

The policy (:class:`~dmaster.mastering.pretrained.Policy`) says how much ``master()`` trusts each part
of the correction. For a parameter model, three parts, fitted in this order on music the model was not
trained on (the ``val`` split), each item an excerpt either degraded as ``dmaster demaster`` draws it (the
specs' priors) or left clean:

1. **Calibration of presence**: per effect, the presence probability ``p`` can become
   ``sigmoid(a * logit(p) + b)`` (for the echo ``+ c`` times its level as measured off the cepstrum: evidence
   the network's probability lacks), ``a``, ``b`` and ``c`` fitted by logistic regression on whether the
   effect is on and audible (its contribution at least ``--audible-db`` relative to the degraded audio; see
   :func:`dmaster.data.prior.contributions_db`). A better probability is not yet a better correction (the
   inverse is scaled by it): the calibration is a candidate for step 2, not a given.
2. **Calibrations, inverse strengths and thresholds**: per effect, whether its presence is calibrated, a
   strength from :data:`STRENGTHS` and, jointly with them, a threshold from :data:`THRESHOLDS` (the presence
   below which the inverse is not applied at all: an inverse that harms music without the effect, like the
   echo's comb, can still be applied where the model is sure), by coordinate descent in chain order, swept
   until it settles (the parts interact: a residual strength changes what the EQ's is worth), starting from
   the model as trained (uncalibrated, every strength 1, no threshold): the best triple of an effect is kept
   when it lowers the objective by more than twice the standard error of the paired difference. So a
   calibration that only moves clean music (its offset ``b`` raising every probability) is left out; the
   policy file keeps the calibrations chosen, the description all that were fitted.
   The gain stays as trained (:data:`UNJUDGED`).
3. **Residual strength**: how much of the residual correction to apply, from :data:`STRENGTHS`, the
   same way; where the policy calibrates any presence, the correction is further weighted by the probability
   that anything is to be fixed, ``1 - prod(1 - q)`` (:func:`~dmaster.mastering.restoration.decide`).

The decision rule: **the most gain on degraded music for a bounded harm to clean music.** Every item is
scored by the level-matched MR-STFT distance (the output scaled to the original's RMS: the level is the
user's loudness target) of the output, under the −1 dBFS peak ceiling, to the original. The objective is
the mean over the degraded items plus ``w`` × the mean over the clean items, and ``w`` is the smallest of
:data:`CLEAN_WEIGHTS` whose fitted strengths keep the clean mean within ``--clean-budget`` **on albums the
fit did not see**: two-fold cross-validation over the albums (the top folders under ``--music-root``, the
corpus's packages: fit on one half, measure the clean mean on the other, both ways round; tracks of one album
sound alike, so a split by track flatters), so the budget needs no margin guessed for unseen music; the
strengths are then fitted on all the tracks at that weight. A harm budget rather than a fixed exchange rate
between harm and gain. Every weight's fit is printed: the curve of harm against gain.

For the U-Net, two parts, fitted the same way (same items, objective, harm budget and descent): its **mask
strength** (the log gains of its time–frequency mask times it) and the residual strength.
The shipped baseline is fitted with ``--clean-budget inf`` (clean weight 0): at its strongest on degraded music,
the fairest opponent for the parameter model on the degraded sets; its harm to clean music is measured apart.

    python recipes/fit_policy.py --model dmaster/weights/param.pt   # writes dmaster/weights/param.policy.json
    python recipes/fit_policy.py --model dmaster/weights/unet.pt --clean-budget inf   # unet.policy.json
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from dmaster.audio import load_audio
from dmaster.data.generate import degraded_excerpts
from dmaster.data.prior import contributions_db
from dmaster.data.splits import find_tracks, split_of, spread
from dmaster.effects import Chain
from dmaster.mastering.estimation import model_windows, track_estimate
from dmaster.mastering.level import PEAK_CEILING_DB, set_level
from dmaster.mastering.pretrained import EVIDENCE, POLICY_SUFFIX, Policy, resolve_model, resolve_residual, save_policy
from dmaster.mastering.restoration import (
    Correction,
    calibrate,
    filter_with,
    gated_strengths,
    restore,
    restore_estimate,
)
from dmaster.metrics import CleanTarget
from dmaster.models import ParamEstimator, SpectrogramUNet
from dmaster.residual import ResidualCorrection, extra_response

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
THRESHOLDS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9)
CLEAN_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Weights of the clean mean in the objective, tried in this order until the harm budget holds (0: the most
gain on degraded music, whatever the harm); steps fine enough that the first one within budget leaves little of
the budget unused."""
UNGATED = ("residual", "mask")
"""Parts fitted without a threshold: the residual correction's and the U-Net's mask strengths."""
UNJUDGED = ("gain",)
"""Left as trained (strength 1, uncalibrated): a level-matched distance cannot tell whether a level correction
helps."""


def items(model: ParamEstimator | SpectrogramUNet, tracks, draws: int, seconds: float, seed: int,
          audible_db: float) -> list[dict]:
    """Per track ``draws`` degraded excerpts and one clean one; for a parameter model with its estimate, the
    residual correction's features and the audible-presence labels."""
    sample_rate = model.sample_rate
    chain = model.chain if isinstance(model, ParamEstimator) else Chain(sample_rate)
    rows = []
    for number, track in enumerate(tracks):
        audio = load_audio(track.path, sample_rate)
        for clean, truth, given in degraded_excerpts(chain, audio, track.id, draws, seconds, seed, clean=1):
            if float(clean.abs().max()) == 0.0:
                continue  # digital silence: nothing to measure
            if truth is not None:
                labels = (contributions_db(chain, clean[None], truth)[0] >= audible_db).tolist()
            else:
                labels = [False] * len(chain.effect_names)
            row = {"target": CleanTarget(clean, sample_rate), "given": given, "degraded": truth is not None,
                   "track": number}
            if isinstance(model, ParamEstimator):
                row["windows"] = model_windows(model, given)
                row["estimate"], row["labels"] = track_estimate(model, row["windows"]), labels
            rows.append(row)
        print(f"  {number + 1}/{len(tracks)} tracks estimated", flush=True)
    return rows


def fit_calibration(chain, rows: list[dict]) -> dict[str, list[float]]:
    """Per effect ``[a, b]`` of :func:`~dmaster.mastering.restoration.calibrate` by logistic regression, ``[a, b, c]``
    for an effect of :data:`~dmaster.mastering.pretrained.EVIDENCE` (its measurement a second feature); a little L2
    towards the identity, ``a = 1, b = c = 0``, so that a separable effect stays finite."""
    calibration = {}
    for index, name in enumerate(chain.effect_names):
        p = torch.tensor([float(r["estimate"][name]["present"][0]) for r in rows], dtype=torch.float64)
        y = torch.tensor([float(r["labels"][index]) for r in rows], dtype=torch.float64)
        inputs = [torch.logit(p.clamp(1e-4, 1 - 1e-4)), torch.ones_like(p)]
        if name in EVIDENCE:
            key, reference, scale = EVIDENCE[name]
            inputs.append(torch.tensor([(float(r["estimate"][name][key][0]) - reference) / scale for r in rows],
                                       dtype=torch.float64))
        features = torch.stack(inputs, 1)
        identity = torch.zeros(len(inputs), dtype=torch.float64)
        identity[0] = 1.0
        weights = identity.clone().requires_grad_(True)
        optimiser = torch.optim.LBFGS([weights], max_iter=200, line_search_fn="strong_wolfe")

        def loss() -> torch.Tensor:
            optimiser.zero_grad()
            value = torch.nn.functional.binary_cross_entropy_with_logits(features @ weights, y)
            value = value + 1e-3 * (weights - identity).square().sum()
            value.backward()
            return value
        with torch.enable_grad():
            optimiser.step(loss)
        calibration[name] = [round(float(v), 4) for v in weights.detach()]
    return calibration


def log_loss(chain, rows: list[dict], calibration: dict | None) -> float:
    """Mean binary cross-entropy of the (calibrated) presence against the audible-presence labels."""
    total = []
    for r in rows:
        estimate = calibrate(r["estimate"], calibration)
        for index, name in enumerate(chain.effect_names):
            q = min(max(float(estimate[name]["present"][0]), 1e-6), 1 - 1e-6)
            total.append(-math.log(q if r["labels"][index] else 1 - q))
    return float(np.mean(total))


def distance(model: ParamEstimator, row: dict, calibration: dict, strength: dict[str, float],
             residual_strength: float, threshold: dict[str, float] | None = None) -> float:
    """The level-matched MR-STFT distance to the original of ``master()``'s output for one item."""
    policy = Policy(strength, calibration, residual_strength, threshold or {})
    restored = restore_estimate(model.chain, row["given"], row["estimate"], policy, row["correction"]).audio
    restored = set_level(restored, model.sample_rate, None, PEAK_CEILING_DB)[0]
    return row["target"].level_matched_mrstft(restored)


def distances(model: ParamEstimator, rows: list[dict], calibration: dict, strength: dict[str, float],
              residual_strength: float, threshold: dict[str, float] | None = None) -> np.ndarray:
    """Per item, :func:`distance`."""
    return np.array([distance(model, r, calibration, strength, residual_strength, threshold) for r in rows])


def objective(rows: list[dict], scores: np.ndarray, clean_weight: float) -> np.ndarray:
    """Per item, its score weighted so that the degraded items have a mean's weight and the clean ones
    ``clean_weight`` times a mean's; the objective is the sum."""
    degraded = np.array([r["degraded"] for r in rows])
    return np.where(degraded, scores / degraded.sum(), clean_weight * scores / (~degraded).sum())


def clearly_better(new: np.ndarray, old: np.ndarray) -> bool:
    """Whether ``new`` beats ``old`` (paired, per item, weighted) by more than twice the standard error."""
    difference = (old - new) * len(old)
    return difference.mean() > 2 * difference.std(ddof=1) / np.sqrt(len(difference))


def clean_mean(rows: list[dict], scores: np.ndarray) -> float:
    return float(scores[~np.array([r["degraded"] for r in rows])].mean())


def summary(rows: list[dict], scores: np.ndarray) -> str:
    degraded = np.array([r["degraded"] for r in rows])
    return f"degraded {scores[degraded].mean():.3f}, clean {clean_mean(rows, scores):.3f}"


def albums(tracks, music_root: Path) -> list[int]:
    """Per track, the number of its album: its top folder under ``music_root`` (a corpus package), or the track
    itself when it lies at the top."""
    parts = [t.path.relative_to(music_root).parts for t in tracks]
    names = [p[0] if len(p) > 1 else t.id for p, t in zip(parts, tracks)]
    return [sorted(set(names)).index(name) for name in names]


def folds(rows: list[dict]) -> list[np.ndarray]:
    """The rows of the even- and of the odd-numbered albums: the two halves of the cross-validation (by album,
    not by track: the tracks of one album sound alike, and the policy meets music from other albums)."""
    album = np.array([r["album"] for r in rows])
    return [album % 2 == 0, album % 2 == 1]


def select(rows: list[dict], mask: np.ndarray) -> list[dict]:
    """The rows where the boolean ``mask`` is true."""
    return [r for r, keep in zip(rows, mask) if keep]


Part = tuple[float, float, bool]
"""A part's (strength, threshold, calibrated); the residual correction's and the mask's are (strength, 0, False)."""


def descend(parts: dict[str, Part], score, rows: list[dict], clean_weight: float,
            subset: np.ndarray | None = None) -> dict[str, Part]:
    """One sweep of coordinate descent over ``parts`` (name -> :data:`Part`; :data:`UNJUDGED` ones are kept),
    each part's best triple of :data:`STRENGTHS` × :data:`THRESHOLDS` × (uncalibrated, calibrated) (the parts of
    :data:`UNGATED`: × 0 × uncalibrated) kept when :func:`clearly_better`; on the rows of the boolean mask
    ``subset`` only when given."""
    subset = np.ones(len(rows), dtype=bool) if subset is None else subset
    fitted = select(rows, subset)
    chosen = dict(parts)
    print(f"  sweep on {len(fitted)} excerpts, from {summary(fitted, score(chosen)[subset])}:", flush=True)
    for part in [p for p in chosen if p not in UNJUDGED]:
        best = objective(fitted, score(chosen)[subset], clean_weight)
        thresholds, calibrated = ((0.0,), (False,)) if part in UNGATED else (THRESHOLDS, (False, True))
        trials = {}
        for c in STRENGTHS:
            tried = {(c, t, k): objective(fitted, score({**chosen, part: (c, t, k)})[subset], clean_weight)
                     for t in thresholds for k in calibrated
                     if (c, t, k) != chosen[part] and (c > 0 or (t, k) == (0, False))}
            if tried:
                triple = min(tried, key=lambda k: tried[k].sum())
                how = f", threshold {triple[1]:g}" if triple[1] else ""
                how += ", calibrated" if triple[2] else ""
                print(f"  {part} at {c:g}{how}: {summary(fitted, score({**chosen, part: triple})[subset])}",
                      flush=True)
                trials.update(tried)
        candidate = min(trials, key=lambda k: trials[k].sum())
        if clearly_better(trials[candidate], best):
            chosen[part] = candidate
    return chosen


def search_weights(rows: list[dict], start: dict[str, Part], score, clean_budget: float):
    """The harm budget: for each of :data:`CLEAN_WEIGHTS` in turn, fit by :func:`descend` (swept until nothing
    changes) on each half of the albums and measure the clean mean on the other; stop at the first weight within
    ``clean_budget``. Returns the parts fitted on all the rows at that weight (or the last), their scores, the
    weight and a sentence saying which held."""
    def fit(clean_weight: float, subset: np.ndarray | None = None) -> dict[str, Part]:
        parts = descend(start, score, rows, clean_weight, subset)
        while (again := descend(parts, score, rows, clean_weight, subset)) != parts:
            parts = again
        return parts

    halves = folds(rows)
    for clean_weight in CLEAN_WEIGHTS:
        held_out = []
        for fitted, other in (halves, halves[::-1]):
            half = fit(clean_weight, fitted)
            held_out.append(clean_mean(select(rows, other), score(half)[other]))
        unseen = float(np.mean(held_out))
        chosen = fit(clean_weight)
        best = score(chosen)
        print(f"clean weight {clean_weight:g}: {chosen}: {summary(rows, best)}; clean mean on unseen albums "
              f"{unseen:.3f} (each half fitted on the other)", flush=True)
        if unseen <= clean_budget:
            return chosen, best, clean_weight, (
                f"the smallest weight of {CLEAN_WEIGHTS} keeping the clean mean on unseen albums (2-fold "
                f"cross-validation) within {clean_budget:g}: {unseen:.3f}")
    print(f"no clean weight meets the budget {clean_budget:g} on unseen albums: the last fit is kept")
    return chosen, best, clean_weight, (
        f"no weight of {CLEAN_WEIGHTS} keeping the clean mean on unseen albums (2-fold cross-validation) "
        f"within {clean_budget:g}: the largest, at {unseen:.3f}")


def fit_unet(model: SpectrogramUNet, rows: list[dict], residual: ResidualCorrection | None, clean_budget: float):
    """The U-Net's policy: its mask strength and residual strength from :data:`STRENGTHS`, by the same
    coordinate descent and harm budget as a parameter model's. Returns the policy and how it was chosen."""
    outputs: dict[tuple[int, float], torch.Tensor] = {}
    cache: dict[tuple[int, float, float], float] = {}
    for r in rows:  # what restore() applies to the U-Net's output, before its strength
        r["correction"] = None if residual is None else Correction(
            *residual.correct(model_windows(model, r["given"]), model.sample_rate))

    def distance(index: int, mask: float, residual_strength: float) -> float:
        """The level-matched MR-STFT distance to the original of ``master(model="unet")``'s output."""
        if (index, mask) not in outputs:
            outputs[index, mask] = restore(model, rows[index]["given"], Policy({}, {}, mask=mask)).audio
        restored, correction = outputs[index, mask], rows[index]["correction"]
        if correction is not None and residual_strength > 0:
            restored = filter_with(restored, extra_response(*correction.scaled(residual_strength), model.sample_rate),
                                   model.sample_rate)
        restored = set_level(restored, model.sample_rate, None, PEAK_CEILING_DB)[0]
        return rows[index]["target"].level_matched_mrstft(restored)

    def score(parts: dict[str, Part]) -> np.ndarray:
        mask, residual_strength = parts["mask"][0], parts.get("residual", (0.0,))[0]
        for index in range(len(rows)):
            if (index, mask, residual_strength) not in cache:
                cache[index, mask, residual_strength] = distance(index, mask, residual_strength)
        return np.array([cache[index, mask, residual_strength] for index in range(len(rows))])

    start = {"mask": (1.0, 0.0, False), **({"residual": (1.0, 0.0, False)} if residual else {})}
    before = score(start)
    print(f"nothing applied (the input under the peak ceiling): {summary(rows, score({'mask': (0.0, 0.0, False)}))}\n"
          f"mask and residual correction at 1: {summary(rows, before)}", flush=True)
    chosen, best, clean_weight, verdict = search_weights(rows, start, score, clean_budget)
    mask, residual_strength = chosen["mask"][0], chosen.get("residual", (0.0,))[0]
    print("harm against gain as both are scaled (the user's amount):")
    for amount in STRENGTHS[1:-1]:
        scaled = {"mask": (mask * amount, 0.0, False), "residual": (residual_strength * amount, 0.0, False)}
        print(f"  amount {amount:g}: {summary(rows, score(scaled))}", flush=True)
    how = (f"mask and residual strengths from {STRENGTHS} by coordinate descent (swept until settled) on the "
           f"level-matched MR-STFT "
           f"(degraded mean + {clean_weight:g} x clean mean, {verdict}), a change kept when over two standard "
           f"errors: {summary(rows, before)} -> {summary(rows, best)}")
    return Policy({}, {}, residual_strength, {}, mask), how


def fit_param(model: ParamEstimator, rows: list[dict], residual: ResidualCorrection | None, audible_db: float,
              clean_budget: float):
    """A parameter model's policy: the calibrations, then which of them, strengths and thresholds, then the residual
    strength (see the module's docstring). Returns the policy and how it was chosen."""
    chain = model.chain
    fitted = fit_calibration(chain, rows)
    print(f"presence log loss {log_loss(chain, rows, None):.3f} -> calibrated {log_loss(chain, rows, fitted):.3f}"
          f"; calibration [a, b] or [a, b, c] {fitted}", flush=True)
    nothing = distances(model, rows, {}, dict.fromkeys(chain.effect_names, 0.0), 0.0)
    print(f"nothing applied (the input under the peak ceiling): {summary(rows, nothing)}", flush=True)
    residual_start = 1.0 if residual else 0.0
    print(f"calibrated, every strength 1: "
          f"{summary(rows, distances(model, rows, fitted, dict.fromkeys(chain.effect_names, 1.0), residual_start))}",
          flush=True)
    start = {**dict.fromkeys(chain.effect_names, (1.0, 0.0, False)),
             **({"residual": (1.0, 0.0, False)} if residual else {})}
    for r in rows:
        r["calibrated"] = calibrate(r["estimate"], fitted)
    cache: dict[tuple, float] = {}

    def calibration(parts: dict[str, Part]) -> dict[str, list[float]]:
        """The fitted calibrations of the effects that ``parts`` calibrate."""
        return {name: fitted[name] for name in chain.effect_names if parts[name][2]}

    def score(parts: dict[str, Part]) -> np.ndarray:
        """Per item, its distance with ``parts``; cached per item, the strengths it gets after the thresholds and
        the calibrations that matter to it (those of the inverses applied, and with a residual correction all of
        them: they gate it, see :func:`~dmaster.mastering.restoration.decide`), so that a threshold costs no new
        restoration."""
        strength = {name: parts[name][0] for name in chain.effect_names}
        threshold = {name: parts[name][1] for name in chain.effect_names}
        residual_strength = parts.get("residual", (0.0,))[0]
        out = []
        for index, r in enumerate(rows):
            presence = {name: (r["calibrated"] if parts[name][2] else r["estimate"])[name] for name in strength}
            gated = gated_strengths(presence, strength, threshold)
            calibrated = tuple(parts[name][2] and (gated[name] > 0 or residual_strength > 0)
                               for name in chain.effect_names)
            key = (index, tuple(gated.values()), calibrated, residual_strength)
            if key not in cache:
                cache[key] = distance(model, r, calibration(parts), gated, residual_strength)
            out.append(cache[key])
        return np.array(out)

    before = score(start)
    print(f"uncalibrated, every strength 1 (the start): {summary(rows, before)}", flush=True)
    chosen, best, clean_weight, verdict = search_weights(rows, start, score, clean_budget)
    strength = {n: chosen[n][0] for n in chain.effect_names}
    threshold = {n: chosen[n][1] for n in chain.effect_names}
    residual_strength = chosen.get("residual", (0.0,))[0]
    kept = calibration(chosen)
    print("harm against gain as every strength is scaled (the user's amount):")
    for amount in STRENGTHS[1:-1]:
        scores = distances(model, rows, kept, {n: v * amount for n, v in strength.items()},
                           residual_strength * amount, threshold)
        print(f"  amount {amount:g}: {summary(rows, scores)}", flush=True)
    how = (f"presence calibration [a, b] ([a, b, c] with the measured echo level) fitted by logistic regression "
           f"on audible presence (>= {audible_db:g} dB): "
           f"{fitted}; per effect, whether it is calibrated, its strength from {STRENGTHS} and a threshold on its "
           f"presence from {THRESHOLDS}, by coordinate descent (swept until settled, from uncalibrated, every "
           f"strength 1) on the level-matched MR-STFT (degraded mean + {clean_weight:g} x clean mean, {verdict}), "
           f"a change kept when over two standard errors: "
           f"{summary(rows, before)} -> {summary(rows, best)}")
    return Policy(strength, kept, residual_strength, threshold), how


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("dmaster/weights/param.pt"))
    parser.add_argument("--music-root", type=Path, default=Path("data/raw/debian_music"))
    parser.add_argument("--split", default="val", choices=("train", "val"), help="the tracks fitted on")
    parser.add_argument("--draws", type=int, default=2, help="degraded excerpts per track (plus one clean)")
    parser.add_argument("--seconds", type=float, default=6.0, help="excerpt length")
    parser.add_argument("--seed", type=int, default=8000, help="seed of each track's first degradation")
    parser.add_argument("--audible-db", type=float, default=-20.0, help="an effect contributing less is absent")
    parser.add_argument("--max-tracks", type=int, help="at most this many tracks, spread over the sorted list")
    parser.add_argument("--clean-budget", type=float, default=0.15,
                        help="the most mean level-matched distance from clean music the policy may cost on albums "
                             "it was not fitted on (cross-validated); default: the project's target for clean music")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    started = time.monotonic()

    model = resolve_model(args.model)
    if not isinstance(model, (ParamEstimator, SpectrogramUNet)):
        parser.error(f"{args.model} is neither a parameter model nor the U-Net")
    tracks = spread([t for t in find_tracks(args.music_root) if split_of(t.id) == args.split], args.max_tracks)
    album = albums(tracks, args.music_root)
    if len(set(album)) < 2:
        parser.error(f"{args.split} tracks of fewer than 2 albums under {args.music_root}: the harm budget's "
                     "cross-validation needs at least 2")
    rows = items(model, tracks, args.draws, args.seconds, args.seed, args.audible_db)
    for r in rows:
        r["album"] = album[r["track"]]
    residual = resolve_residual(args.model)
    print(f"{len(rows)} {args.split} excerpts of {len(tracks)} tracks ({sum(r['degraded'] for r in rows)} degraded)")
    if isinstance(model, SpectrogramUNet):
        policy, how = fit_unet(model, rows, residual, args.clean_budget)
    else:
        for r in rows:
            r["correction"] = None if residual is None else Correction(
                *residual.correct(r["windows"], model.sample_rate, *model.chain.to_vectors(r["estimate"])))
        policy, how = fit_param(model, rows, residual, args.audible_db, args.clean_budget)
    description = (f"fitted on {len(rows)} excerpts of {len(tracks)} {args.split} tracks ({args.seconds:g} s; per "
                   f"track {args.draws} degraded as dmaster demaster draws, seeds from {args.seed}, and 1 clean): "
                   f"{how}")
    print(f"{policy}\n{description}\n{(time.monotonic() - started) / 60:.1f} min")
    out = args.model.with_name(args.model.stem + POLICY_SUFFIX)
    save_policy(out, policy, description)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
