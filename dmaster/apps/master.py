"""``dmaster master IN… -o OUTDIR``: master files and folders with the shipped (or a given) model."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from ..audio import (
    AUDIO_EXTENSIONS,
    OUTPUT_FORMATS,
    ShortAudioWarning,
    load_audio,
    read_audio,
    save_audio,
    write_text_atomic,
)
from ..data.plots import save_comparison
from ..effects import SPECS
from ..mastering import MAX_LIMITING_DB, MAX_RATE, MIN_RATE, PEAK_CEILING_DB, master
from ..mastering.inputs import check_keep, check_settings, resample, resampled_length
from ..mastering.pretrained import resolve_model
from ..mastering.reference import prepare_reference
from ..mastering.report import read_report

MISSED_TARGET_LU = 0.5
"""A loudness this far from ``--target-lufs`` gets a note."""


SUFFIX = "_mastered"
"""Every output is named ``<input name><SUFFIX>``: audio, report (``.json``) and plot (``.png``)."""


def report_owner(report: Path) -> str | None:
    """The input that the ``dmaster master`` report ``report`` was written for, or ``None`` when there is no
    such report there (no file, or one this command did not write)."""
    try:
        owner = json.loads(report.read_text(encoding="utf-8"))["files"]["input"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    return owner if isinstance(owner, str) else None


def _claimed_outputs(folder: Path) -> set[Path]:
    """Files in ``folder`` that ``dmaster master`` reports there list as their outputs."""
    claimed = set()
    for report in folder.glob(f"*{SUFFIX}*.json"):
        try:
            files = json.loads(report.read_text(encoding="utf-8"))["files"]
            claimed.update(folder / files[key] for key in ("mastered", "report", "plot") if files.get(key))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            continue
    return claimed


def find_inputs(inputs: list[Path], output: Path | None = None) -> tuple[list[Path], list[str]]:
    """Audio files named, or found recursively in the folders named, in order, without repeats, and notes on
    what was passed over. In folders, the outputs of earlier runs (files a ``dmaster master`` report next to
    them lists) and everything under ``output``, when it lies inside a folder named, are never inputs."""
    found: dict[Path, None] = {}
    output = None if output is None else output.resolve()
    notes = []
    for item in inputs:
        if item.is_dir():
            passed_over: dict[str, int] = {}
            claimed: dict[Path, set[Path]] = {}
            folder = item.resolve()
            inner = output if output is not None and folder in output.parents else None  # -o inside the folder
            for path in sorted(folder.rglob("*")):
                if not path.is_file() or (inner is not None and inner in path.parents):
                    continue
                if path in claimed.setdefault(path.parent, _claimed_outputs(path.parent)):
                    continue
                if path.suffix.lower() in AUDIO_EXTENSIONS:
                    found[path] = None
                else:
                    passed_over[path.suffix.lower() or "(no extension)"] = passed_over.get(path.suffix.lower(), 0) + 1
            if passed_over:
                kinds = ", ".join(f"{count} {suffix}" for suffix, count in sorted(passed_over.items()))
                notes.append(f"{item}: passed over {sum(passed_over.values())} files not named as audio ({kinds}); "
                             f"audio is {' '.join(AUDIO_EXTENSIONS)}")
        elif item.is_file():
            found[item.resolve()] = None
        else:
            raise FileNotFoundError(f"no such file or folder: {item}")
    return list(found), notes


def output_names(paths: list[Path]) -> dict[Path, str]:
    """``<stem><SUFFIX>`` for each input; inputs that would share a name are told apart by their extension
    (``song_flac_mastered``) and then by as many of their folders as it takes (``live_song_wav_mastered``)."""
    def name(path: Path, level: int) -> str:
        parts = [path.stem] if level == 0 else [path.stem, path.suffix.lstrip(".")]
        parts[:0] = [folder.name for folder in reversed(path.parents[: max(level - 1, 0)])]
        return "_".join(part for part in parts if part) + SUFFIX

    levels = dict.fromkeys(paths, 0)
    for _ in range(max((len(path.parents) for path in paths), default=0) + 2):
        names = {path: name(path, level) for path, level in levels.items()}
        sharing: dict[str, list[Path]] = {}
        for path, chosen in names.items():
            sharing.setdefault(chosen, []).append(path)
        clashes = [path for group in sharing.values() if len(group) > 1 for path in group]
        if not clashes:
            return names
        for path in clashes:
            levels[path] += 1
    counted = {path: f"{chosen}_{index}" for group in sharing.values() if len(group) > 1   # folder names with "_"
               for index, path in enumerate(group, start=1) for chosen in [names[path]]}
    return {**names, **counted}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="audio files or folders")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument("--model", default=None,
                        help="'param' (default, shipped), 'unet' (shipped baseline) or a checkpoint path")
    parser.add_argument("--target-lufs", type=float, default=None,
                        help="normalise integrated loudness (LUFS) to this, the peaks limited to the ceiling")
    parser.add_argument("--peak-ceiling-db", type=float, default=PEAK_CEILING_DB,
                        help=f"output peak ceiling, dBFS (default {PEAK_CEILING_DB:g})")
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
    parser.add_argument("--report", type=Path, default=None, metavar="JSON",
                        help="apply the estimate in this report of an earlier 'dmaster master' (edited or not) "
                             "instead of estimating anew: the same correction for every input")
    parser.add_argument("--reference", type=Path, default=None, metavar="AUDIO",
                        help="make every input sound like this track (tonal balance, loudness, dynamics) instead of "
                             "undoing an estimated degradation; --target-lufs overrides its loudness")
    parser.add_argument("--ambience", action="store_true",
                        help="with --reference: also take its echo and reverb (the input's removed)")
    parser.add_argument("--format", choices=tuple(OUTPUT_FORMATS), default="wav",
                        help="mastered audio as wav (32-bit float, default), wav24 or wav16 (PCM, TPDF-dithered) "
                             "or flac (24-bit)")
    parser.add_argument("--plot", action="store_true",
                        help="also write a PNG comparing input and output: long-term spectra, correction, levels")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo files that an earlier run mastered (never replaces files it did not write)")


def run(args: argparse.Namespace) -> int:
    try:
        check_settings(args.target_lufs, args.peak_ceiling_db, args.amount, args.normalise_peak)
        if args.output.exists() and not args.output.is_dir():
            raise ValueError(f"-o {args.output} is a file; name a folder for the mastered files")
        paths, notes = find_inputs(args.inputs, args.output)
        model = resolve_model(args.model)
        check_keep(args.keep, model)
        if args.report is not None:
            read_report(args.report, model)  # a bad report fails here, before any file
        if args.reference is not None:  # read once, checked before any file
            try:
                args.reference_audio = prepare_reference(args.reference, None, model.sample_rate)
            except ValueError as error:
                message = str(error)
                raise ValueError(message if message.startswith(str(args.reference)) else
                                 f"{args.reference}: {message}") from None
        args.output.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=args.output):  # a folder we cannot write into fails here, not per file
            pass
    except (OSError, ValueError) as error:
        print(f"dmaster master: error: {_one_line(error)}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    names = output_names(paths)
    inputs = set(paths)
    failures = 0
    with tqdm(paths, desc="mastering", unit="file", dynamic_ncols=True) as bar:
        for path in bar:
            def stage(text: str, name: str = path.name) -> None:
                bar.set_postfix_str(f"{name}: {text}")
            try:
                done = _master_file(path, args.output / names[path], args, model, inputs, stage)
            except Exception as error:  # noqa: BLE001 — one file's failure is reported; the batch goes on
                failures += 1
                message = _one_line(error)
                bar.write(message if message.startswith(str(path)) else f"{path}: {message}", file=sys.stderr)
                continue
            for line in done:
                bar.write(f"{path}: {line}", file=sys.stderr)
    print(f"{len(paths) - failures} of {len(paths)} files mastered into {args.output}", file=sys.stderr)
    return 1 if failures else 0


def _one_line(error: BaseException) -> str:
    """An error as one line: its message (or its type, when it has none)."""
    text = " ".join(str(error).split())
    if isinstance(error, OSError) and error.filename is not None:
        text = f"{error.filename}: {error.strerror or text}"
    return text or type(error).__name__


def _master_file(path: Path, stem: Path, args: argparse.Namespace, model: torch.nn.Module, inputs: set[Path],
                 stage: Callable[[str], None]) -> list[str]:
    """Master one file into ``stem`` + the format's suffix, ``.json`` (and ``.png``); returns lines worth telling
    the user (warnings, a missed target). Raises with the reason when the file cannot be mastered."""
    mastered, report = stem.with_suffix(OUTPUT_FORMATS[args.format].suffix), stem.with_suffix(".json")
    plot = stem.with_suffix(".png") if args.plot else None
    outputs = [out for out in (mastered, report, plot) if out is not None]
    owner = report_owner(report)
    if owner == str(path) and all(out.exists() for out in outputs) and not args.overwrite:
        return []  # done by an earlier run
    for out in outputs:
        if out.exists() and owner != str(path):
            raise ValueError(f"not mastered: {out} exists and was not written by dmaster master for this file; "
                             "move it away or choose another -o")
        if out.resolve() in inputs:
            raise ValueError(f"not mastered: its output {out} would overwrite an input of this run")
    stage("reading")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ShortAudioWarning)
        audio, sample_rate = read_audio(path)
    told = [f"warning: {warning.message}".replace(f"{path}: ", "") for warning in caught
            if issubclass(warning.category, ShortAudioWarning)]
    if not MIN_RATE <= sample_rate <= MAX_RATE:  # master() keeps the file's rate where it can
        audio, sample_rate = load_audio(path, model.sample_rate), model.sample_rate
    result = master(audio, sample_rate, model=args.model, target_lufs=args.target_lufs,
                    peak_ceiling_db=args.peak_ceiling_db, normalise_peak=args.normalise_peak,
                    correct_residual=not args.no_residual_correction, keep=args.keep, report=args.report,
                    true_peak=args.true_peak, amount=args.amount, progress=stage,
                    reference=getattr(args, "reference_audio", None), reference_sample_rate=model.sample_rate,
                    ambience=args.ambience)
    level = result.report["output"]
    reached, target = level.get("loudness_lufs"), level.get("target_lufs", args.target_lufs)
    if "target_missed" in level:
        told.append(f"note: loudness target {target} LUFS missed: {level['target_missed']}")
    elif reached is not None and target is not None and abs(reached - target) > MISSED_TARGET_LU:
        told.append(f"note: reached {reached} LUFS, not {target}: the limiter takes at most "
                    f"{MAX_LIMITING_DB:g} dB off a peak")
    stage("writing")
    result.report["files"] = {"input": str(path), "mastered": mastered.name, "report": report.name,
                              "plot": None if plot is None else plot.name}
    if told:
        result.report["files"]["warnings"] = told
    # the report first: it marks the outputs as this file's; the file is done once they all exist
    write_text_atomic(report, result.to_json() + "\n")
    if plot is not None:
        tracks = {"input": audio, "mastered": torch.as_tensor(result.audio)}
        if args.reference is not None:
            length = resampled_length(args.reference_audio.shape[-1], model.sample_rate, result.sample_rate)
            tracks["reference"] = resample(args.reference_audio, model.sample_rate, result.sample_rate, length)
        save_comparison(plot, tracks, result.sample_rate, title=f"{path.name}: input and mastered",
                        notes=_notes(result.report))
    save_audio(mastered, result.audio, result.sample_rate, args.format)
    return told


def _notes(report: dict) -> list[str]:
    """The plot's lines of text: each correction applied, in words."""
    if "reference" in report:
        correction = report["reference"]["correction"]
        curve = correction["eq_curve_db"].values()
        return [f"EQ correction {min(curve):+.1f} to {max(curve):+.1f} dB over the bands; "
                f"gain {correction['gain_db']:+.1f} dB",
                f"compressor undone: {correction['compressor_undone']}",
                f"compressor applied: {correction['compressor_applied']}"]
    return [f"{name}: {effect['correction']} (strength {effect['correction_strength']:.2f})"
            for name, effect in report.get("effects", {}).items() if effect["applied"]]
