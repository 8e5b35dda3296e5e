"""Reference matching on held-out music: the DeepAFx-ST protocol against Matchering and the blind mode.

For each track (normalised to −24 LUFS as a whole), two 10 s passages a and b, and two styles P1 and
P2 drawn from an independent chain (pedalboard low shelf, high shelf, peak filter, compressor, gain;
its own ranges, not the project's chain): input = P1(a), reference = P2(b), target = P2(a). In the
"other track" set the reference is P2 applied to passage b of the next track. Systems:

- input: the input as it is;
- oracle: the target itself, normalised to the reference's loudness under the ceiling: the floor that the
  loudness of another passage sets to the raw MR-STFT of every system that matches the reference's loudness;
- oracle tone, input's dynamics: the input with its style's EQ undone and the reference style's applied (the
  true settings; the input's compressor left as it is), at the reference's loudness: what a perfect tonal
  correction alone would reach, the bound on how far estimating the EQ better can go;
- loudness only: the input normalised to the reference's loudness (peaks limited to −1 dBFS);
- Matchering 2 (``pip install .[bench]``; skipped when not importable), with its limiter;
- dmaster blind: ``master()`` without the reference, normalised to the reference's loudness;
- dmaster reference, swap only / with refinement: :func:`dmaster.mastering.reference.match_reference`, then
  ``set_level()`` to the reference's loudness under a −1 dBFS peak ceiling (what ``master(reference=…)`` does).

Scores against the target: MR-STFT (``dmaster.metrics``) raw and level-matched (the output scaled to
the target's RMS), the loudness error against the reference (LU) and the seconds per clip; paired
differences (mean ± standard error) against Matchering and against the input. Writes Markdown and
JSON to ``--out``, prints the Markdown and puts it into ``docs/reference.md`` between its markers.

    python benchmarks/reference_match.py --music-root data/raw/debian_music_external --threads 1   # ~10 min
    python benchmarks/reference_match.py --quick    # 8 tracks, no 3-minute timing, docs left alone
    python benchmarks/reference_match.py --music-root data/raw/debian_music_external --image   # styles with images

With ``--image`` every style also sets the stereo image after its chain (an imager's side level, ±6 dB, and below a
crossover of 80–250 Hz the low end folded to mono or widened); the table adds the MR-STFT of mid and of side (each
level-matched) and the side-to-mid error (dB rms over octave bands, read by this script's own meter), and an
"oracle image, input's tone" row: the input with its style's image undone where it can be (a folded low end stays
mono) and the reference style's applied, the floor of the image columns.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pedalboard
import soundfile as sf
import torch

from dmaster.audio import load_audio, write_json_atomic, write_text_atomic
from dmaster.data.splits import find_tracks, unit_hash
from dmaster.loudness import integrated_loudness
from dmaster.mastering import master
from dmaster.mastering.level import PEAK_CEILING_DB, set_level
from dmaster.mastering.pretrained import resolve_model
from dmaster.mastering.reference import match_reference
from dmaster.mastering.tone import REFINE_STEPS
from dmaster.metrics import mrstft_distance

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report as sections  # noqa: E402  (benchmarks/report.py)

SAMPLE_RATE = 44100
CLIP_SECONDS = 10.0
TRACK_LUFS = -24.0
"""Every track is scaled to this loudness before the styles (headroom for their boosts)."""
System = Callable[[dict, torch.Tensor], torch.Tensor]
"""A system of the table: (item of :func:`make_items`, reference) → output."""
DOCS = Path(__file__).resolve().parent.parent / "docs" / "reference.md"
ORACLE_TONE = "oracle tone, input's dynamics"
ORACLE_IMAGE = "oracle image, input's tone"
ORACLES = ("input", "oracle", ORACLE_TONE, ORACLE_IMAGE)
"""Rows that are no system to time."""
BEGIN, END = "<!-- BEGIN reference_match -->", "<!-- END reference_match -->"
"""The markers :func:`sections.write_section` keeps the table between."""


def draw_style(rng: np.random.Generator) -> dict[str, float]:
    """One style of the independent chain: every stage on, settings drawn from its own ranges."""
    log_uniform = lambda low, high: float(np.exp(rng.uniform(np.log(low), np.log(high))))  # noqa: E731
    return {"low_shelf_hz": log_uniform(60, 250), "low_shelf_db": float(rng.uniform(-8, 8)),
            "high_shelf_hz": log_uniform(2500, 10000), "high_shelf_db": float(rng.uniform(-8, 8)),
            "peak_hz": log_uniform(150, 6000), "peak_db": float(rng.uniform(-8, 8)), "peak_q": log_uniform(0.5, 2.5),
            "threshold_db": float(rng.uniform(-36, -12)), "ratio": log_uniform(1.5, 6.0),
            "attack_ms": log_uniform(1, 30), "release_ms": log_uniform(50, 400), "gain_db": float(rng.uniform(-9, 9))}


IMAGE_BANDS_HZ = (31.25, 62.5, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)
"""Lower edges of the octave bands the side-to-mid error is read in (the last one runs to Nyquist)."""


def draw_image(rng: np.random.Generator) -> dict[str, float]:
    """A style's stereo image, as an imager sets one: the side level (dB) and, below a crossover, the low end folded
    to mono or widened by 6 dB."""
    return {"width_db": float(rng.uniform(-6, 6)), "crossover_hz": float(np.exp(rng.uniform(np.log(80), np.log(250)))),
            "low_side": float(rng.choice([0.0, 2.0]))}


def apply_image_style(audio: torch.Tensor, image: dict[str, float], undo: bool = False) -> torch.Tensor:
    """``audio`` ``(2, samples)`` with its side scaled by the style's width and its low side (below the crossover,
    a zero-phase 4th-order Butterworth split) scaled by ``low_side``; ``undo`` inverts what can be inverted (a low
    end folded to mono stays mono)."""
    from scipy.signal import butter, sosfiltfilt
    data = audio.double().numpy()
    mid, side = (data[0] + data[1]) / 2, (data[0] - data[1]) / 2
    low = sosfiltfilt(butter(4, image["crossover_hz"], fs=SAMPLE_RATE, output="sos"), side)
    low_gain, width = image["low_side"], 10 ** (image["width_db"] / 20)
    if undo:
        low_gain, width = (1.0 / low_gain if low_gain else 0.0), 1.0 / width
    side = width * ((side - low) + low_gain * low)
    return torch.from_numpy(np.stack([mid + side, mid - side])).float()


MONO_DB = -30.0
"""Side-to-mid ratios are floored here: a band whose side is this far under its mid counts as mono (else the dB of
next to nothing, a folded low end's, would swamp the error)."""


def side_to_mid_db(audio: torch.Tensor) -> np.ndarray:
    """Side-to-mid energy ratio (dB, floored at :data:`MONO_DB`) per octave band of :data:`IMAGE_BANDS_HZ` of
    ``audio`` ``(2, samples)``, from its whole-clip spectrum (this benchmark's own meter, not dmaster's features)."""
    data = audio.double().numpy()
    spectra = [np.abs(np.fft.rfft(part)) ** 2 for part in ((data[0] + data[1]) / 2, (data[0] - data[1]) / 2)]
    hz = np.fft.rfftfreq(data.shape[-1], 1 / SAMPLE_RATE)
    edges = [*IMAGE_BANDS_HZ, SAMPLE_RATE / 2]
    bands = [(hz >= low) & (hz < high) for low, high in zip(edges, edges[1:])]
    ratios = [10 * np.log10((spectra[1][b].sum() + 1e-12) / (spectra[0][b].sum() + 1e-12)) for b in bands]
    return np.maximum(np.array(ratios), MONO_DB)


def style_eq(style: dict[str, float], sign: float = 1.0) -> list:
    """The pedalboard filters of a style's EQ (shelves and peak filter); ``sign`` −1 gives its inverse (each
    filter's gain negated: these biquads' exact inverses)."""
    return [pedalboard.LowShelfFilter(cutoff_frequency_hz=style["low_shelf_hz"], gain_db=sign * style["low_shelf_db"]),
            pedalboard.HighShelfFilter(cutoff_frequency_hz=style["high_shelf_hz"],
                                       gain_db=sign * style["high_shelf_db"]),
            pedalboard.PeakFilter(cutoff_frequency_hz=style["peak_hz"], gain_db=sign * style["peak_db"],
                                  q=style["peak_q"])]


def apply_style(audio: torch.Tensor, style: dict[str, float]) -> torch.Tensor:
    """``audio`` ``(channels, samples)`` through the pedalboard chain of ``style``."""
    board = pedalboard.Pedalboard([
        *style_eq(style),
        pedalboard.Compressor(threshold_db=style["threshold_db"], ratio=style["ratio"], attack_ms=style["attack_ms"],
                              release_ms=style["release_ms"]),
        pedalboard.Gain(gain_db=style["gain_db"])])
    return torch.from_numpy(board(audio.numpy(), SAMPLE_RATE))


def swap_tone(audio: torch.Tensor, first: dict[str, float], second: dict[str, float]) -> torch.Tensor:
    """``audio`` with style ``first``'s EQ undone and ``second``'s applied (its dynamics left as they are)."""
    board = pedalboard.Pedalboard([*style_eq(first, -1.0), *style_eq(second)])
    return torch.from_numpy(board(audio.numpy(), SAMPLE_RATE))


def passages(audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two non-overlapping :data:`CLIP_SECONDS` passages a and b of a track ``(channels, samples)``."""
    clip = int(CLIP_SECONDS * SAMPLE_RATE)
    slack = max(0, audio.shape[-1] - 2 * clip)
    start_a = int(0.2 * slack)
    start_b = start_a + clip + int(0.6 * slack)
    return audio[:, start_a : start_a + clip], audio[:, start_b : start_b + clip]


def load_track(path: Path) -> torch.Tensor:
    audio = load_audio(path, SAMPLE_RATE)
    return audio * 10 ** ((TRACK_LUFS - integrated_loudness(audio, SAMPLE_RATE)) / 20)


def make_items(paths: list[Path], seed: int, image: bool = False) -> list[dict]:
    """Per track: input P1(a), target P2(a), reference P2(b) and, from the next track, P2(b′); and the input with
    P1's EQ swapped for P2's (:func:`swap_tone`). With ``image``, each style also sets the stereo image
    (:func:`draw_image`, after the chain), and the input with P1's image swapped for P2's is kept too."""
    tracks = [passages(load_track(path)) for path in paths]
    items = []
    for index, path in enumerate(paths):
        rng = np.random.default_rng([seed, int(unit_hash(path.stem) * 2**32)])
        first, second = draw_style(rng), draw_style(rng)
        if image:  # drawn after the tone styles: the tone of every item stays what it is without images
            first["image"], second["image"] = draw_image(rng), draw_image(rng)

        def style(audio: torch.Tensor, s: dict) -> torch.Tensor:
            styled = apply_style(audio, s)
            return apply_image_style(styled, s["image"]) if image else styled

        a, b = tracks[index]
        other_b = tracks[(index + 1) % len(tracks)][1]
        given = style(a, first)
        item = {"track": path.stem, "input": given, "target": style(a, second),
                "tone swapped": swap_tone(given, first, second),
                "reference": {"same track": style(b, second), "other track": style(other_b, second)},
                "styles": [first, second]}
        if image:
            item["image swapped"] = apply_image_style(apply_image_style(given, first["image"], undo=True),
                                                      second["image"])
        items.append(item)
    return items


def matchering_system() -> System | None:
    """Matchering 2 through its file interface (what it offers), or ``None`` when it is not installed."""
    try:
        import matchering
    except ImportError:
        return None

    def run(audio: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        with tempfile.TemporaryDirectory() as folder:
            paths = [os.path.join(folder, name) for name in ("target.wav", "reference.wav", "result.wav")]
            sf.write(paths[0], audio.T.numpy(), SAMPLE_RATE, subtype="FLOAT")
            sf.write(paths[1], reference.T.numpy(), SAMPLE_RATE, subtype="FLOAT")
            matchering.process(target=paths[0], reference=paths[1],
                               results=[matchering.Result(paths[2], subtype="FLOAT", use_limiter=True)])
            out, _ = sf.read(paths[2], dtype="float32", always_2d=True)
        return torch.from_numpy(np.ascontiguousarray(out.T))[:, : audio.shape[-1]]

    return lambda item, reference: run(item["input"], reference)


def systems(model: str, image: bool = False) -> dict[str, System]:
    """Each system: (item, reference) → output ``(channels, samples)``, all at :data:`SAMPLE_RATE` (only the
    oracles look at the target or the styles); ``model`` names the parameter model (``"param"`` or a checkpoint),
    so that ``master()`` uses its policy and residual correction as it does by default; ``image`` adds the
    oracle image row."""
    def level(audio: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return set_level(audio, SAMPLE_RATE, integrated_loudness(reference, SAMPLE_RATE), PEAK_CEILING_DB)[0]

    def reference_mode(refine: bool) -> System:
        def run(item: dict, reference: torch.Tensor) -> torch.Tensor:
            matched, report = match_reference(item["input"], reference, model, steps=REFINE_STEPS if refine else 0)
            return set_level(matched, SAMPLE_RATE, report["reference_loudness_lufs"], PEAK_CEILING_DB)[0]
        return run

    table: dict[str, System] = {"input": lambda item, reference: item["input"],
                                "oracle": lambda item, reference: level(item["target"], reference),
                                ORACLE_TONE: lambda item, reference: level(item["tone swapped"], reference),
                                "loudness only": lambda item, reference: level(item["input"], reference)}
    if image:
        table[ORACLE_IMAGE] = lambda item, reference: level(item["image swapped"], reference)
    peer = matchering_system()
    if peer is not None:
        table["Matchering"] = peer
    table["dmaster blind"] = lambda item, reference: master(
        item["input"], SAMPLE_RATE, model=model, target_lufs=integrated_loudness(reference, SAMPLE_RATE)).audio
    table["dmaster reference, swap only"] = reference_mode(False)
    table["dmaster reference"] = reference_mode(True)
    return table


def scores(output: torch.Tensor, target: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    rms = lambda x: float(x.square().mean().sqrt())  # noqa: E731
    matched = output * (rms(target) / max(rms(output), 1e-12))
    out = {"mrstft": float(mrstft_distance(output[None], target[None])),
           "mrstft_level_matched": float(mrstft_distance(matched[None], target[None])),
           "lufs_error": abs(integrated_loudness(output, SAMPLE_RATE) - integrated_loudness(reference, SAMPLE_RATE))}
    if output.shape[0] == 2:  # the image: mid and side apart, each level-matched, and the side-to-mid error
        for name, sign in (("mid", 1.0), ("side", -1.0)):
            part, wanted = (output[0] + sign * output[1]) / 2, (target[0] + sign * target[1]) / 2
            part = part * (rms(wanted) / max(rms(part), 1e-12))
            out[f"mrstft_{name}_level_matched"] = float(mrstft_distance(part[None, None], wanted[None, None]))
        error = side_to_mid_db(output) - side_to_mid_db(target)
        out["side_to_mid_error_db"] = float(np.sqrt(np.mean(error**2)))
    return out


def paired(rows: list[dict], system: str, other: str, key: str = "mrstft") -> dict[str, float] | None:
    mine = {(r["set"], r["track"]): r[key] for r in rows if r["system"] == system}
    theirs = {(r["set"], r["track"]): r[key] for r in rows if r["system"] == other}
    common = sorted(set(mine) & set(theirs))
    if len(common) < 2:
        return None
    difference = np.array([mine[k] - theirs[k] for k in common])
    return {"mean_difference": float(difference.mean()),
            "standard_error": float(difference.std(ddof=1) / math.sqrt(len(difference))),
            "better": int((difference < 0).sum()), "items": len(difference)}


def song_seconds(paths: list[Path], model) -> float:
    """Seconds for a 3-minute stereo song matched to a 3-minute reference and levelled (best of two)."""
    def three_minutes(path: Path) -> torch.Tensor:
        audio = load_audio(path, SAMPLE_RATE)
        return audio.repeat(1, math.ceil(180 * SAMPLE_RATE / audio.shape[-1]))[:, : 180 * SAMPLE_RATE]
    song, reference = three_minutes(paths[0]), three_minutes(paths[-1])
    best = math.inf
    for _ in range(2):
        started = time.perf_counter()
        matched, report = match_reference(song, reference, model)
        set_level(matched, SAMPLE_RATE, report["reference_loudness_lufs"], PEAK_CEILING_DB)
        best = min(best, time.perf_counter() - started)
    return best


def markdown(summary: dict, comparisons: dict, meta: dict) -> str:
    lines = [f"Measured {meta['date']} on {meta['machine']} with `benchmarks/reference_match.py`: "
             f"{meta['tracks']} tracks of {meta['music']}, one item per track and set (10 s clips, seed "
             f"{meta['seed']}); the output's level set to the reference's loudness under a −1 dBFS peak ceiling.", ""]
    image = meta.get("image", False)
    for name, table in summary.items():
        header = "| system | MR-STFT to the target ↓ | level-matched ↓ | LUFS error vs reference (LU) ↓ "
        if image:
            header += "| mid, level-matched ↓ | side, level-matched ↓ | side-to-mid error, dB rms over octaves ↓ "
        header += "| s per clip ↓ |"
        lines += [f"**{name} reference** ({table['items']} items)", "", header, "|---" * (header.count("|") - 1) + "|"]
        for system, s in table["systems"].items():
            seconds = "—" if system in ORACLES else f"{s['seconds']:.2f}"
            cells = f"| {system} | {s['mrstft']:.3f} | {s['mrstft_level_matched']:.3f} | {s['lufs_error']:.2f} "
            if image:
                cells += (f"| {s['mrstft_mid_level_matched']:.3f} | {s['mrstft_side_level_matched']:.3f} | "
                          f"{s['side_to_mid_error_db']:.2f} ")
            lines.append(cells + f"| {seconds} |")
        lines.append("")
        for (system, other, key), p in comparisons[name].items():
            lines.append(f"- {system} − {other}, {key.replace('_', ' ')}: {p['mean_difference']:+.3f} ± "
                         f"{p['standard_error']:.3f} (lower on {p['better']} of {p['items']})")
        lines.append("")
    lines += [f"A 3-minute stereo song matched to a 3-minute reference, level stage included: "
              f"{meta['song_seconds']:.2f} s.", ""]
    targets = meta.get("targets")
    if targets:
        lines += ["Targets (same-track references): " + "; ".join(targets), ""]
    return "\n".join(lines)


def write_docs(text: str, image: bool = False) -> None:
    """Put ``text`` between the markers of ``docs/reference.md`` (the benchmarks' one section writer): the
    ``reference_match`` section, or with ``image`` the ``reference_match_image`` one."""
    sections.write_section("reference_match_image" if image else "reference_match", text, DOCS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--music-root", type=Path, default=Path("data/raw/debian_music_external"))
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--max-tracks", type=int, default=24,
                        help="tracks spread evenly over the sorted list, at most this many (0: all)")
    parser.add_argument("--quick", action="store_true", help="8 tracks and no 3-minute timing")
    parser.add_argument("--model", default="param", help="'param' (shipped) or a checkpoint")
    parser.add_argument("--out", type=Path, default=Path("experiments/reference_match"))
    parser.add_argument("--no-docs", action="store_true", help="do not write the table into docs/reference.md")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--image", action="store_true",
                        help="styles that also change the stereo image (width ±6 dB, the low end folded to mono or "
                             "widened below 80-250 Hz), with the image columns and the oracle image row")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)

    paths = [t.path for t in find_tracks(args.music_root)]
    limit = 8 if args.quick else args.max_tracks
    if limit and len(paths) > limit:
        paths = [paths[round(i * len(paths) / limit)] for i in range(limit)]
    if len(paths) < 2:
        raise SystemExit(f"need at least two tracks under {args.music_root}")
    resolve_model(args.model)  # a bad --model fails here, before any music is read
    model = args.model  # by name, so that master() finds the files fitted next to it (a loaded module has none)
    table = systems(model, args.image)
    items = make_items(paths, args.seed, args.image)
    for run in table.values():  # warm-up: model load, numba compilation
        first = items[0]
        run({key: first[key][:, : 5 * SAMPLE_RATE] for key in ("input", "target", "tone swapped", "image swapped")
             if key in first}, first["reference"]["same track"][:, : 5 * SAMPLE_RATE])
    if args.threads:  # again: starting numba's threading layer in the first runs resets torch's thread count
        torch.set_num_threads(args.threads)

    rows = []
    for item in items:
        for name, reference in item["reference"].items():
            for system, run in table.items():
                started = time.perf_counter()
                output = run(item, reference)
                seconds = time.perf_counter() - started
                rows.append({"set": name, "track": item["track"], "system": system, "seconds": seconds,
                             **scores(output, item["target"], reference)})
            print(f"{item['track']} ({name}): " + ", ".join(
                f"{r['system']} {r['mrstft']:.3f}/{r['mrstft_level_matched']:.3f}" for r in rows[-len(table):]),
                flush=True)

    summary, comparisons = {}, {}
    for name in ("same track", "other track"):
        mine = [r for r in rows if r["set"] == name]
        keys = ["mrstft", "mrstft_level_matched", "lufs_error", "seconds"]
        if args.image:
            keys += ["mrstft_mid_level_matched", "mrstft_side_level_matched", "side_to_mid_error_db"]
        summary[name] = {"items": len(mine) // len(table), "systems": {
            system: {key: float(np.mean([r[key] for r in mine if r["system"] == system])) for key in keys}
            for system in table}}
        comparisons[name] = {}
        for system in ("dmaster reference", "dmaster reference, swap only"):
            for other in ("Matchering", "input", "loudness only"):
                for key in ("mrstft", "mrstft_level_matched", *(keys[4:] if args.image else ())):
                    result = paired(mine, system, other, key)
                    if result is not None:
                        comparisons[name][(system, other, key)] = result
    same = summary["same track"]["systems"]
    ours = same["dmaster reference"]
    song = math.nan if args.quick else song_seconds(paths, model)
    targets = [f"level-matched {ours['mrstft_level_matched']:.3f} = "
               f"{ours['mrstft_level_matched'] / same['input']['mrstft_level_matched']:.2f} × the input's (≤ 0.90)",
               f"LUFS error {ours['lufs_error']:.2f} LU (≤ 0.5)", f"3-minute song {song:.2f} s (≤ 10)"]
    if "Matchering" in same and args.image:
        theirs = same["Matchering"]
        targets += [f"side-to-mid error {ours['side_to_mid_error_db']:.2f} dB = "
                    f"{ours['side_to_mid_error_db'] / theirs['side_to_mid_error_db']:.2f} × Matchering's (≤ 0.95)",
                    f"side MR-STFT level-matched {ours['mrstft_side_level_matched']:.3f} = "
                    f"{ours['mrstft_side_level_matched'] / theirs['mrstft_side_level_matched']:.2f} × Matchering's "
                    f"(≤ 0.85)"]
    if "Matchering" in same:
        targets[:0] = [f"MR-STFT {ours['mrstft']:.3f} = {ours['mrstft'] / same['Matchering']['mrstft']:.2f} × "
                       f"Matchering's (≤ 0.80)"]
        targets.append(f"the oracle's MR-STFT {same['oracle']['mrstft']:.3f} = "
                       f"{same['oracle']['mrstft'] / same['Matchering']['mrstft']:.2f} × Matchering's (the floor)")
        tone = same[ORACLE_TONE]["mrstft"]
        targets.append(f"a perfect tonal correction alone (the {ORACLE_TONE} row) {tone:.3f} = "
                       f"{tone / same['Matchering']['mrstft']:.2f} × Matchering's")
        targets.append(f"time per clip {ours['seconds']:.2f} s = {ours['seconds'] / same['Matchering']['seconds']:.2f}"
                       f" × Matchering's (≤ 2)")
    meta = {"date": datetime.date.today().isoformat(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                       f"{torch.get_num_threads()} torch threads, torch {torch.__version__}",
            "music": str(args.music_root), "tracks": len(paths), "seed": args.seed, "song_seconds": song,
            "targets": targets, "image": args.image}
    text = markdown(summary, comparisons, meta)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "reference_match.md", text + "\n")
    write_json_atomic(args.out / "reference_match.json", {
        "meta": meta, "summary": summary, "tracks": [str(p) for p in paths],
        "comparisons": {name: [{"system": s, "other": o, "score": k, **p} for (s, o, k), p in c.items()]
                        for name, c in comparisons.items()},
        "styles": {item["track"]: item["styles"] for item in items}, "rows": rows})
    if not args.no_docs and not args.quick:
        write_docs(text, args.image)


if __name__ == "__main__":
    main()
