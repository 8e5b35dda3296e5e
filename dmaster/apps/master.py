"""``dmaster master IN… -o OUTDIR``: master files and folders with the shipped (or a given) model.

Reruns: each file's report records what its outputs were made from (the input's size and modification time,
the settings that change the audio) and, written last, the mastered audio's size and modification time. A
file is done when all of them still hold; mastered with other settings, it is skipped and said so; a run
killed half-way (its claim, the report without the audio's, is written before the audio) is redone. One run
at a time writes into a folder (an ``fcntl.flock`` on :data:`LOCK_NAME` in it)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from tqdm import tqdm

from ..audio import (
    AUDIO_EXTENSIONS,
    OUTPUT_FORMATS,
    TEMPORARY_SUFFIX,
    ShortAudioWarning,
    load_audio,
    read_audio,
    save_audio,
    write_text_atomic,
)
from ..data.plots import save_comparison
from ..effects import SPECS
from ..mastering import MAX_RATE, MIN_RATE, PEAK_CEILING_DB, MasterResult, master
from ..mastering.inputs import check_keep, check_settings, resample, resampled_length
from ..mastering.pretrained import POLICY_SUFFIX, RESIDUAL_SUFFIX, SHIPPED, resolve_model
from ..mastering.reference import prepare_reference
from ..mastering.report import read_report
from ..models import ParamEstimator
from ..page import is_preview, write_page

SUFFIX = "_mastered"
"""Every output is named ``<input name><SUFFIX>``: audio, report (``.json``) and plot (``.png``)."""


LOCK_NAME = ".dmaster-master.lock"
"""The file in an output folder that the run writing into it holds locked (removed when it ends)."""
TEMPORARY = re.compile(rf"\..+{SUFFIX}.*\.\d+-[0-9a-f]+{re.escape(TEMPORARY_SUFFIX)}")
"""What :func:`dmaster.audio.atomic_path` names the temporary file of an output while it is written."""
CLAIM_NOTE = "dmaster master was writing this file's outputs; a rerun redoes them"
"""The report written before the audio says this until the whole report replaces it."""


def _files(report: Path) -> dict[str, Any] | None:
    """The ``files`` section of the ``dmaster master`` report ``report``, or ``None`` when there is no such report
    there (no file, or one this command did not write)."""
    try:
        files = json.loads(report.read_text(encoding="utf-8"))["files"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    return files if isinstance(files, dict) and isinstance(files.get("input"), str) else None


def _with_suffix(stem: Path, suffix: str) -> Path:
    """``stem`` with ``suffix`` added (``Path.with_suffix`` would cut ``my.song_mastered`` to ``my``)."""
    return stem.with_name(stem.name + suffix)


def _claimed_outputs(folder: Path) -> set[Path]:
    """Files in ``folder`` that ``dmaster master`` reports there claim: for each report this command wrote, its
    audio in every output format (a ``--format flac`` rerun leaves the earlier ``.wav`` claimed), its plot and
    whatever else it names."""
    suffixes = {*(chosen.suffix for chosen in OUTPUT_FORMATS.values()), ".json", ".png"}
    claimed = set()
    for report in folder.glob(f"*{SUFFIX}*.json"):
        files = _files(report)
        if files is None:
            continue
        claimed.update(_with_suffix(report.with_name(report.name[: -len(".json")]), suffix) for suffix in suffixes)
        claimed.update(folder / Path(files[key]).name for key in ("mastered", "report", "plot")
                       if isinstance(files.get(key), str) and files[key])
    return claimed


def _ours(path: Path) -> bool:
    """Whether ``path`` is this command's lock or the temporary file of an output being written."""
    return path.name == LOCK_NAME or TEMPORARY.fullmatch(path.name) is not None


def _links_passed_over(folders: int, broken: int) -> str:
    """The note's text for the symbolic links that a folder's search passed over."""
    parts = []
    if folders:
        parts.append(f"{folders} symbolic link{'s to folders' if folders > 1 else ' to a folder'} (not followed)")
    if broken:
        parts.append(f"{broken} broken link{'s' if broken > 1 else ''}")
    return " and ".join(parts)


