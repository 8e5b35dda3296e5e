"""Restoration quality on held-out tracks: identity, oracle inverse, parameter model, U-Net.

Held-out = the "test" split of ``--music-root`` (by track, see dmaster.data.splits). Each
track's excerpt is degraded ``--draws`` times by the chain, with the parameters ``dmaster
demaster`` would draw for it with seeds ``--seed``, ``--seed + 1``, …; then every system
restores it:

- identity: the degraded input as it is;
- oracle: the chain's inverse with the true parameters (the ceiling of the approach); "oracle, peak
  under −1 dBFS": the same through ``master()``'s peak ceiling, as every ``master()`` output is;
- param: ``master()`` with the parameter model — its estimate (several windows, aggregated),
  the chain's inverse weighted by presence times the model's inverse strengths, with its
  residual correction (tonal balance and level), the peak kept under the ceiling (−1 dBFS);
- unet: ``master()`` with the spectrogram U-Net baseline, with its own residual correction;
- "…, no residual correction": param and unet without it;
- "param, no residual correction, full strength": also every effect's inverse at full strength
  (weighted by presence alone), what ``master()`` did before the strengths;
- "…, peak at −1 dBFS": identity and param with ``master(normalise_peak=True)``'s level step
  (the peak set to the ceiling), the prior "mastered music peaks at full scale".

Reports MR-STFT distance (mean and median: a few quietly mastered tracks dominate the mean),
SI-SDR, log-spectral distance and LUFS error to the original, per-parameter error and presence
accuracy of the estimate, model size and CPU real-time factor, plus the time ``master()`` takes
on a 3-minute stereo track (best of 3). Writes Markdown, JSON and a plot; with the default settings
also the ``quality`` section of ``benchmarks/README.md`` and the headline table of the project's
``README.md`` (see ``benchmarks/report.py``).

    python benchmarks/quality.py --music-root data/raw/debian_music --out experiments/quality
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyloudnorm  # noqa: E402
import torch  # noqa: E402

from dmaster.data.audio import load_audio, write_json_atomic, write_text_atomic  # noqa: E402
from dmaster.data.generate import track_params  # noqa: E402
from dmaster.data.splits import find_tracks, split_of  # noqa: E402
from dmaster.effects import Chain  # noqa: E402
from dmaster.mastering import master  # noqa: E402
from dmaster.mastering.level import set_level  # noqa: E402
from dmaster.mastering.pretrained import resolve_model, resolve_residual, resolve_strength  # noqa: E402
from dmaster.mastering.restoration import restore  # noqa: E402
from dmaster.metrics import log_spectral_distance, mrstft_distance, si_sdr  # noqa: E402
from dmaster.models import count_parameters  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402  (benchmarks/report.py)

COLOURS = {"identity": "grey", "oracle": "black", "param": "tab:blue", "unet": "tab:orange",
           "param, no residual correction": "lightblue", "unet, no residual correction": "navajowhite",
           "param, no residual correction, full strength": "silver", "identity, peak at −1 dBFS": "lightgrey",
           "param, peak at −1 dBFS": "lightsteelblue", "oracle, peak under −1 dBFS": "dimgrey"}
"""Every system measured, in table order, with its colour in the plot."""
SYSTEMS = tuple(COLOURS)
PEAK_CEILING_DB = -1.0  # master()'s default


def loudness(audio: torch.Tensor, sample_rate: int) -> float:
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(audio.T.double().numpy()))


def scores(estimate: torch.Tensor, reference: torch.Tensor, sample_rate: int) -> dict[str, float]:
    pair = (estimate[None], reference[None])
    return {"mrstft": float(mrstft_distance(*pair)), "si_sdr_db": float(si_sdr(*pair)),
            "lsd_db": float(log_spectral_distance(*pair)),
            "lufs_error_db": abs(loudness(estimate, sample_rate) - loudness(reference, sample_rate))}


def parameter_errors(chain: Chain, truth, estimate) -> dict[str, float]:
    """Absolute error in physical units of each parameter of the effects that are truly present."""
    errors = {}
    for effect, param in chain.flat_params:
        if float(truth[effect]["present"][0]) == 1.0:
            error = estimate[effect][param.name][0] - truth[effect][param.name][0]
            errors[f"{effect}.{param.name}"] = abs(float(error))
    return errors


def excerpt(audio: torch.Tensor, seconds: float, sample_rate: int) -> torch.Tensor:
    """``seconds`` from the middle of the track (all of it when shorter)."""
    length = int(seconds * sample_rate)
    start = max(0, (audio.shape[-1] - length) // 2)
    return audio[:, start : start + length]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--music-root", type=Path, default=Path("data/raw/debian_music"))
    parser.add_argument("--split", default="test", choices=("train", "val", "test", "all"),
                        help="tracks to measure on; 'all' for a corpus no model was trained on")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the first degradation of each track")
    parser.add_argument("--draws", type=int, default=10,
                        help="degradations per track (seeds SEED, SEED + 1, …)")
    parser.add_argument("--seconds", type=float, default=20.0, help="excerpt length per track")
    parser.add_argument("--param-model", default="param", help="'param' (shipped) or a checkpoint")
    parser.add_argument("--unet-model", default="unet", help="'unet' (shipped) or a checkpoint")
    parser.add_argument("--out", type=Path, default=Path("experiments/quality"))
    report.add_arguments(parser)
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    models = {"param": resolve_model(args.param_model), "unet": resolve_model(args.unet_model)}
    residuals = {"param": resolve_residual(args.param_model), "unet": resolve_residual(args.unet_model)}
    strengths = {"param": resolve_strength(args.param_model), "unet": {}}
    for name, residual in residuals.items():
        if residual is None:
            print(f"note: the {name} model has no residual correction; its rows with and without agree")
    sample_rate = models["param"].sample_rate
    chain = Chain(sample_rate)
    tracks = [t for t in find_tracks(args.music_root) if args.split in ("all", split_of(t.id))]
    if not tracks:
        raise SystemExit(f"no {args.split} tracks under {args.music_root}")

    rows, errors, presence_hits, seconds_of = [], [], [], {s: 0.0 for s in SYSTEMS}
    audio_seconds = 0.0
    for track, seed in ((t, args.seed + k) for t in tracks for k in range(args.draws)):
        clean = excerpt(load_audio(track.path, sample_rate), args.seconds, sample_rate)
        truth = track_params(chain, seed, [track.id])
        degraded = chain(clean[None], truth)[0]
        audio_seconds += clean.shape[-1] / sample_rate
        outputs = {"identity": degraded}
        started = time.perf_counter()
        outputs["oracle"] = chain.inverse(degraded[None], truth)[0]
        seconds_of["oracle"] += time.perf_counter() - started
        outputs["oracle, peak under −1 dBFS"] = set_level(outputs["oracle"], sample_rate, None, PEAK_CEILING_DB)[0]
        seconds_of["oracle, peak under −1 dBFS"] = seconds_of["oracle"]
        for name in ("param", "unet"):
            started = time.perf_counter()
            # master() without its type conversions and resampling
            restored, estimate, _ = restore(models[name], degraded, residuals[name], strengths[name])
            outputs[name] = set_level(restored, sample_rate, None, PEAK_CEILING_DB)[0]
            seconds_of[name] += time.perf_counter() - started
            started = time.perf_counter()
            uncorrected = restore(models[name], degraded, inverse_strength=strengths[name]).audio
            outputs[f"{name}, no residual correction"] = set_level(uncorrected, sample_rate, None, PEAK_CEILING_DB)[0]
            seconds_of[f"{name}, no residual correction"] += time.perf_counter() - started
            if estimate is not None:
                started = time.perf_counter()
                full_strength = restore(models[name], degraded).audio
                outputs["param, no residual correction, full strength"] = set_level(full_strength, sample_rate, None,
                                                                                 PEAK_CEILING_DB)[0]
                seconds_of["param, no residual correction, full strength"] += time.perf_counter() - started
                outputs["param, peak at −1 dBFS"] = set_level(restored, sample_rate, None, PEAK_CEILING_DB, True)[0]
                seconds_of["param, peak at −1 dBFS"] = seconds_of["param"]
                errors.append(parameter_errors(chain, truth, estimate))
                presence_hits.append({s.name: (float(estimate[s.name]["present"][0]) >= 0.5)
                                      == (float(truth[s.name]["present"][0]) == 1.0) for s in chain.specs})
        outputs["identity, peak at −1 dBFS"] = set_level(degraded, sample_rate, None, PEAK_CEILING_DB, True)[0]
        for name, audio in outputs.items():
            rows.append({"track": track.id, "seed": seed, "system": name, **scores(audio, clean, sample_rate)})
        print(f"{track.id} (seed {seed}): "
              + ", ".join(f"{r['system']} {r['mrstft']:.3f}" for r in rows[-len(SYSTEMS):]))

    summary = {}
    for name in SYSTEMS:
        mine = [r for r in rows if r["system"] == name]
        summary[name] = {k: float(np.mean([r[k] for r in mine]))
                         for k in ("mrstft", "si_sdr_db", "lsd_db", "lufs_error_db")}
        summary[name]["mrstft_median"] = float(np.median([r["mrstft"] for r in mine]))
        summary[name]["real_time_factor"] = seconds_of[name] / audio_seconds
    for name in (s for s in SYSTEMS if s.startswith(("param", "unet"))):
        summary[name]["parameters"] = count_parameters(models[name.split(",")[0]])
    identity, oracle, param = (summary[s]["mrstft"] for s in ("identity", "oracle", "param"))
    targets = {
        "param_mrstft_over_identity": param / identity,
        "param_gain_over_oracle_gain": (identity - param) / (identity - oracle),
        "oracle_under_peak_ceiling_over_identity": summary["oracle, peak under −1 dBFS"]["mrstft"] / identity,
        "param_beats_unet_mrstft": summary["param"]["mrstft"] < summary["unet"]["mrstft"],
        "param_beats_unet_si_sdr": summary["param"]["si_sdr_db"] > summary["unet"]["si_sdr_db"],
    }
    paired = {}  # per excerpt, param against each other restoration: how often better, mean difference ± s.e.
    for other in ("unet", "param, no residual correction", "param, no residual correction, full strength"):
        difference = np.array([p["mrstft"] - o["mrstft"] for p, o in zip(
            (r for r in rows if r["system"] == "param"), (r for r in rows if r["system"] == other))])
        paired[other] = {"param_better": int((difference < 0).sum()), "excerpts": len(difference),
                         "mean_difference": float(difference.mean()),
                         "standard_error": float(difference.std(ddof=1) / np.sqrt(len(difference)))}
    parameter_error = {key: float(np.median([e[key] for e in errors if key in e]))
                       for key in sorted({k for e in errors for k in e})}
    presence_accuracy = {s.name: float(np.mean([h[s.name] for h in presence_hits])) for s in chain.specs}

    song = load_audio(tracks[0].path, sample_rate)
    song = song.repeat(1, math.ceil(180 * sample_rate / song.shape[-1]))[:, : 180 * sample_rate]
    master(song[:, : 5 * sample_rate], sample_rate, model=args.param_model)  # warm-up (and loads the correction)
    master_seconds = math.inf
    for _ in range(3):  # the best of three: the least disturbed by other processes
        started = time.perf_counter()
        master(song, sample_rate, model=args.param_model)
        master_seconds = min(master_seconds, time.perf_counter() - started)

    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "threads": torch.get_num_threads(), "torch": torch.__version__}
    table = ["| system | MR-STFT ↓ | MR-STFT median ↓ | SI-SDR dB ↑ | LSD dB ↓ | LUFS error dB ↓ | parameters | "
             "CPU real-time factor ↓ |", "|---|---|---|---|---|---|---|---|"]
    for name in SYSTEMS:
        s = summary[name]
        size = f"{s['parameters'] / 1e6:.2f} M" if "parameters" in s else "—"
        rtf = f"{s['real_time_factor']:.4f}" if not name.startswith("identity") else "—"
        table.append(f"| {name} | {s['mrstft']:.3f} | {s['mrstft_median']:.3f} | {s['si_sdr_db']:.2f} | "
                     f"{s['lsd_db']:.2f} | "
                     f"{s['lufs_error_db']:.2f} | {size} | {rtf} |")
    lines = [f"Held-out ({args.split}) tracks: {len(tracks)}, {args.seconds:g} s excerpts, {args.draws} degradations "
             f"each (seeds {args.seed}–{args.seed + args.draws - 1}); "
             f"machine: {machine}.", "", *table, "",
             f"- param MR-STFT / degraded MR-STFT: {targets['param_mrstft_over_identity']:.3f} (target ≤ 0.30)",
             f"- param improvement / oracle improvement: {targets['param_gain_over_oracle_gain']:.3f} (target ≥ 0.85)",
             f"- the oracle's output under master()'s peak ceiling / degraded MR-STFT: "
             f"{targets['oracle_under_peak_ceiling_over_identity']:.3f}",
             *[f"- param against {other}, per excerpt: MR-STFT lower on {p['param_better']} of {p['excerpts']}, "
               f"mean difference {p['mean_difference']:+.3f} ± {p['standard_error']:.3f} (standard error)"
               for other, p in paired.items()],
             f"- `master()` on a 3-minute stereo 44.1 kHz track: {master_seconds:.2f} s = "
             f"{master_seconds / 180:.4f} × its duration (target ≤ 0.02)",
             "", "Presence accuracy (probability ≥ 0.5 counts as detected): "
             + ", ".join(f"{k} {v:.0%}" for k, v in presence_accuracy.items()),
             "", "Median absolute parameter error (physical units, effects truly present):", "",
             "| parameter | error |", "|---|---|",
             *[f"| {k} | {v:.3g} |" for k, v in parameter_error.items()]]
    markdown = "\n".join(lines)
    print(markdown)

    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "quality.md", markdown + "\n")
    write_json_atomic(args.out / "quality.json", {
        "machine": machine, "tracks": [t.id for t in tracks], "summary": summary, "targets": targets, "paired": paired,
        "master_seconds_for_3_minutes": master_seconds, "presence_accuracy": presence_accuracy,
        "parameter_error": parameter_error, "rows": rows})
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, label in zip(axes, ("mrstft", "si_sdr_db"),
                              ("MR-STFT distance (lower is better)", "SI-SDR dB (higher is better)")):
        ax.bar(SYSTEMS, [summary[s][key] for s in SYSTEMS], color=[COLOURS[s] for s in SYSTEMS])
        ax.set_title(label)
        ax.tick_params(axis="x", labelrotation=30)
    figure.tight_layout()
    figure.savefig(args.out / "quality.png", dpi=120)

    stamp = f"`python benchmarks/quality.py`, {report.machine_line()}"
    if report.publish("quality", f"Measured by {stamp}.\n\n{markdown}", parser, args) == "quality":
        report.publish("headline", headline(summary, len(tracks), args, stamp), parser, args, report.PROJECT_README)


HEADLINE = {"identity": "identity (the degraded input)", "oracle": "oracle (inverse with the true parameters)",
            "param": "**param** (shipped model, `master()`)",
            "unet": "unet (shipped baseline, `master(model=\"unet\")`)"}
"""The systems of the project README's headline table, with their labels there."""


