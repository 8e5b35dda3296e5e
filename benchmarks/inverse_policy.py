"""How the parameter model's estimate should drive the chain's inverse, measured on the val split.

Compares, by MR-STFT distance to the original, raw and level-matched (the output scaled to the original's RMS
first): the degraded input, the oracle inverse, the inverse weighted by the presence probability and yes/no
presence thresholds; the same with ``master()``'s level step (peak kept under −1 dBFS); weighted also by the
model's inverse strengths; with its residual correction (what ``master()`` does, when the model has them);
which effect's estimate costs most (the estimate with that one effect replaced by the truth) and which one
alone keeps the restoration from the oracle's (the truth with that one effect estimated; within an effect,
parameter by parameter: ``estimate_costs.py``); and what the level alone is worth (output loudness set to
the original's, ITU-R BS.1770).

    python benchmarks/inverse_policy.py --model models/param_ft/best.pt

Prints a table; with the default settings it also rewrites the ``inverse_policy`` section of
``benchmarks/README.md`` (see ``benchmarks/report.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyloudnorm
import torch

from dmaster.audio import load_audio
from dmaster.data.generate import degraded_excerpts
from dmaster.data.splits import find_tracks, split_of
from dmaster.mastering.estimation import estimate
from dmaster.mastering.pretrained import resolve_model, resolve_policy, resolve_residual
from dmaster.mastering.restoration import correction_strengths, restore
from dmaster.metrics import CleanTarget

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402  (benchmarks/report.py)
from quality_sets import ceiling  # noqa: E402

THRESHOLDS = (0.3, 0.5, 0.6, 0.7, 0.8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="param", help="'param' (shipped) or a checkpoint")
    parser.add_argument("--music-root", type=Path, default=Path("data/raw/debian_music"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--draws", type=int, default=3, help="10 s excerpts (and degradations) per track")
    report.add_arguments(parser)
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    model = resolve_model(args.model)
    residual = resolve_residual(args.model)
    policy = resolve_policy(args.model)
    strength = policy.strength
    chain, sample_rate = model.chain, model.sample_rate
    meter = pyloudnorm.Meter(sample_rate)
    tracks = [t for t in find_tracks(args.music_root) if split_of(t.id) == args.split]
    results: dict[str, list[tuple[float, float]]] = {}

    def loudness(audio: torch.Tensor) -> float:
        return meter.integrated_loudness(audio.T.double().numpy())

    for track in tracks:
        audio = load_audio(track.path, sample_rate)
        for clean, truth, degraded in degraded_excerpts(chain, audio, track.id, args.draws, 10.0, 0):
            estimated = estimate(model, degraded)
            target = CleanTarget(clean, sample_rate)

            def score(name: str, params=None, level_of: torch.Tensor | None = None, peak: bool = False,
                      out: torch.Tensor | None = None) -> None:
                if out is None:
                    out = degraded if params is None else chain.inverse(degraded[None], params)[0]
                if peak:
                    out = ceiling(out, sample_rate)
                if level_of is not None:
                    out = out * 10 ** ((loudness(level_of) - loudness(out)) / 20)
                scores = target.scores(out)
                results.setdefault(name, []).append((scores["mrstft"], scores["mrstft_level_matched"]))

            score("degraded")
            score("oracle", truth)
            score("weighted by presence", correction_strengths(estimated))
            for threshold in THRESHOLDS:
                hard = {n: {**e, "present": (e["present"] >= threshold).float()} for n, e in estimated.items()}
                score(f"yes/no at p ≥ {threshold}", hard)
            score("degraded, peak under −1 dBFS", peak=True)
            score("weighted by presence, peak under −1 dBFS", correction_strengths(estimated), peak=True)
            score("weighted × inverse strengths, peak under −1 dBFS", correction_strengths(estimated, strength),
                  peak=True)
            if residual is not None:
                corrected = restore(model, degraded, policy._replace(strength=strength), residual).audio
                score("weighted × strengths, residual correction", out=corrected)
                score("weighted × strengths, residual correction, peak under −1 dBFS (master)",
                      out=ceiling(corrected, sample_rate))
            for effect in chain.effect_names:
                score(f"weighted, true {effect}", correction_strengths({**estimated, effect: truth[effect]}))
            score("oracle, peak under −1 dBFS", truth, peak=True)
            for effect in chain.effect_names:
                score(f"true, but {effect} estimated (weighted × strength), peak under −1 dBFS",
                      correction_strengths({**truth, effect: estimated[effect]}, {effect: strength.get(effect, 1.0)}),
                      peak=True)
            score("degraded, true level", level_of=clean)
            score("weighted, true level", correction_strengths(estimated), level_of=clean)
        print(track.id, flush=True)

    header = f"{args.split} split: {len(tracks)} tracks × {args.draws} excerpts of 10 s; model {args.model}"
    means = {name: np.mean(values, axis=0) for name, values in results.items()}
    table = "\n".join(["| restoration | MR-STFT ↓ | level-matched MR-STFT ↓ |", "|---|---|---|",
                       *(f"| {name} | {raw:.3f} | {matched:.3f} |" for name, (raw, matched) in means.items())])
    print(f"\n{header}\n\n{table}")
    report.publish("inverse_policy", f"{header}; `python benchmarks/inverse_policy.py`, {report.machine_line()}."
                   f"\n\n{table}", parser, args)


if __name__ == "__main__":
    main()