def find_inputs(inputs: list[Path], output: Path | None = None) -> tuple[list[Path], list[str]]:
    """Audio files named, or found recursively in the folders named, in order, without repeats, and notes on
    what was passed over. In folders, the outputs of earlier runs (files a ``dmaster master`` report next to
    them claims), this command's lock and temporary files, and everything under ``output``, when it lies inside
    a folder named, are never inputs; symbolic links to folders are not followed (no loops, no file twice)."""
    found: dict[Path, None] = {}
    output = None if output is None else output.resolve()
    notes = []
    for item in inputs:
        if item.is_dir():
            passed_over: dict[str, int] = {}
            links = {"folders": 0, "broken": 0}
            claimed: dict[Path, set[Path]] = {}
            folder = item.resolve()
            inner = output if output is not None and folder in output.parents else None  # -o inside the folder
            for path in sorted(folder.rglob("*")):
                if inner is not None and inner in path.parents:
                    continue
                if path.is_symlink() and not path.exists():
                    links["broken"] += 1
                elif path.is_symlink() and path.is_dir():
                    links["folders"] += 1
                if not path.is_file() or _ours(path):
                    continue
                if path in claimed.setdefault(path.parent, _claimed_outputs(path.parent)):
                    continue
                if is_preview(path):  # written for the listening page
                    continue
                if path.suffix.lower() in AUDIO_EXTENSIONS:
                    found[path] = None
                else:
                    kind = path.suffix.lower() or "(no extension)"
                    passed_over[kind] = passed_over.get(kind, 0) + 1
            if passed_over:
                kinds = ", ".join(f"{count} {suffix}" for suffix, count in sorted(passed_over.items()))
                notes.append(f"{item}: passed over {sum(passed_over.values())} files not named as audio ({kinds}); "
                             f"audio is {' '.join(AUDIO_EXTENSIONS)}")
            if any(links.values()):
                notes.append(f"{item}: passed over {_links_passed_over(links['folders'], links['broken'])}")
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
    parser.add_argument("inputs", nargs="+", metavar="IN", help="audio files or folders")  # "" refused in run()
    parser.add_argument("-o", "--output", required=True, help="output folder")
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
    parser.add_argument("--html", action="store_true",
                        help="also write OUT/index.html: every track's levels before and after, the change in words, "
                             "and a player switching between input and output at the same loudness (implies --plot)")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo files that an earlier run mastered, also with other settings (never replaces "
                             "files it did not write)")


def run(args: argparse.Namespace) -> int:
    args.plot = args.plot or args.html  # the page shows each track's figure
    try:
        model, paths, notes = _checked(args)
        args.output.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=args.output):  # a folder we cannot write into fails here, not per file
            pass
        lock = _lock(args.output)
    except (OSError, ValueError) as error:
        print(f"dmaster master: error: {_one_line(error)}", file=sys.stderr)
        return 2
    try:
        if lock is None:
            notes.append(f"{args.output}: cannot be locked; another dmaster master writing into it at the same "
                         "time would mix its outputs with this one's")
        for note in notes + _remove_temporaries(args.output):
            print(f"note: {note}", file=sys.stderr)
        return _master_all(paths, args, model)
    finally:
        _unlock(lock, args.output / LOCK_NAME)


def _checked(args: argparse.Namespace) -> tuple[torch.nn.Module, list[Path], list[str]]:
    """Every check of the command line, before any file and before ``-o`` is created: the model, the inputs
    found and the notes on what was passed over. Sets ``args.output`` and ``args.inputs`` to paths and
    ``args.settings`` to what each report records of them. Raises ``ValueError`` or ``OSError`` saying what."""
    if not args.output:
        raise ValueError('-o is empty; name a folder for the mastered files ("." for the current one)')
    if not all(args.inputs):
        raise ValueError('an input is named "" (empty); name audio files or folders ("." for the current one)')
    args.output, args.inputs = Path(args.output), [Path(item) for item in args.inputs]
    check_settings(args.target_lufs, args.peak_ceiling_db, args.amount, args.normalise_peak)
    _check_conflicts(args)
    if args.output.exists() and not args.output.is_dir():
        raise ValueError(f"-o {args.output} is a file; name a folder for the mastered files")
    paths, notes = find_inputs(args.inputs, args.output)
    model = resolve_model(args.model)
    check_keep(args.keep, model)
    if args.reference is not None and not isinstance(model, ParamEstimator):
        raise ValueError("--reference needs the parameter model; the U-Net has no parameters to swap")
    if args.report is not None:
        read_report(args.report, model)  # a bad report fails here, before any file
    if args.reference is not None:  # read once, checked before any file
        try:
            args.reference_audio = prepare_reference(args.reference, None, model.sample_rate)
        except ValueError as error:
            message = str(error)
            raise ValueError(message if message.startswith(str(args.reference)) else
                             f"{args.reference}: {message}") from None
    args.settings = output_settings(args)
    return model, paths, notes


