"""``dmaster master IN… -o OUTDIR``: master files and folders with the shipped (or a given) model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from ..data.audio import (AUDIO_EXTENSIONS, OUTPUT_FORMATS, AudioError, load_audio, read_audio, save_audio,
                          write_text_atomic)
from ..data.plots import save_spectrograms
from ..effects import SPECS
from ..mastering import (MAX_LIMITING_DB, MAX_RATE, MIN_RATE, check_keep, check_settings, master, read_report,
                         resolve_model)

MISSED_TARGET_LU = 0.5
"""A loudness this far from ``--target-lufs`` gets a note."""


def find_inputs(inputs: list[Path]) -> list[Path]:
    """Audio files named, or found recursively in the folders named, in order, without repeats."""
    found: dict[Path, None] = {}
    for item in inputs:
        if item.is_dir():
            for path in sorted(item.rglob("*")):
                if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
                    found[path.resolve()] = None
        elif item.is_file():
            found[item.resolve()] = None
        else:
            raise FileNotFoundError(f"no such file or folder: {item}")
    return list(found)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="audio files or folders")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument("--model", default=None,
                        help="'param' (default, shipped), 'unet' (shipped baseline) or a checkpoint path")
    parser.add_argument("--target-lufs", type=float, default=None,
                        help="normalise integrated loudness (LUFS) to this, the peaks limited to the ceiling")
    parser.add_argument("--peak-ceiling-db", type=float, default=-1.0, help="output peak ceiling, dBFS (default -1)")
    parser.add_argument("--true-peak", action="store_true",
                        help="the ceiling in dBTP: peaks between the samples count too (4x oversampled, BS.1770-4)")
    parser.add_argument("--normalise-peak", action="store_true",
                        help="set the output peak to the ceiling (default: keep the restored level under it)")
    parser.add_argument("--no-residual-correction", action="store_true",
                        help="leave out the model's residual correction of tonal balance and level")
    effects = [spec.name for spec in SPECS]
    parser.add_argument("--amount", type=float, default=1.0,
                        help="how much of the correction to apply, 0-1 (default 1): every inverse and the residual "
                             "correction scaled by it")
    parser.add_argument("--keep", action="append", default=[], choices=effects, metavar="EFFECT",
                        help=f"leave this effect in ({', '.join(effects)}; repeatable), e.g. --keep reverb when "
                             "the room is wanted")
    parser.add_argument("--params", type=Path, default=None, metavar="JSON",
                        help="apply the estimate in this report of an earlier 'dmaster master' (edited or not) "
                             "instead of estimating anew: the same correction for every input")
    parser.add_argument("--format", choices=tuple(OUTPUT_FORMATS), default="wav",
                        help="mastered audio as wav (32-bit float, default), wav24 or wav16 (PCM, TPDF-dithered) "
                             "or flac (24-bit)")
    parser.add_argument("--plot", action="store_true", help="also write a before/after spectrogram PNG")
    parser.add_argument("--overwrite", action="store_true", help="redo files whose outputs exist")


def run(args: argparse.Namespace) -> int:
    try:
        check_settings(args.target_lufs, args.peak_ceiling_db, args.amount)
        paths = find_inputs(args.inputs)
        model = resolve_model(args.model)
        check_keep(args.keep, model)
        if args.params is not None:
            read_report(args.params, model)  # a bad report fails here, before any file
    except (FileNotFoundError, ValueError) as error:
        print(f"dmaster master: error: {error}", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in tqdm(paths, desc="mastering", unit="file"):
        stem = args.output / f"{path.stem}_mastered"
        mastered, report = stem.with_suffix(OUTPUT_FORMATS[args.format].suffix), stem.with_suffix(".json")
        if mastered.resolve() == path:
            print(f"skipping {path}: its output would overwrite it", file=sys.stderr)
            failures += 1
            continue
        if report.exists() and not args.overwrite:
            continue
        try:
            audio, sample_rate = read_audio(path)
            if not MIN_RATE <= sample_rate <= MAX_RATE:  # master() keeps the file's rate where it can
                audio, sample_rate = load_audio(path, model.sample_rate), model.sample_rate
            result = master(audio, sample_rate, model=args.model, target_lufs=args.target_lufs,
                            peak_ceiling_db=args.peak_ceiling_db, normalise_peak=args.normalise_peak,
                            correct_residual=not args.no_residual_correction, keep=args.keep,
                            params=args.params, true_peak=args.true_peak, amount=args.amount)
        except (AudioError, ValueError) as error:
            print(f"cannot master {path}: {error}", file=sys.stderr)
            failures += 1
            continue
        reached = result.params["output"].get("loudness_lufs")
        if reached is not None and abs(reached - args.target_lufs) > MISSED_TARGET_LU:
            print(f"note: {path} reached {reached} LUFS, not {args.target_lufs}: the limiter takes at most "
                  f"{MAX_LIMITING_DB:g} dB off a peak", file=sys.stderr)
        save_audio(mastered, result.audio, result.sample_rate, args.format)
        if args.plot:
            save_spectrograms(stem.with_suffix(".png"), audio, torch.as_tensor(result.audio), result.sample_rate,
                              title=f"{path.name}: input (top) and mastered (bottom)",
                              notes=_notes(result.params), labels=("input", "mastered"))
        write_text_atomic(report, result.to_json() + "\n")  # last: marks the file done
    print(f"{len(paths) - failures} of {len(paths)} files mastered into {args.output}", file=sys.stderr)
    return 1 if failures else 0


def _notes(params: dict) -> list[str]:
    return [f"{name}: {effect['correction']} (strength {effect['correction_strength']:.2f})"
            for name, effect in params.get("effects", {}).items() if effect["applied"]]
