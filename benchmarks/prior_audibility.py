"""How audible the chain's draws are on real music: the measurement behind the training prior's settings.

For windows of the train split of ``--music-root``, degradations are drawn from the specs' priors (as
training draws them by default) and each present effect's contribution to the degraded audio is measured
(:func:`dmaster.data.prior.contributions_db`: the energy of what the effect adds, relative to the
degraded audio). Reports, per effect, how often it is on and which share of those draws stays under
−30, −20 and −10 dB, and how many items would have nothing audible to fix at each threshold.

    python benchmarks/prior_audibility.py --music-root data/raw/debian_music
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from dmaster.audio import AudioError, load_audio
from dmaster.data.prior import DrawPrior, contributions_db
from dmaster.data.splits import find_tracks, split_of
from dmaster.effects import Chain

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402  (benchmarks/report.py)

THRESHOLDS_DB = (-30.0, -20.0, -10.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--music-root", type=Path, default=Path("data/raw/debian_music"))
    parser.add_argument("--tracks", type=int, default=60, help="train tracks, spread over the split")
    parser.add_argument("--windows", type=int, default=4, help="windows per track")
    parser.add_argument("--seconds", type=float, default=3.0, help="window length, as in training")
    parser.add_argument("--seed", type=int, default=0)
    report.add_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(2)
    sample_rate = 44100
    chain = Chain(sample_rate)
    tracks = [t for t in find_tracks(args.music_root) if split_of(t.id) == "train"]
    tracks = tracks[:: max(1, len(tracks) // args.tracks)][: args.tracks]
    generator = torch.Generator().manual_seed(args.seed)
    window = int(args.seconds * sample_rate)
    contributions = []
    for track in tracks:
        try:
            audio = load_audio(track.path, sample_rate, max_seconds=60.0)
        except AudioError as error:
            print(f"skipped: {error}")
            continue
        if audio.shape[-1] < window:
            continue
        starts = torch.randint(audio.shape[-1] - window + 1, (args.windows,), generator=generator).tolist()
        clean = torch.stack([audio[:, s : s + window] for s in starts])
        params = DrawPrior().sample(chain, args.windows, generator)
        contributions.append(contributions_db(chain, clean, params))
    measured = torch.cat(contributions)  # (items, effects)
    items = measured.shape[0]
    rows = ["| effect | on in | " + " | ".join(f"of those under {t:g} dB" for t in THRESHOLDS_DB) + " |",
            "|---|---|" + "---|" * len(THRESHOLDS_DB)]
    for index, name in enumerate(chain.effect_names):
        column = measured[:, index]
        on = torch.isfinite(column)
        shares = [f"{100 * float((column[on] < t).float().mean()):.0f} %" if on.any() else "—" for t in THRESHOLDS_DB]
        rows.append(f"| {name} | {100 * float(on.float().mean()):.0f} % | " + " | ".join(shares) + " |")
    nothing = [f"{100 * float((measured < t).all(1).float().mean()):.1f} %" for t in THRESHOLDS_DB]
    rows.append("| nothing audible to fix | " + f"{100 * float(torch.isinf(measured).all(1).float().mean()):.1f} % | "
                + " | ".join(nothing) + " |")
    header = (f"{items} windows of {args.seconds:g} s from {len(contributions)} train tracks of {args.music_root}, "
              f"degradations drawn from the specs' priors; `python benchmarks/prior_audibility.py`, "
              f"{report.machine_line()}.")
    table = "\n".join(rows)
    print(f"\n{header}\n\n{table}")
    report.publish("prior_audibility", f"{header}\n\n{table}", parser, args)


if __name__ == "__main__":
    main()