def _check_conflicts(args: argparse.Namespace) -> None:
    """Settings that contradict each other, refused once (``master()`` would refuse them for every file)."""
    if args.reference is None:
        if args.ambience:
            raise ValueError("--ambience takes the reference's echo and reverb: it needs --reference")
        return
    if args.report is not None:
        raise ValueError("--reference and --report each say what to apply; give one")
    if args.normalise_peak:
        raise ValueError("--reference and --normalise-peak each set the output level (a reference sets its "
                         "loudness); choose one")
    if args.reference.is_dir():
        raise ValueError(f"--reference {args.reference} is a folder; name one audio file")


def _identity(path: Path) -> dict[str, Any]:
    """What a file's content is known by: its path (resolved), size and modification time (ns)."""
    status = path.stat()
    return {"path": str(path.resolve()), "size": status.st_size, "mtime_ns": status.st_mtime_ns}


def _model_files(model: str | None) -> dict[str, Any]:
    """The ``model`` setting as reports record it: a shipped model's name, or the checkpoint given and the
    policy and residual correction next to it (``None`` where there is none)."""
    if model is None or model in SHIPPED:
        return {"model": model or "param"}
    checkpoint = Path(model)
    sidecars = {key: checkpoint.with_name(checkpoint.stem + suffix)
                for key, suffix in (("model_policy", POLICY_SUFFIX), ("model_residual", RESIDUAL_SUFFIX))}
    return {"model": _identity(checkpoint),
            **{key: _identity(path) if path.is_file() else None for key, path in sidecars.items()}}


