"""How well can the EQ be known from the degraded audio alone? The music's own tonal balance against the EQ prior.

The EQ degradation and the music's own tonal balance add up in the long-term spectrum (dB), so a blind
estimate can only tell them apart as far as the music's spectrum is predictable. This measures:

- the spread (standard deviation over draws, averaged over the 40 bands of ``dmaster.residual``) of the
  EQ prior's band response and of the train music's long-term spectrum, both relative to their mean over
  bands (the level is a separate effect);
- on held-out excerpts degraded by the EQ alone, the long-term-spectrum error (RMS over bands, dB) and the
  MR-STFT distance (outputs scaled to the original's RMS, so the level plays no part) of
  identity; the shipped parameter model (``master()``'s path, and its EQ inverse alone); the linear
  minimum-mean-square-error (LMMSE) estimate of the EQ from the long-term spectrum, with the EQ prior's and
  the train music's mean and covariance (the best any estimate from the long-term spectrum alone can do
  if both were Gaussian; on the bands of ``dmaster.mastering.tone.MATCH_RANGE_HZ``, see :data:`INSIDE`);
  matching the train music's mean spectrum; and matching the spectrum of the same song's other excerpts
  (a reference that no blind estimate has), fully and half way.

    python benchmarks/eq_identifiability.py --music-root data/raw/debian_music --out experiments/eq_identifiability

With the default settings it also rewrites the ``eq_identifiability`` section of ``benchmarks/README.md``
(see ``benchmarks/report.py``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from dmaster.audio import load_audio, write_json_atomic, write_text_atomic
from dmaster.data.generate import evenly_spaced_excerpts, track_params
from dmaster.data.splits import find_tracks, split_of
from dmaster.effects import Chain, eq
from dmaster.mastering.pretrained import Policy, resolve_model, resolve_policy, resolve_residual
from dmaster.mastering.restoration import filter_with, restore
from dmaster.mastering.tone import MATCH_RANGE_HZ
from dmaster.metrics import mrstft_distance
from dmaster.residual import STFT_SIZE, band_centres_hz, band_levels_db, band_matrix, extra_response

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402  (benchmarks/report.py)

PRIOR_DRAWS = 20000
SPLITS = {"test": ("test",), "val": ("val",), "val+test": ("val", "test")}


def relative(spectrum_db: torch.Tensor) -> torch.Tensor:
    """Band levels relative to their mean over bands (the tonal balance without the level)."""
    return spectrum_db - spectrum_db.mean(-1, keepdim=True)


INSIDE = torch.from_numpy((band_centres_hz() >= MATCH_RANGE_HZ[0]) & (band_centres_hz() <= MATCH_RANGE_HZ[1]))
"""The bands the LMMSE estimate works on: outside them, codec low-pass filters (many tracks are cut at 16 kHz
or so) and the lowest octave make the music's spectrum so heavy-tailed that a Gaussian estimate spreads their
outliers over every other band."""


def eq_prior_bands(chain: Chain, draws: int, seed: int) -> torch.Tensor:
    """Band responses ``(draws, 40)`` (dB relative to their mean) of EQs drawn from the prior (absent ones flat)."""
    params = chain.sample_params(draws, torch.Generator().manual_seed(seed))["eq"]
    values = {name: value.double() for name, value in params.items() if name != "present"}
    power = eq.transfer(STFT_SIZE, chain.sample_rate, 1, **values)[:, 0].abs().square().float()
    bands_db = 10 * torch.log10(power @ band_matrix(chain.sample_rate)).double()
    return relative(bands_db * params["present"].double()[:, None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--music-root", type=Path, default=Path("data/raw/debian_music"))
    parser.add_argument("--split", choices=tuple(SPLITS), default="val+test", help="held-out tracks to degrade")
    parser.add_argument("--excerpts", type=int, default=4, help="excerpts per track (at least 2)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--out", type=Path, default=Path("experiments/eq_identifiability"))
    report.add_arguments(parser)
    args = parser.parse_args()
    if args.excerpts < 2:
        parser.error("--excerpts must be at least 2 (the other excerpts of a song are its reference)")

    model, policy, residual = resolve_model(None), resolve_policy(None), resolve_residual(None)
    sample_rate = model.sample_rate
    chain = Chain(sample_rate)
    samples = int(args.seconds * sample_rate)
    tracks = find_tracks(args.music_root)

    eq_bands = eq_prior_bands(chain, PRIOR_DRAWS, args.seed)
    music = []
    for track in (t for t in tracks if split_of(t.id) == "train"):
        audio = load_audio(track.path, sample_rate)
        if float(audio.abs().max()) > 0:
            clips = evenly_spaced_excerpts(audio, args.excerpts, samples)
            music += [relative(band_levels_db(clip[None], sample_rate)) for clip in clips]
    music = torch.stack(music)
    eq_cov, music_mean, music_cov = torch.cov(eq_bands.T), music.mean(0), torch.cov(music.T)
    eq_inside, music_inside = relative(eq_bands[:, INSIDE]), relative(music[:, INSIDE])
    prior_inside, eq_inside_mean, music_inside_mean = torch.cov(eq_inside.T), eq_inside.mean(0), music_inside.mean(0)
    lmmse_gain = prior_inside @ torch.linalg.inv(prior_inside + torch.cov(music_inside.T))
    posterior_std = (prior_inside - lmmse_gain @ prior_inside).diag().clamp(min=0).sqrt().mean()
    spread = {"eq_prior_std_db": float(eq_cov.diag().sqrt().mean()),
              "music_std_db": float(music_cov.diag().sqrt().mean()),
              "lmmse_posterior_std_db": float(posterior_std), "train_excerpts": len(music)}

    eq_only = {name: 0.0 for name in chain.effect_names} | {"eq": 1.0}
    rows = []
    for track in (t for t in tracks if split_of(t.id) in SPLITS[args.split]):
        clips = evenly_spaced_excerpts(load_audio(track.path, sample_rate), args.excerpts, samples)
        for k, clean in enumerate(clips):
            params = track_params(chain, args.seed + k, [track.id])
            for effect, values in params.items():
                values["present"] = torch.full_like(values["present"], float(effect == "eq"))
            degraded = chain(clean[None], params)[0]
            observed = relative(band_levels_db(degraded[None], sample_rate))
            others = torch.stack([c for j, c in enumerate(clips) if j != k])
            same_song = relative(band_levels_db(others, sample_rate))
            inside = relative(observed[INSIDE])
            lmmse = torch.zeros_like(observed)  # the EQ's estimate inside the bands, none outside
            lmmse[INSIDE] = eq_inside_mean + lmmse_gain @ (inside - music_inside_mean - eq_inside_mean)

            def matched(towards: torch.Tensor, fraction: float = 1.0) -> torch.Tensor:
                bands = (fraction * (towards - observed)).clamp(-12.0, 12.0)
                return filter_with(degraded, extra_response(bands, 0.0, sample_rate), sample_rate)

            outputs = {
                "identity": degraded,
                "param model (master() path)": restore(model, degraded, policy, residual).audio,
                "param model, its EQ inverse alone": restore(model, degraded, Policy(eq_only, {}), residual).audio,
                "LMMSE estimate from the long-term spectrum": matched(observed - lmmse),
                "match the train music's mean spectrum": matched(music_mean),
                "match the same song's other excerpts (reference)": matched(same_song),
                "… half way": matched(same_song, 0.5),
            }
            target = relative(band_levels_db(clean[None], sample_rate))
            row = {"track": track.id, "excerpt": k}
            for name, output in outputs.items():
                output = output[:, : clean.shape[-1]]
                output = output * (clean.square().mean().sqrt() / output.square().mean().sqrt())
                error = relative(band_levels_db(output[None], sample_rate)) - target
                row[name] = {"spectrum_error_db": float(error.square().mean().sqrt()),
                             "mrstft": float(mrstft_distance(output[None], clean[None]))}
            rows.append(row)
        print(f"{track.id}: {len(clips)} excerpts", flush=True)

    systems = [name for name in rows[0] if name not in ("track", "excerpt")]
    summary = {name: {"spectrum_error_db": float(np.mean([r[name]["spectrum_error_db"] for r in rows])),
                      "mrstft": float(np.mean([r[name]["mrstft"] for r in rows])),
                      "mrstft_median": float(np.median([r[name]["mrstft"] for r in rows]))} for name in systems}
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__}
    lines = [f"EQ prior band response: {spread['eq_prior_std_db']:.2f} dB standard deviation (mean over 40 bands, "
             f"{PRIOR_DRAWS} draws); the train music's own long-term spectrum: {spread['music_std_db']:.2f} dB "
             f"({spread['train_excerpts']} excerpts of {args.seconds:g} s); LMMSE posterior if both were Gaussian "
             f"(the bands of {MATCH_RANGE_HZ[0]:g} Hz to {MATCH_RANGE_HZ[1]:g} Hz): "
             f"{spread['lmmse_posterior_std_db']:.2f} dB.", "",
             f"{len(rows)} {args.split} excerpts of {args.seconds:g} s degraded by the EQ alone (seeds {args.seed}–"
             f"{args.seed + args.excerpts - 1}), outputs scaled to the original's RMS; machine: {machine}.", "",
             "| system | spectrum error dB ↓ | MR-STFT ↓ | MR-STFT median ↓ |", "|---|---|---|---|",
             *[f"| {name} | {s['spectrum_error_db']:.2f} | {s['mrstft']:.3f} | {s['mrstft_median']:.3f} |"
               for name, s in summary.items()]]
    markdown = "\n".join(lines)
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "eq_identifiability.md", markdown + "\n")
    write_json_atomic(args.out / "eq_identifiability.json",
                      {"machine": machine, "spread": spread, "summary": summary, "rows": rows})
    report.publish("eq_identifiability", f"Measured by `python benchmarks/eq_identifiability.py`, "
                   f"{report.machine_line()}.\n\n{markdown}", parser, args)


if __name__ == "__main__":
    main()