def headline(summary: dict[str, dict[str, float]], tracks: int, args: argparse.Namespace, stamp: str) -> str:
    """The project README's results table: the main systems' mean scores, with a header line.

    >>> scores = {"mrstft": 1.2, "mrstft_median": 1.0, "si_sdr_db": 6.5, "lufs_error_db": 3.5,
    ...           "real_time_factor": 0.015}
    >>> args = argparse.Namespace(seconds=20.0, draws=10, seed=1234)
    >>> print(headline(dict.fromkeys(HEADLINE, scores), 9, args, "today").splitlines()[6])
    | **param** (shipped model, `master()`) | 1.200 | 1.000 | 6.50 | 3.50 | 0.0150 |
    """
    lines = [f"{tracks} held-out test tracks, {args.seconds:g} s excerpts, each degraded {args.draws} times by the "
             f"chain (seeds {args.seed}–{args.seed + args.draws - 1}), restored by `master()`'s path; {stamp}. "
             "Every system and figure: [benchmarks/README.md](benchmarks/README.md#restoration-quality).", "",
             "| system | MR-STFT ↓ | MR-STFT median ↓ | SI-SDR dB ↑ | LUFS error dB ↓ | CPU real-time factor ↓ |",
             "|---|---|---|---|---|---|"]
    for name, label in HEADLINE.items():
        s = summary[name]
        rtf = "—" if name == "identity" else f"{s['real_time_factor']:.4f}"
        lines.append(f"| {label} | {s['mrstft']:.3f} | {s['mrstft_median']:.3f} | {s['si_sdr_db']:.2f} | "
                     f"{s['lufs_error_db']:.2f} | {rtf} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
