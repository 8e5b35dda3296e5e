"""Restoration quality that cannot flatter: four sets, the trivial baseline, level-matched scores, paired statistics.

Sets (:data:`quality_sets.SETS`):

- (a) the held-out ("test") tracks of ``--music-root`` (split by track, see dmaster.data.splits), each
  excerpt degraded ``--draws`` times by the project's chain with the parameters ``dmaster demaster``
  would draw for it (seeds ``--seed``, ``--seed + 1``, …);
- (b) the external music of ``--external-root`` (``bash recipes/external_music.sh``: singularity-music,
  planetblupi-music-ogg, nexuiz-music, which no model was trained, fitted or tuned on), degraded the same way;
- (c) the same external music degraded by an independent pedalboard chain with its own ranges and priors
  (low/high shelf and bell filters, gain, delay, reverb, compressor; ``.[bench]``); the oracle is unknown;
- (d) the same external music, clean: how far ``master()`` moves music that needs nothing.

Systems, every output scored against the clean excerpt:

- identity: what the systems are given, as it is;
- loudness-only: the trivial "mastering", normalised to −14 LUFS under a −1 dBFS peak (``set_level``);
- oracle: the chain's inverse with the true parameters, through ``master()``'s −1 dBFS peak ceiling;
- param: ``master()``'s defaults with the parameter model (the path of ``master()`` without its
  resampling: estimate, inverse at the fitted strengths, residual correction, peak under −1 dBFS);
- unet: ``master(model="unet")`` the same way (its mask and residual correction at the strengths of its
  policy); "unet without its policy" at full strength, as trained;
- param, no residual correction: the same estimate and strengths, without the residual correction (only where
  the model has one);
- swapped-part rows (sets a, b), each the chain's inverse under the peak ceiling: "oracle, EQ not
  inverted" (the true parameters, the EQ left alone), "oracle but the model's EQ" (the model's EQ at its
  correction strength, every other effect true), "the model's estimate but the true EQ", and "oracle but
  the model's echo" (reverb, compressor) the same way: what each effect's estimate costs, apart (the gain's
  is invisible to a level-matched score);

Scores: MR-STFT raw and level-matched (the output scaled to the original's RMS first: the level is the
user's loudness target, the restoration is judged apart from it), SI-SDR, log-spectral distance, LUFS
error; presence accuracy, AUC and false alarms of the parameter model's estimate; paired comparisons per
item (wins, mean difference ± standard error) of param against loudness-only and the U-Net, and of each
system against its input; the project's targets (:func:`targets`); the time ``master()`` takes on a 3-minute
stereo track.

Writes Markdown and JSON (with every item's scores) to ``--out``; with the default settings (or
``--section quality``) also the ``quality`` section of ``benchmarks/README.md`` and the headline table of
the project's ``README.md`` (see ``benchmarks/report.py``). Without the external music, the default run
measures set (a) alone and writes neither README (naming the sets explicitly makes their music required).

    python benchmarks/quality.py --music-root data/raw/debian_music --external-root data/raw/debian_music_external
    python benchmarks/quality.py --quick --no-readme      # a few minutes
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from dmaster.audio import load_audio, write_json_atomic, write_text_atomic
from dmaster.data.generate import track_params
from dmaster.data.splits import Track, find_tracks, split_of, spread
from dmaster.effects import Chain
from dmaster.mastering import master
from dmaster.mastering.level import set_level
from dmaster.mastering.pretrained import resolve_model, resolve_policy, resolve_residual
from dmaster.mastering.restoration import apply_estimate, correction_strengths, restore, scaled_strengths
from dmaster.metrics import CleanTarget

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality_sets as qs  # noqa: E402  (benchmarks/quality_sets.py)
import report  # noqa: E402  (benchmarks/report.py)
from quality_sets import PEAK_CEILING_DB, ceiling  # noqa: E402

LOUDNESS_ONLY_LUFS = -14.0
SWAPPED = ("oracle, EQ not inverted", "oracle but the model's EQ", "the model's estimate but the true EQ")
ALONE = ("echo", "reverb", "compressor")
"""Effects whose estimate is also swapped into the truth alone (the EQ's is one of :data:`SWAPPED`)."""
SWAPPED_ALONE = tuple(f"oracle but the model's {name}" for name in ALONE)
AMOUNTS = (0.25, 0.5, 0.75)
"""``master(amount=…)`` of the harm-against-gain curve."""
SMALLER = tuple(f"param, amount {a:g}" for a in AMOUNTS)
CURVE = (*SMALLER, "param", "param without its policy", "unet", "unet without its policy")
SYSTEMS = ("identity", "loudness-only", "oracle", "param", "unet", "param, no residual correction", *SWAPPED,
           *SWAPPED_ALONE,
           *SMALLER, "param without its policy", "unet without its policy")
QUICK = {"draws": 1, "seconds": 5.0, "max_tracks": 3}
FULL = {"draws": 2, "seconds": 10.0, "max_tracks": 0}


def excerpt(audio: torch.Tensor, seconds: float, sample_rate: int) -> torch.Tensor:
    """``seconds`` from the middle of the track (all of it when shorter)."""
    length = int(seconds * sample_rate)
    start = max(0, (audio.shape[-1] - length) // 2)
    return audio[:, start : start + length]


class Systems:
    """The models and fitted files, resolved once; :meth:`outputs` runs every system on an item."""

    def __init__(self, param_model: str, unet_model: str):
        self.param, self.unet = resolve_model(param_model), resolve_model(unet_model)
        self.residual = {"param": resolve_residual(param_model), "unet": resolve_residual(unet_model)}
        self.policy = resolve_policy(param_model)
        self.unet_policy = resolve_policy(unet_model)
        self.strength = self.policy.strength
        self.chain: Chain = self.param.chain
        self.sample_rate = self.param.sample_rate

    def outputs(self, item: qs.Item, swapped: bool) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Every system's output for ``item``, and the parameter model's presence probabilities."""
        sr, given, chain = self.sample_rate, item.given, self.chain
        out = {"identity": given, "loudness-only": set_level(given, sr, LOUDNESS_ONLY_LUFS, PEAK_CEILING_DB)[0]}
        if item.truth is not None:
            out["oracle"] = ceiling(chain.inverse(given[None], item.truth)[0], sr)
        restored, estimate, correction, applied = restore(self.param, given, self.policy,
                                                          self.residual["param"])
        out["param"] = ceiling(restored, sr)
        unet = self.unet_policy
        out["unet"] = ceiling(restore(self.unet, given, unet, self.residual["unet"]).audio, sr)
        if correction is not None:
            out["param, no residual correction"] = ceiling(apply_estimate(chain, given, estimate, applied), sr)
        for amount in AMOUNTS:  # what master(amount=...) does with the same estimate
            strength = scaled_strengths(chain, applied, amount)
            scaled = None if correction is None else correction.scaled(amount)
            out[f"param, amount {amount:g}"] = ceiling(apply_estimate(chain, given, estimate, strength, scaled), sr)
        out["param without its policy"] = ceiling(restore(self.param, given, residual=self.residual["param"]).audio, sr)
        out["unet without its policy"] = ceiling(restore(self.unet, given, residual=self.residual["unet"]).audio, sr)
        if swapped and item.truth is not None:
            model = correction_strengths(estimate, applied)
            truth = item.truth
            no_eq = {**truth, "eq": {**truth["eq"], "present": torch.zeros_like(truth["eq"]["present"])}}
            swaps = [no_eq, {**truth, "eq": model["eq"]}, {**model, "eq": truth["eq"]},
                     *({**truth, effect: model[effect]} for effect in ALONE)]
            for name, params in zip(SWAPPED + SWAPPED_ALONE, swaps):
                out[name] = ceiling(chain.inverse(given[None], params)[0], sr)
        presence = {name: float(estimate[name]["present"][0]) for name in chain.effect_names}
        return out, presence


def build_items(name: str, args: argparse.Namespace, size: dict, systems: Systems, clean_of) -> list[qs.Item]:
    """The items of set ``name``; ``clean_of(track)`` gives a track's clean excerpt."""
    sr, chain = systems.sample_rate, systems.chain
    if name == "a":
        tracks = [t for t in find_tracks(args.music_root) if args.split in ("all", split_of(t.id))]
    else:
        if not args.external_root.is_dir():
            raise SystemExit(f"set ({name}) needs the external music in {args.external_root}: "
                             "bash recipes/external_music.sh fetches it (or pass --external-root)")
        tracks = find_tracks(args.external_root)
    tracks = spread(tracks, size["max_tracks"])
    if not tracks:
        raise SystemExit(f"set ({name}): no tracks")
    seeds = [args.seed + k for k in range(size["draws"])]
    items = []
    for track in tracks:
        clean = clean_of(track)
        if name in ("a", "b"):
            items += [qs.chain_item(name, chain, track.id, s, clean, track_params(chain, s, [track.id])) for s in seeds]
        elif name == "c":
            items += [qs.pedalboard_item(track.id, s, clean, sr) for s in seeds]
        else:
            items.append(qs.Item("d", track.id, None, clean, clean, None, dict.fromkeys(chain.effect_names, False)))
    return items


def comparisons(systems_present: list[str]) -> list[tuple[str, str]]:
    pairs = [("param", "loudness-only"), ("param", "unet"), ("param", "identity"), ("unet", "identity"),
             ("loudness-only", "identity"), ("oracle", "identity"), ("param", "param, no residual correction"),
             ("oracle but the model's EQ", "oracle, EQ not inverted"),
             ("the model's estimate but the true EQ", "oracle")]
    return [(a, b) for a, b in pairs if a in systems_present and b in systems_present]


def targets(name: str, summary: dict, paired: dict, presence: dict) -> list[dict]:
    """The project's targets that this set measures."""
    found = []

    def add(what: str, value: float, target: str, met: bool, digits: str = ".3f") -> None:
        found.append({"what": what, "value": format(value, digits), "target": target, "met": bool(met)})

    def lm(system: str) -> float:
        return summary[system]["mrstft_level_matched"]

    if name in ("a", "b"):
        add("param level-matched MR-STFT / identity's", lm("param") / lm("identity"), "≤ 0.90",
            lm("param") / lm("identity") <= 0.90)
        ratio = summary["param"]["mrstft"] / summary["loudness-only"]["mrstft"]
        add("param raw MR-STFT / loudness-only's", ratio, "≤ 0.90", ratio <= 0.90)
        p = paired["param − unet"]["mrstft_level_matched"]
        add("param − U-Net, level-matched, in standard errors", p["mean_difference"] / p["standard_error"], "< −2",
            p["mean_difference"] < -2 * p["standard_error"], ".1f")
        add("U-Net level-matched MR-STFT / identity's", lm("unet") / lm("identity"), "< 1",
            lm("unet") < lm("identity"))
        if "oracle but the model's EQ − oracle, EQ not inverted" in paired:
            p = paired["oracle but the model's EQ − oracle, EQ not inverted"]["mrstft_level_matched"]
            add("model's EQ inverse − no EQ inverse (rest true), level-matched, in standard errors",
                p["mean_difference"] / p["standard_error"], "< −2", p["mean_difference"] < -2 * p["standard_error"],
                ".1f")
            ratio = lm("the model's estimate but the true EQ") / lm("oracle")
            add("the model's estimate with the true EQ / the oracle, level-matched", ratio, "≤ 1.25", ratio <= 1.25)
    elif name == "c":
        add("param level-matched MR-STFT / identity's", lm("param") / lm("identity"), "≤ 0.95",
            lm("param") / lm("identity") <= 0.95)
    elif name == "d":
        add("level-matched MR-STFT of param's output against the original", lm("param"), "≤ 0.15",
            lm("param") <= 0.15)
        echo = presence["echo"]
        rate = echo["false_alarms"] / echo["absent"]
        found.append({"what": "echo false alarms on echo-free external excerpts",
                      "value": f"{rate:.0%} ({echo['false_alarms']} of {echo['absent']})", "target": "≤ 10 %",
                      "met": rate <= 0.10})
    return found


def measure_set(name: str, items: list[qs.Item], systems: Systems, swapped: bool) -> dict:
    rows, presence_p, presence_t = [], [], []
    for item in items:
        target = CleanTarget(item.clean, systems.sample_rate)
        outputs, presence = systems.outputs(item, swapped)
        presence_p.append(presence)
        presence_t.append(item.present)
        for system, audio in outputs.items():
            rows.append({"set": name, "track": item.track, "seed": item.seed, "system": system,
                         **target.scores(audio)})
        mine = rows[-len(outputs):]
        print(f"({name}) {item.track} (seed {item.seed}): level-matched "
              + ", ".join(f"{r['system']} {r['mrstft_level_matched']:.3f}" for r in mine), flush=True)
    present = [s for s in SYSTEMS if any(r["system"] == s for r in rows)]
    summary = qs.summarise(rows, present)
    tracks = qs.column(rows, "identity", "track")  # draws of one track are not independent: errors by track
    paired = {f"{a} − {b}": {key: qs.paired_difference(qs.column(rows, a, key), qs.column(rows, b, key), tracks)
                             for key in ("mrstft_level_matched", "mrstft")} for a, b in comparisons(present)}
    presence = qs.presence_scores(presence_p, presence_t)
    return {"items": len(items), "tracks": len({i.track for i in items}), "summary": summary, "paired": paired,
            "presence": presence, "targets": targets(name, summary, paired, presence), "rows": rows,
            "pedalboard": [{"track": i.track, "seed": i.seed, **i.drawn} for i in items if i.drawn] or None}


def curve_markdown(results: dict[str, dict]) -> str:
    """Harm against gain: the level-matched MR-STFT of ``master(amount=…)`` on every set, and of each model
    without its policy (every strength 1, presence uncalibrated, the whole residual correction)."""
    names = list(results)
    lines = ["### Harm against gain", "",
             "Level-matched MR-STFT of `master(amount=…)` with the shipped policy, and of each model without "
             "its policy; (d) is the harm done to music that needed nothing, (a)–(c) the gain. Identity for "
             "comparison.", "",
             "| system | " + " | ".join(f"({n})" for n in names) + " |", "|---|" + "---|" * len(names)]
    for system in ("identity", *CURVE):
        cells = [f"{results[n]['summary'][system]['mrstft_level_matched']:.3f}" if system in results[n]["summary"]
                 else "—" for n in names]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe(name: str, result: dict, size: dict, args: argparse.Namespace) -> str:
    draws = "" if name == "d" else f" × {size['draws']} draws (seeds {args.seed}–{args.seed + size['draws'] - 1})"
    where = f"`{args.split}` tracks of {args.music_root.name}" if name == "a" else \
        f"tracks of {args.external_root.name}"
    return f"{result['items']} items: {result['tracks']} {where}{draws}, {size['seconds']:g} s excerpts."


def time_master(track: Track, sample_rate: int, model: str) -> float:
    """Seconds ``master()`` takes on a 3-minute stereo track (the best of three)."""
    song = load_audio(track.path, sample_rate)
    song = song.repeat(1, math.ceil(180 * sample_rate / song.shape[-1]))[:, : 180 * sample_rate]
    master(song[:, : 5 * sample_rate], sample_rate, model=model)  # warm-up
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        master(song, sample_rate, model=model)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--music-root", type=Path, default=Path("data/raw/debian_music"), help="set (a)'s corpus")
    parser.add_argument("--external-root", type=Path, default=Path("data/raw/debian_music_external"),
                        help="sets (b)–(d): music no model was trained on (recipes/external_music.sh)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test", "all"),
                        help="set (a)'s tracks; 'all' for a corpus no model was trained on")
    parser.add_argument("--sets", nargs="+", choices=tuple(qs.SETS), default=list(qs.SETS))
    parser.add_argument("--seed", type=int, default=1234, help="seed of the first degradation of each track")
    parser.add_argument("--draws", type=int, help=f"degradations per track in (a)–(c) (default {FULL['draws']})")
    parser.add_argument("--seconds", type=float, help=f"excerpt length (default {FULL['seconds']:g})")
    parser.add_argument("--max-tracks", type=int, help="tracks per set, spread over the list (default and 0: all; "
                                                       "fewer draw the targets' verdicts from fewer songs)")
    parser.add_argument("--quick", action="store_true", help=f"a small run ({QUICK}) without the 3-minute timing")
    parser.add_argument("--no-swapped", action="store_true", help="leave out the swapped-part rows")
    parser.add_argument("--param-model", default="param", help="'param' (shipped) or a checkpoint")
    parser.add_argument("--unet-model", default="unet", help="'unet' (shipped) or a checkpoint")
    parser.add_argument("--out", type=Path, default=Path("experiments/quality"))
    report.add_arguments(parser)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    size = {key: getattr(args, key) if getattr(args, key) is not None else (QUICK if args.quick else FULL)[key]
            for key in FULL}
    size["max_tracks"] = size["max_tracks"] or None

    systems = Systems(args.param_model, args.unet_model)
    sr = systems.sample_rate
    cache: dict[Path, torch.Tensor] = {}
    seen: list[Track] = []

    def clean_of(track: Track) -> torch.Tensor:
        if track.path not in cache:
            seen.append(track)
            cache[track.path] = excerpt(load_audio(track.path, sr), size["seconds"], sr).clone()
        return cache[track.path]

    started = time.perf_counter()
    results = {}
    sets = sorted(args.sets)
    skipped = []
    if sets == sorted(qs.SETS) and not args.external_root.is_dir():  # the default: measure what is there
        skipped, sets = sets[1:], ["a"]
        print(f"note: no external music in {args.external_root} (bash recipes/external_music.sh fetches it): "
              f"sets {', '.join(skipped)} left out, and neither README written")
    for name in sets:
        items = build_items(name, args, size, systems, clean_of)
        results[name] = measure_set(name, items, systems, not args.no_swapped)
        results[name]["description"] = describe(name, results[name], size, args)
    benchmark_seconds = time.perf_counter() - started
    master_seconds = None if args.quick else time_master(seen[0], sr, args.param_model)

    machine = {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
               "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__}
    date = datetime.date.today().isoformat()
    stamp = f"`python benchmarks/quality.py`, {report.machine_line()}"
    counts = ", ".join(f"({n}) {r['items']} items" for n, r in results.items())
    intro = [f"Measured by {stamp} ({machine['platform']}); {size['seconds']:g} s excerpts from the middle of "
             f"each track; sets {counts}; {benchmark_seconds / 60:.0f} min of measurement.",
             "", "Systems: identity (the input as given); loudness-only (−14 LUFS under a −1 dBFS peak, the trivial "
             "baseline); oracle (the chain's inverse with the true parameters, under the −1 dBFS ceiling); param "
             "and unet (the shipped models through `master()`'s defaults); param without its residual correction "
             "(where it has one); "
             "param at a smaller `amount`, and param and unet without their policies (the harm-against-gain curve); "
             "the swapped-part rows (the chain's inverse with the true parameters but one part swapped). "
             "Level-matched: the output scaled to the original's RMS before scoring. Paired statistics: wins "
             "over items, standard errors over tracks (the mean difference per track; draws of one track are not "
             "independent)."]
    if master_seconds is not None:
        intro.append(f"\n`master()` on a 3-minute stereo 44.1 kHz track: {master_seconds:.2f} s = "
                     f"{master_seconds / 180:.4f} × its duration (target ≤ 0.02).")
    markdown = "\n".join(intro) + "\n\n" + curve_markdown(results) + "\n\n" + "\n\n".join(
        qs.set_markdown(n, r) for n, r in results.items())
    print(markdown)

    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "quality.md", markdown + "\n")
    write_json_atomic(args.out / "quality.json", {
        "machine": machine, "date": date, "settings": {**size, "seed": args.seed, "sets": sorted(args.sets)},
        "master_seconds_for_3_minutes": master_seconds, "sets": results})

    if not skipped and report.publish("quality", markdown, parser, args) == "quality":
        report.write_section("quality_external", "The external music is sets (b)–(d) of the `quality` section "
                             "above, measured by the same run of `benchmarks/quality.py`.")
        header = (f"Level-matched MR-STFT distance to the original (lower is better; the output scaled to the "
                  f"original's RMS first, so that the loudness target plays no part), {size['seconds']:g} s "
                  f"excerpts; {stamp}. Loudness-only is the trivial baseline (−14 LUFS under a −1 dBFS peak); the "
                  f"last column is param's paired mean difference from it. Every table: "
                  f"[benchmarks/README.md](benchmarks/README.md#restoration-quality).")
        report.write_section("headline", qs.headline_markdown(results, header), report.PROJECT_README)
        print(f"wrote section 'headline' of {report.PROJECT_README}")


if __name__ == "__main__":
    main()