def output_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings that change a file's output, as its report records them (``files.settings``, JSON values):
    files given (model, ``--report``, ``--reference``) by path, size and modification time."""
    settings = {**_model_files(args.model), "target_lufs": args.target_lufs,
                "peak_ceiling_db": args.peak_ceiling_db, "true_peak": args.true_peak,
                "normalise_peak": args.normalise_peak, "residual_correction": not args.no_residual_correction,
                "amount": args.amount, "keep": sorted(set(args.keep)),
                "report": None if args.report is None else _identity(args.report),
                "reference": None if args.reference is None else _identity(args.reference),
                "ambience": args.ambience, "format": args.format}
    return json.loads(json.dumps(settings))


def _lock(folder: Path) -> int | None:
    """Lock ``folder`` for this run (an exclusive ``flock`` on :data:`LOCK_NAME` in it, which dies with the
    process, also on a kill); the open descriptor, or ``None`` where the file system cannot lock. Raises
    ``ValueError`` naming the process that holds it."""
    path = folder / LOCK_NAME
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
            os.close(descriptor)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None  # e.g. a network file system without locks
            raise ValueError(f"another dmaster master (pid {holder if holder.isdigit() else 'unknown'}) is writing "
                             f"into {folder}; wait for it or choose another -o") from None
        if _same_file(descriptor, path):  # not removed by the run that held it before us
            break
        os.close(descriptor)
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    return descriptor


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        status, named = os.fstat(descriptor), path.stat()
    except FileNotFoundError:
        return False
    return (status.st_dev, status.st_ino) == (named.st_dev, named.st_ino)


def _unlock(descriptor: int | None, path: Path) -> None:
    """Remove the lock file (while still holding it: a run that opened it meanwhile sees it gone) and release it."""
    if descriptor is None:
        return
    with contextlib.suppress(OSError):
        path.unlink()
    os.close(descriptor)


def _remove_temporaries(folder: Path) -> list[str]:
    """Remove the temporary files of outputs that killed runs left in ``folder`` (no run of this command writes
    there while we hold the lock); a note saying so, if there were any."""
    stale = [path for path in folder.iterdir() if TEMPORARY.fullmatch(path.name) and path.is_file()]
    for path in stale:
        with contextlib.suppress(OSError):  # one we cannot remove is left as it is: it harms nothing
            path.unlink(missing_ok=True)
    return [f"{folder}: removed {len(stale)} temporary file{'s' if len(stale) > 1 else ''} of outputs left by an "
            "interrupted run"] if stale else []


def _master_all(paths: list[Path], args: argparse.Namespace, model: torch.nn.Module) -> int:
    """Master every file of ``paths`` into ``args.output``; the exit code (1 when a file failed)."""
    names = output_names(paths)
    inputs = set(paths)
    counts = dict.fromkeys(("mastered", "already done", "skipped", "failed"), 0)
    failures: list[tuple[Path, str]] = []
    with tqdm(paths, desc="mastering", unit="file", dynamic_ncols=True) as bar:
        for path in bar:
            def stage(text: str, name: str = path.name) -> None:
                bar.set_postfix_str(f"{name}: {text}")
            try:
                outcome, told = _master_file(path, args.output / names[path], args, model, inputs, stage)
            except Exception as error:  # noqa: BLE001 — one file's failure is reported; the batch goes on
                outcome, told, message = "failed", [], _one_line(error)
                bar.write(message if message.startswith(str(path)) else f"{path}: {message}", file=sys.stderr)
                failures.append((path, message.removeprefix(f"{path}: ")))
            counts[outcome] += 1
            for line in told:
                bar.write(f"{path}: {line}", file=sys.stderr)
    if args.html:
        print(f"listening page: {write_page(args.output, failures)}", file=sys.stderr)
    summary = ", ".join(f"{count} {outcome}" for outcome, count in counts.items())
    print(f"{len(paths)} file{'' if len(paths) == 1 else 's'} into {args.output}: {summary}"
          + (" (--overwrite redoes the skipped)" if counts["skipped"] else ""), file=sys.stderr)
    return 1 if counts["failed"] else 0


def _one_line(error: BaseException) -> str:
    """An error as one line: its message (or its type, when it has none)."""
    text = " ".join(str(error).split())
    if isinstance(error, OSError) and error.filename is not None:
        text = f"{error.filename}: {error.strerror or text}"
    return text or type(error).__name__


def _earlier_run(files: Mapping[str, Any], source: os.stat_result, settings: Mapping[str, Any], mastered: Path,
                 plot: Path | None) -> tuple[str, str]:
    """What to do with a file whose report ``files`` an earlier run wrote: ``("already done", "")``,
    ``("redo", "")`` (a run killed half-way, or its audio gone) or ``("skipped", why)``.

    Args:
        files: the earlier report's ``files`` section (the input is this one).
        source: the input's status now.
        settings: this run's :func:`output_settings`.
        mastered, plot: this run's outputs (``plot`` ``None`` without ``--plot``).
    """
    audio = mastered.parent / Path(str(files.get("mastered"))).name
    if not audio.is_file():  # deleted, or never written: nothing to lose
        return "redo", ""
    if not isinstance(files.get("settings"), dict):
        return "skipped", "mastered by an earlier dmaster that did not record its settings"
    if "mastered_size" not in files:  # only the claim: killed before the whole report
        return "redo", ""
    status = audio.stat()
    if [status.st_size, status.st_mtime_ns] != [files.get("mastered_size"), files.get("mastered_mtime_ns")]:
        return "skipped", f"{audio} changed after it was mastered (edited?)"
    reasons = []
    if [files.get("input_size"), files.get("input_mtime_ns")] != [source.st_size, source.st_mtime_ns]:
        reasons.append("the input file changed since it was mastered")
    differences = _differences(files["settings"], settings)
    if differences:
        reasons.append(f"mastered with other settings ({'; '.join(differences)})")
    if reasons:
        return "skipped", "; ".join(reasons)
    if plot is not None and (files.get("plot") != plot.name or not plot.is_file()):
        return "redo", ""
    return "already done", ""


def _differences(earlier: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Each setting that differs between an earlier run's settings and this run's, in words."""
    told = []
    for key in dict.fromkeys([*now, *earlier]):
        before, after = earlier.get(key), now.get(key)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict) and before.get("path") == after.get("path"):
            told.append(f"{key} {after['path']} changed since")
        else:
            told.append(f"{key} was {_shown(before)}, now {_shown(after)}")
    return told


