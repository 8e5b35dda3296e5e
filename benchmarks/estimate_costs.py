"""Where the parameter model's estimate loses: each effect's estimate among the true parameters, and within it one
parameter at a time set true.

On held-out excerpts degraded by the project's chain (the ``val`` split by default: the test split is
``quality.py``'s), every row is the chain's inverse of the degraded excerpt under ``master()``'s −1 dBFS peak
ceiling, scored by level-matched MR-STFT against the clean excerpt:

- oracle: the true parameters;
- "the model's estimate": the true parameters but one effect's estimate as ``master()`` applies it (its
  correction strength: presence × fitted strength; what ``quality.py`` calls "oracle but the model's …");
- "… its X true": that estimate with its presence or one parameter X set true (for the compressor also its
  threshold and makeup together: its static curve is shift-invariant, so with the input's level unknown only
  their sum can be told from the audio);
- "the true parameters at the model's presence": the effect's true settings at the strength the model applies.

Paired differences from the oracle, standard errors over tracks, apart for the excerpts where the effect was on
and where it was off (then only its presence can be true): how much of an effect's cost a true parameter would
remove says where its estimate fails.

    python benchmarks/estimate_costs.py --music-root data/raw/debian_music

With the default settings it also rewrites the ``estimate_costs`` section of ``benchmarks/README.md``
(see ``benchmarks/report.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from dmaster.audio import AudioError, load_audio, write_json_atomic, write_text_atomic
from dmaster.data.generate import degraded_excerpts
from dmaster.data.splits import find_tracks, split_of
from dmaster.effects import Chain, ChainParams
from dmaster.mastering.pretrained import resolve_model, resolve_policy, resolve_residual
from dmaster.mastering.restoration import correction_strengths, restore
from dmaster.metrics import CleanTarget

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402  (benchmarks/report.py)
from quality_sets import PEAK_CEILING_DB, ceiling, paired_difference  # noqa: E402

EFFECTS = ("echo", "reverb", "compressor")
"""The effects whose estimates are taken apart (the EQ's: ``eq_identifiability.py``; the gain's is invisible to a
level-matched score)."""
TOGETHER = {"compressor": (("threshold_db", "makeup_db"),)}
"""Parameters also set true together: only the compressor's threshold plus makeup shows in the audio."""
ORACLE, ESTIMATE, PRESENCE = "oracle", "the model's estimate", "… its presence true"
MEANINGFUL_OFF = (ORACLE, ESTIMATE, PRESENCE)
"""The rows of an excerpt where the effect is off (its drawn settings were not applied, so no other is true)."""


def variants(chain: Chain, truth: ChainParams, model: ChainParams, effect: str) -> dict[str, ChainParams]:
    """The rows of ``effect``: the true parameters with its estimate, that estimate with its presence or a
    parameter (or a group of :data:`TOGETHER`) set true, and its true settings at the model's presence."""
    estimate, true = model[effect], truth[effect]
    names = [(p.name,) for p in chain.specs[chain.effect_names.index(effect)].params] + list(TOGETHER.get(effect, ()))
    rows = {ESTIMATE: estimate, PRESENCE: {**estimate, "present": true["present"]}}
    rows |= {f"… its {' and '.join(group)} true": {**estimate, **{n: true[n] for n in group}} for group in names}
    rows["the true parameters at the model's presence"] = {**true, "present": estimate["present"]}
    return {name: {**truth, effect: params} for name, params in rows.items()}


def table(effect: str, rows: list[dict]) -> list[str]:
    """Markdown table of ``effect``: each variant on and off, with its paired difference from the oracle."""
    lines = [f"**{effect}**", "",
             "| inverse | on: level-matched | − oracle ± s.e. | off: level-matched | − oracle ± s.e. |",
             "|---|---|---|---|---|"]
    groups = {on: [r for r in rows if r["present"][effect] == on] for on in (True, False)}
    for name in rows[0]["scores"][effect]:
        cells = []
        for on in (True, False):
            group = groups[on]
            if not group or not (on or name in MEANINGFUL_OFF):  # an effect that is off has no true settings
                cells += ["–", "–"]
                continue
            values = [r["scores"][effect][name] for r in group]
            p = paired_difference(values, [r["scores"][effect][ORACLE] for r in group], [r["track"] for r in group])
            cells += [f"{np.mean(values):.3f}", f"{p['mean_difference']:+.3f} ± {p['standard_error']:.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + ["", f"{len(groups[True])} excerpts with the {effect} on, {len(groups[False])} with it off.", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--music-root", type=Path, default=Path("data/raw/debian_music"))
    parser.add_argument("--split", choices=("val", "test"), default="val", help="held-out tracks to degrade")
    parser.add_argument("--draws", type=int, default=3, help="excerpts per track, each degraded with its own draw")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=9000, help="excerpt k is degraded with seed SEED + k")
    parser.add_argument("--model", default=None, help="parameter model checkpoint (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=Path("experiments/estimate_costs"))
    report.add_arguments(parser)
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    model, policy, residual = resolve_model(args.model), resolve_policy(args.model), resolve_residual(args.model)
    chain, sample_rate = model.chain, model.sample_rate
    tracks = [t for t in find_tracks(args.music_root) if split_of(t.id) == args.split]
    if not tracks:
        raise SystemExit(f"no {args.split} tracks under {args.music_root}")
    rows = []
    for track in tracks:
        try:
            audio = load_audio(track.path, sample_rate)
        except AudioError as error:  # one unreadable file does not stop the run
            print(f"skipped: {error}", flush=True)
            continue
        for k, (clean, truth, degraded) in enumerate(degraded_excerpts(chain, audio, track.id, args.draws,
                                                                        args.seconds, args.seed)):
            if float(clean.abs().max()) == 0:
                continue
            target = CleanTarget(clean, sample_rate)

            def score(params: ChainParams) -> float:
                restored = chain.inverse(degraded[None], params)[0]
                return target.level_matched_mrstft(ceiling(restored, sample_rate))

            _, estimate, _, applied = restore(model, degraded, policy, residual)
            strengths = correction_strengths(estimate, applied)
            oracle = score(truth)
            scores = {effect: {ORACLE: oracle, **{name: score(params) for name, params in
                                                  variants(chain, truth, strengths, effect).items()}}
                      for effect in EFFECTS}
            rows.append({"track": track.id, "excerpt": k, "scores": scores,
                         "present": {effect: bool(truth[effect]["present"][0] > 0) for effect in EFFECTS}})
        print(f"{track.id}: {args.draws} excerpts", flush=True)

    lines = [f"{len(rows)} {args.split} excerpts of {args.seconds:g} s ({len(tracks)} tracks × {args.draws} draws, "
             f"seeds {args.seed}–{args.seed + args.draws - 1}); level-matched MR-STFT of the chain's inverse under "
             f"the {PEAK_CEILING_DB:g} dBFS ceiling; paired differences from the oracle, standard errors over "
             "tracks.", ""]
    for effect in EFFECTS:
        lines += table(effect, rows)
    markdown = "\n".join(lines).rstrip()
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "estimate_costs.md", markdown + "\n")
    write_json_atomic(args.out / "estimate_costs.json", {"args": {k: str(v) for k, v in vars(args).items()},
                                                         "rows": rows})
    report.publish("estimate_costs", f"Measured by `python benchmarks/estimate_costs.py`, {report.machine_line()}."
                   f"\n\n{markdown}", parser, args)


if __name__ == "__main__":
    main()