def _shown(value: Any) -> str:
    """A setting's value in a message: a file by its path."""
    if isinstance(value, dict) and "path" in value:
        return str(value["path"])
    return "none" if value is None else json.dumps(value)


def _master_file(path: Path, stem: Path, args: argparse.Namespace, model: torch.nn.Module, inputs: set[Path],
                 stage: Callable[[str], None]) -> tuple[str, list[str]]:
    """Master one file into ``stem`` + the format's suffix, ``.json`` (and ``.png``), or leave it (done, or done
    with other settings); returns what happened (``"mastered"``, ``"already done"`` or ``"skipped"``) and lines
    worth telling the user (warnings, a missed target, why it was skipped). Raises with the reason when the file
    cannot be mastered."""
    mastered, report = _with_suffix(stem, OUTPUT_FORMATS[args.format].suffix), _with_suffix(stem, ".json")
    plot = _with_suffix(stem, ".png") if args.plot else None
    outputs = [out for out in (mastered, report, plot) if out is not None]
    earlier = _files(report)
    owned = earlier is not None and earlier["input"] == str(path)
    source = path.stat()  # before reading: a file changed while read is not taken as done next time
    if owned and not args.overwrite:
        outcome, why = _earlier_run(earlier, source, args.settings, mastered, plot)
        if outcome != "redo":
            return outcome, [f"skipped: {why}; --overwrite to redo"] if why else []
    for out in outputs:
        if out.exists() and not owned:
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
    told += _level_notes(result.report["output"], args.target_lufs)
    stage("writing")
    files = {"input": str(path), "input_size": source.st_size, "input_mtime_ns": source.st_mtime_ns,
             "settings": args.settings, "mastered": mastered.name, "report": report.name,
             "plot": None if plot is None else plot.name}
    _write_outputs(result, files, told, audio, path, args, model)
    return "mastered", told


def _level_notes(level: Mapping[str, Any], asked: float | None) -> list[str]:
    """A note when the output's loudness missed the target (the level stage says when and why:
    :data:`dmaster.mastering.level.MISSED_TARGET_LU`)."""
    if "target_missed" in level:
        return [f"note: loudness target {level.get('target_lufs', asked)} LUFS missed: {level['target_missed']}"]
    return []


def _write_outputs(result: MasterResult, files: dict[str, Any], told: list[str], audio: torch.Tensor, path: Path,
                   args: argparse.Namespace, model: torch.nn.Module) -> None:
    """Write one file's outputs, in an order that a kill at any moment leaves recognisable: the claim (a report
    naming the input and the outputs, without the audio's size), the audio, the plot, and last the whole report
    with the audio's size and modification time, so that it never describes other audio.

    Args:
        result: what ``master()`` returned.
        files: the report's ``files`` section so far (names as in ``args.output``).
        told: warnings and notes, recorded as ``files.warnings``.
        audio: the input as read, for the plot.
        path: the input.
        args: the command line.
        model: the model, for the reference's rate.
    """
    folder = args.output
    write_text_atomic(folder / files["report"], json.dumps({"note": CLAIM_NOTE, "files": files}, indent=2) + "\n")
    save_audio(folder / files["mastered"], result.audio, result.sample_rate, args.format)
    if files["plot"] is not None:
        tracks = {"input": audio, "mastered": torch.as_tensor(result.audio)}
        if args.reference is not None:
            length = resampled_length(args.reference_audio.shape[-1], model.sample_rate, result.sample_rate)
            tracks["reference"] = resample(args.reference_audio, model.sample_rate, result.sample_rate, length)
        save_comparison(folder / files["plot"], tracks, result.sample_rate, title=f"{path.name}: input and mastered",
                        notes=_notes(result.report))
    written = (folder / files["mastered"]).stat()
    result.report["files"] = {**files, "mastered_size": written.st_size, "mastered_mtime_ns": written.st_mtime_ns}
    if told:
        result.report["files"]["warnings"] = told
    write_text_atomic(folder / files["report"], result.to_json() + "\n")


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
