"""The listening page of ``dmaster master --html``: ``index.html`` in the output folder, built from the reports there.

One self-contained HTML file (inline CSS and a little JavaScript, nothing fetched from the network) that works
from ``file://`` and when the folder is copied elsewhere: an album table of the levels before and after and the
change in words; per track a player that switches between input, output (and the reference) at the same position,
level-matched by default; the ``--plot`` figure; the report in words and tables. Audio is referenced by paths
relative to the page, never embedded; the players are made on first use, so a folder of hundreds of tracks opens
at once.

Level matching uses the elements' ``volume`` (the louder source turned down by the difference of the loudness the
reports measured), not Web Audio: from ``file://`` every file is its own origin, and Chromium feeds a Web Audio
graph zeros for media of another origin. Inputs and outputs a browser is unlikely to play (:func:`unplayable`)
get a preview next to the outputs: 24-bit FLAC at most 96 kHz (:data:`PREVIEW_SUFFIXES`).
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import quote

import numpy as np
import soundfile as sf
import torch

from .audio import atomic_path, fold_to_stereo, read_audio, write_text_atomic
from .loudness import integrated_loudness
from .mastering.inputs import resample, resampled_length

PAGE_NAME = "index.html"
PREVIEW_SUFFIXES = {"input": "_input_preview.flac", "output": "_preview.flac", "reference": "_reference_preview.flac"}
"""A preview's name: the report's stem (``song_mastered``) or, for a reference, the reference's stem and a hash of
its path, plus this."""
PLAYABLE_RATES = (8000, 192000)
"""Sample rates (Hz, inclusive) at which a browser is taken to play a file."""
PLAYABLE = {"WAV": {"PCM_16", "PCM_24", "FLOAT"}, "WAVEX": {"PCM_16", "PCM_24", "FLOAT"}, "FLAC": None,
            "OGG": {"VORBIS", "OPUS"}, "MP3": None}
"""Containers (libsndfile's names) a browser is taken to play, with their encodings (``None``: any). Chromium plays
32-bit float WAV (``dmaster master``'s default output), also at 384 kHz; not AIFF, not 64-bit float WAV."""
PREVIEW_MARK = "dmaster page preview"
"""Where a preview's FLAC comment says who wrote it; the rest of the comment records its rate, gain, loudness."""
PREVIEW_MAX_RATE = 96000
PREVIEW_MAX_CHANNELS = 8
"""FLAC's limit: more channels are folded to stereo for the preview."""
PREVIEW_HEADROOM_DB = -0.1
"""A preview whose peak would be above this (dBFS) is turned down to it (24-bit FLAC clips at full scale); the page
makes up for it."""
CEILING_MARGIN_DB = 0.1
"""A true peak this close to the ceiling (or over it) is marked."""
SUBTYPES = {"PCM_U8": "8-bit", "PCM_S8": "8-bit", "PCM_32": "32-bit integer", "DOUBLE": "64-bit float",
            "FLOAT": "32-bit float", "PCM_16": "16-bit", "PCM_24": "24-bit"}
LABELS = {"input": "input", "output": "mastered", "reference": "reference"}
KEYS = {"input": "A", "output": "B", "reference": "R"}


@dataclass
class Source:
    """One thing a player plays: its page-relative address, the loudness a report measured, notes."""

    url: str | None
    lufs: float | None
    offset_db: float = 0.0
    """The loudness of the file played minus ``lufs`` (a preview's: turned down, band-limited)."""
    note: str = ""


@dataclass
class Track:
    """One report's row and section."""

    stem: str
    report: dict[str, Any]
    sources: dict[str, Source] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def write_page(folder: str | os.PathLike, failures: Iterable[tuple[str | os.PathLike, str]] = ()) -> Path:
    """Write ``folder/index.html`` (atomically) from every ``dmaster master`` report in ``folder``, making the
    previews it needs.

    Args:
        folder: the output folder of ``dmaster master``.
        failures: ``(input path, one-line reason)`` of the files that could not be mastered, listed on the page.

    Returns:
        The page's path.
    """
    folder = Path(folder)
    tracks = [track(folder, stem, report) for stem, report in read_reports(folder)]
    references: dict[str, Source] = {}
    for item in tracks:
        add_reference(folder, item, references)
    page = folder / PAGE_NAME
    write_text_atomic(page, render(folder, tracks, [(str(path), reason) for path, reason in failures]))
    return page


def read_reports(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """The reports ``dmaster master`` wrote in ``folder`` (those whose ``files`` name an input and themselves),
    as ``(stem, report)`` in the order of their inputs' paths (numbers in them compared as numbers: ``2 b`` before
    ``10 a``).

    Args:
        folder: the output folder.
    """
    from .apps.master import SUFFIX  # here: the command imports this module

    found = []
    for path in folder.glob(f"*{SUFFIX}*.json"):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        files = report.get("files") if isinstance(report, dict) else None
        if isinstance(files, dict) and isinstance(files.get("input"), str) and files.get("report") == path.name:
            found.append((path.name[: -len(".json")], report))
    return sorted(found, key=lambda item: (natural(item[1]["files"]["input"]), item[0]))


def natural(text: str) -> list[Any]:
    """A sort key of ``text`` that compares its numbers as numbers.

    >>> sorted(["track 10.wav", "track 9.wav"], key=natural)
    ['track 9.wav', 'track 10.wav']
    """
    return [int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", text)]


def page_url(path: Path, folder: Path) -> str:
    """``path`` as an address relative to a page in ``folder`` (percent-encoded; absolute where no relative
    path exists, e.g. another drive).

    >>> page_url(Path("/music/album/01 intro.wav"), Path("/music/mastered"))
    '../album/01%20intro.wav'
    """
    try:
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(folder))
    except ValueError:
        return Path(os.path.abspath(path)).as_uri()
    return "/".join(quote(part) for part in Path(relative).parts)


def unplayable(path: Path) -> str | None:
    """Why a browser is unlikely to play ``path`` (``"AIFF"``, ``"32-bit float WAV at 384 kHz"``), or ``None``
    when it plays it: 16/24-bit PCM or 32-bit float WAV, FLAC, Ogg Vorbis/Opus, MP3, at 8–192 kHz.

    Args:
        path: an audio file that libsndfile reads.
    """
    info = sf.info(str(path))
    kind = info.format
    encodings = PLAYABLE.get(kind, set())
    what = f"{SUBTYPES.get(info.subtype, info.subtype_info)} {kind.replace('WAVEX', 'WAV')}"
    if kind not in PLAYABLE or (encodings is not None and info.subtype not in encodings):
        return what if kind in ("WAV", "WAVEX") else kind
    if not PLAYABLE_RATES[0] <= info.samplerate <= PLAYABLE_RATES[1]:
        return f"{what} at {info.samplerate / 1000:g} kHz"
    return None


def preview_rate(rate: int) -> int:
    """The rate of a preview of audio at ``rate`` Hz: at most 96 kHz (88.2 kHz for multiples of 44.1 kHz), at
    least 8 kHz.

    >>> preview_rate(384000), preview_rate(352800), preview_rate(48000), preview_rate(6000)
    (96000, 88200, 48000, 8000)
    """
    if rate > PREVIEW_MAX_RATE:
        return 88200 if rate % 44100 == 0 else PREVIEW_MAX_RATE
    return max(rate, PLAYABLE_RATES[0])


def recorded(path: Path) -> dict[str, Any] | None:
    """What :func:`write_preview` recorded in the FLAC comment of ``path``, or ``None`` where it wrote none."""
    try:
        with sf.SoundFile(str(path)) as file:
            found = json.loads(file.comment)
    except (OSError, RuntimeError, ValueError):  # not audio, no comment, not JSON
        return None
    return found if isinstance(found, dict) and found.get("written_by") == PREVIEW_MARK else None


def read_preview(target: Path, source: Path) -> dict[str, Any] | None:
    """What :func:`write_preview` recorded in the preview ``target`` of ``source``, or ``None`` when ``target``
    is missing, older than ``source`` or was not written by it."""
    try:
        if target.stat().st_mtime_ns < source.stat().st_mtime_ns:
            return None
    except OSError:
        return None
    return recorded(target)


def is_preview(path: Path) -> bool:
    """Whether ``path`` is a preview this module wrote (its name and its FLAC comment say so): never an input of
    ``dmaster master``, also where the page lies in an input folder.

    Args:
        path: any file.
    """
    return path.name.endswith(tuple(PREVIEW_SUFFIXES.values())) and recorded(path) is not None


def write_preview(source: Path, target: Path) -> dict[str, Any]:
    """Write ``source`` as a 24-bit FLAC ``target`` that a browser plays, atomically: at :func:`preview_rate`,
    more than :data:`PREVIEW_MAX_CHANNELS` channels folded to stereo, turned down where its peak would be above
    :data:`PREVIEW_HEADROOM_DB`. Its loudness is measured and recorded with the rest in the file's comment
    (:func:`recorded` reads it back).

    Args:
        source: the audio file.
        target: the preview.

    Returns:
        ``{"rate", "gain_db", "folded", "loudness_lufs" (None when unmeasurable)}`` and the mark.
    """
    audio, rate = read_audio(source)
    folded = audio.shape[0] > PREVIEW_MAX_CHANNELS
    if folded:
        audio = torch.from_numpy(fold_to_stereo(audio.numpy().T).T.copy())
    new_rate = preview_rate(rate)
    data = resample(audio, rate, new_rate, resampled_length(audio.shape[-1], rate, new_rate)).numpy().T
    peak_db = 20 * math.log10(max(float(np.abs(data).max()), 1e-12))
    gain_db = round(min(0.0, PREVIEW_HEADROOM_DB - peak_db), 2)
    data = np.clip(data * 10 ** (gain_db / 20), -1.0, 1.0 - 2.0**-23)
    loudness = integrated_loudness(torch.from_numpy(data.T.copy()), new_rate)
    record = {"written_by": PREVIEW_MARK, "rate": new_rate, "gain_db": gain_db, "folded": folded,
              "loudness_lufs": round(loudness, 3) if math.isfinite(loudness) else None}
    with atomic_path(target) as temporary:
        with sf.SoundFile(str(temporary), "w", new_rate, data.shape[1], subtype="PCM_24", format="FLAC") as file:
            file.comment = json.dumps(record)
            file.write(data)
    return record


def playable_source(folder: Path, path: Path, preview: Path, lufs: float | None, what: str) -> Source:
    """The source a player plays for ``path``: the file itself, or a preview when the browser cannot play it
    (made, or kept from an earlier page when it is newer than ``path``); without a URL (and saying why) when
    neither can be had.

    Args:
        folder: the page's folder.
        path: the audio file.
        preview: where its preview goes.
        lufs: its loudness (the report's).
        what: its name in notes ("input").
    """
    if not path.is_file():
        return Source(None, lufs, note=f"{what} not found at {page_url(path, folder)} (moved, or the folder copied "
                                       "without it)")
    try:
        reason = unplayable(path)
        if reason is None:
            return Source(page_url(path, folder), lufs)
        made = read_preview(preview, path) or write_preview(path, preview)
    except (OSError, ValueError, RuntimeError) as error:  # sf.info's and read_audio's errors
        return Source(None, lufs, note=f"{what} cannot be played here: {' '.join(str(error).split())}")
    measured = made.get("loudness_lufs")
    # what the preview loses (the gain; content above its Nyquist) is made up for by the page's level matching
    offset = measured - lufs if isinstance(measured, (int, float)) and lufs is not None else made["gain_db"]
    words = (f"24-bit FLAC at {made['rate'] / 1000:g} kHz{', folded to stereo' if made['folded'] else ''}"
             + (f", {-made['gain_db']:.1f} dB quieter" if made["gain_db"] < 0 else ""))
    return Source(page_url(preview, folder), lufs, round(offset, 3),
                  f"{what} played from the preview {preview.name} ({words}): browsers do not play {reason}")


def track(folder: Path, stem: str, report: dict[str, Any]) -> Track:
    """One report's track: its sources (input and output; the reference is added by :func:`add_reference`) and
    notes.

    Args:
        folder: the output folder.
        stem: the report's name without ``.json``.
        report: the report.
    """
    files, made = report["files"], Track(stem, report)
    if "output" not in report:
        made.notes.append("not finished: the run writing it was stopped; a rerun of dmaster master redoes it")
        return made
    levels, out_levels = _section(report, "input"), _section(report, "output")
    made.sources["input"] = playable_source(folder, Path(files["input"]), folder / (stem + PREVIEW_SUFFIXES["input"]),
                                            levels.get("loudness_lufs"), "input")
    mastered = folder / str(files.get("mastered", ""))
    made.sources["output"] = playable_source(folder, mastered, folder / (stem + PREVIEW_SUFFIXES["output"]),
                                             out_levels.get("loudness_lufs"), "mastered audio")
    made.notes += [str(line) for line in files.get("warnings") or ()]
    made.notes += [source.note for source in made.sources.values() if source.note]
    return made


def reference_path(report: Mapping[str, Any]) -> Path | None:
    """The reference file a reference-mode report names (``files.settings.reference``), or ``None``.

    >>> reference_path({"reference": {}, "files": {"settings": {"reference": {"path": "/r/ref.wav"}}}}).name
    'ref.wav'
    """
    if "reference" not in report:
        return None
    named = (report.get("files", {}).get("settings") or {}).get("reference")
    named = named.get("path") if isinstance(named, dict) else named
    return Path(named) if isinstance(named, str) and named else None


def add_reference(folder: Path, item: Track, references: dict[str, Source]) -> None:
    """Add the reference to a reference-mode track's sources (one preview per reference file, shared).

    Args:
        folder: the output folder.
        item: the track.
        references: the sources made so far, by path.
    """
    path = reference_path(item.report)
    if path is None or "output" not in item.report:
        return
    if str(path) not in references:
        loudness = item.report["reference"].get("reference_loudness_lufs")
        digest = hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:8]
        preview = folder / f"{path.stem}-{digest}{PREVIEW_SUFFIXES['reference']}"
        references[str(path)] = playable_source(folder, path, preview, loudness, "reference")
    item.sources["reference"] = references[str(path)]
    if references[str(path)].note:
        item.notes.append(references[str(path)].note)


# -- rendering ----------------------------------------------------------------------------------------


def _section(report: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``report[name]`` when it is a mapping, else ``{}``."""
    value = report.get(name)
    return value if isinstance(value, dict) else {}


def number(value: Any, digits: int = 2, sign: bool = False) -> str:
    """A report's number as the page shows it; ``"n/a"`` for ``None`` (unmeasurable).

    >>> number(-14.094), number(None), number(2.5, 1, sign=True)
    ('-14.09', 'n/a', '+2.5')
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def change_words(report: Mapping[str, Any]) -> str:
    """What was changed, in a few words: the effects corrected with their correction strengths (strongest
    first), or the reference mode's correction, or the U-Net's mask strength.

    >>> change_words({"effects": {"gain": {"applied": True, "correction_strength": 0.5, "correction": "+2.0 dB"},
    ...                           "echo": {"applied": False, "correction_strength": 0.0}}})
    'gain +2.0 dB (0.50)'
    """
    words = []
    if "reference" in report:
        correction = _section(_section(report, "reference"), "correction")
        curve = [v for v in _section(correction, "eq_curve_db").values() if isinstance(v, (int, float))]
        if curve:
            words.append(f"EQ {min(curve):+.1f} to {max(curve):+.1f} dB")
        words.append(f"gain {number(correction.get('gain_db'), 1, sign=True)} dB")
        swapped = [f"compressor {what}" for what in ("undone", "applied")
                   if correction.get(f"compressor_{what}", "none") != "none"]
        words = [f"matched to the reference: {', '.join(words + swapped)}"]
    elif "mask_strength" in report:
        words.append(f"U-Net mask at strength {number(report['mask_strength'])}")
    else:
        applied = sorted(((name, effect) for name, effect in _section(report, "effects").items()
                          if isinstance(effect, dict) and effect.get("applied")),
                         key=lambda item: -float(item[1].get("correction_strength") or 0))
        for name, effect in applied:
            text = str(effect.get("correction", ""))
            detail = f" {text}" if text and len(text) <= 20 else ""
            words.append(f"{name}{detail} ({number(effect.get('correction_strength'))})")
        words = words or ["nothing corrected"]
    if report.get("kept"):
        words.append(f"kept: {', '.join(map(str, report['kept']))}")
    if report.get("amount", 1.0) != 1.0:
        words.append(f"at amount {number(report.get('amount'))}")
    return "; ".join(words)


def marks(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The marks of a row, ``(class, text)``: a loudness target missed, a true peak at the ceiling (within
    :data:`CEILING_MARGIN_DB`) or over it (a sample-peak ceiling leaves the peaks between the samples free).

    >>> marks({"output": {"peak_ceiling_db": -1.0, "true_peak": True, "true_peak_dbtp": -1.05, "target_missed": "x"}})
    [('missed', 'target missed: x'), ('ceiling', 'true peak -1.05 dBTP at the -1.0 dBTP ceiling')]
    """
    level, found = _section(report, "output"), []
    if level.get("target_missed"):
        found.append(("missed", f"target missed: {level['target_missed']}"))
    peak, ceiling = level.get("true_peak_dbtp"), level.get("peak_ceiling_db")
    if isinstance(peak, (int, float)) and isinstance(ceiling, (int, float)) and peak >= ceiling - CEILING_MARGIN_DB:
        where = "over" if peak > ceiling + 0.005 else "at"
        kind = "dBTP" if level.get("true_peak") else "dBFS sample-peak"
        found.append(("ceiling", f"true peak {number(peak)} dBTP {where} the {number(ceiling, 1)} {kind} ceiling"))
    return found


TABLE_FIELDS = (("input.loudness_lufs", "LUFS in"), ("output.loudness_lufs", "LUFS out"),
                ("output.target_lufs", "target"), ("input.true_peak_dbtp", "dBTP in"),
                ("output.true_peak_dbtp", "dBTP out"), ("output.peak_ceiling_db", "ceiling"),
                ("input.loudness_range_lu", "LU in"), ("output.loudness_range_lu", "LU out"))
"""The album table's numeric columns: the report's field (``section.key``) and its heading."""


def field_value(report: Mapping[str, Any], name: str) -> Any:
    """A report's field named ``section.key`` (``None`` where it is missing).

    >>> field_value({"input": {"loudness_lufs": -20.0}}, "input.loudness_lufs")
    -20.0
    """
    section, key = name.split(".")
    return _section(report, section).get(key)


def render(folder: Path, tracks: list[Track], failures: list[tuple[str, str]]) -> str:
    """The page's HTML.

    Args:
        folder: the output folder (its name is the title).
        tracks: the tracks, in order.
        failures: ``(input, reason)`` of the files not mastered.
    """
    data = [{"id": f"t{index}", "sources": {name: {"url": s.url, "lufs": s.lufs, "offset_db": s.offset_db,
                                                    "label": LABELS[name], "key": KEYS[name]}
                                             for name, s in item.sources.items() if s.url}}
            for index, item in enumerate(tracks, start=1)]
    script_data = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    title = f"dmaster: {folder.resolve().name or folder}"
    body = [f"<h1>{_e(title)}</h1>", _intro(len(tracks)), _failures(failures), _album(tracks)]
    body += [_track_section(folder, index, item) for index, item in enumerate(tracks, start=1)]
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{_e(title)}</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(part for part in body if part)
            + f'\n<script type="application/json" id="tracks">{script_data}</script>\n<script>{SCRIPT}</script>\n'
            "</body>\n</html>\n")


def _e(text: Any) -> str:
    """``text`` escaped for HTML."""
    return html.escape(str(text), quote=True)


def _intro(count: int) -> str:
    """What the page is, its keys, and what a copy elsewhere needs."""
    return (f'<p class="intro">{count} track{"" if count == 1 else "s"} mastered by <code>dmaster master</code>. '
            "Each player switches between the input and the mastered audio (and the reference) at the same position, "
            "level-matched by default: the louder one is turned down by the difference of the loudness the report "
            "measured, so that a change is not heard as better only for being louder. Keys act on the highlighted "
            "track (click one to choose it): "
            "<kbd>Space</kbd> play/pause, <kbd>A</kbd> input, <kbd>B</kbd> mastered, <kbd>R</kbd> reference, "
            "<kbd>X</kbd> switch input/mastered, <kbd>M</kbd> level matching on/off, <kbd>&larr;</kbd>/"
            "<kbd>&rarr;</kbd> 5 s back/on, <kbd>N</kbd>/<kbd>P</kbd> next/previous track.</p>\n"
            '<p class="intro">Audio is referenced, not embedded: the outputs beside this page, the inputs where they '
            "were (relative to this folder). A copy of this folder plays elsewhere only with the inputs copied "
            "alongside it, at the same place relative to it.</p>")


def _failures(failures: list[tuple[str, str]]) -> str:
    """The list of files not mastered."""
    if not failures:
        return ""
    items = "".join(f'<li><code class="path">{_e(path)}</code>: <span class="reason">{_e(reason)}</span></li>'
                    for path, reason in failures)
    return f'<section id="failures"><h2>Not mastered ({len(failures)})</h2><ul>{items}</ul></section>'


def _album(tracks: list[Track]) -> str:
    """The album table."""
    if not tracks:
        return '<p class="empty">No reports of dmaster master in this folder.</p>'
    heads = "".join(f'<th class="num" title="{_e(name)}">{_e(head)}</th>' for name, head in TABLE_FIELDS)
    rows = []
    for index, item in enumerate(tracks, start=1):
        cells = "".join(f'<td class="num" data-field="{name}">{number(field_value(item.report, name))}</td>'
                        for name, _ in TABLE_FIELDS)
        flagged = marks(item.report) + [("missed", note) for note in item.notes if note.startswith("not finished")]
        flags = "".join(f'<span class="mark {kind}">{_e(text)}</span>' for kind, text in flagged)
        change = change_words(item.report) if "output" in item.report else ""
        rows.append(f'<tr data-track="t{index}" data-report="{_e(item.report["files"]["report"])}"'
                    f'{" class=flagged" if flagged else ""}><td class="num">{index}</td>'
                    f'<td><a href="#t{index}">{_e(Path(item.report["files"]["input"]).name)}</a></td>{cells}'
                    f'<td class="change">{_e(change)}</td><td class="marks">{flags}</td></tr>')
    return ('<table id="album"><thead><tr><th class="num">#</th><th>track</th>' + heads
            + "<th>change</th><th>marks</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _track_section(folder: Path, index: int, item: Track) -> str:
    """One track's section: files, player, notes, report, plot."""
    files, report = item.report["files"], item.report
    name = Path(files["input"]).name
    links = [f'input <a href="{_e(page_url(Path(files["input"]), folder))}">{_e(files["input"])}</a>']
    links += [f'{what} <a href="{_e(quote(str(files[key])))}">{_e(files[key])}</a>'
              for key, what in (("mastered", "mastered"), ("report", "report")) if files.get(key)]
    notes = "".join(f"<li>{_e(note)}</li>" for note in item.notes)
    parts = [f'<section class="track" id="t{index}" data-track="t{index}"><h2>{index}. {_e(name)}</h2>',
             f'<p class="files">{" · ".join(links)}</p>', _player(item, index)]
    if notes:
        parts.append(f'<ul class="notes">{notes}</ul>')
    if "output" in report:
        parts.append(f'<div class="report">{_levels(report)}{_level_stage(report)}</div>')
        parts.append(_reference_report(report) if "reference" in report else _effects(report))
    plot = files.get("plot")
    if plot and (folder / str(plot)).is_file():
        parts.append(f'<img class="plot" loading="lazy" src="{_e(quote(str(plot)))}" '
                     f'alt="long-term spectra and levels of input and mastered audio of {_e(name)}">')
    parts.append("</section>")
    return "\n".join(parts)


def _player(item: Track, index: int) -> str:
    """A player's controls; the audio elements are made by the script on first use."""
    playing = [name for name, source in item.sources.items() if source.url]
    if not playing:
        return '<p class="player none">nothing to play</p>'
    buttons = "".join(f'<button class="source" data-source="{name}" title="key {KEYS[name]}">'
                      f"<kbd>{KEYS[name]}</kbd> {LABELS[name]}</button>" for name in playing)
    return (f'<div class="player" data-track="t{index}"><button class="play" title="key Space">&#9654; play</button>'
            f'{buttons}<input class="seek" type="range" min="0" max="1000" value="0" aria-label="position">'
            '<span class="time">0:00.0</span><label><input class="match" type="checkbox" checked> level-matched'
            '</label><span class="gain"></span><span class="error"></span></div>')


def _levels(report: Mapping[str, Any]) -> str:
    """The levels of input and output (and the reference's loudness) side by side."""
    rows = (("loudness", "loudness_lufs", "LUFS"), ("loudness range", "loudness_range_lu", "LU"),
            ("true peak", "true_peak_dbtp", "dBTP"), ("peak to loudness", "peak_to_loudness_db", "dB"))
    reference = _section(report, "reference")
    head = "<th>reference</th>" if reference else ""
    body = "".join(
        f"<tr><th>{what}</th><td>{number(_section(report, 'input').get(key))}</td>"
        f"<td>{number(_section(report, 'output').get(key))}</td>"
        + (f"<td>{number(reference.get('reference_loudness_lufs')) if key == 'loudness_lufs' else ''}</td>"
           if reference else "") + f"<td>{unit}</td></tr>" for what, key, unit in rows)
    return f'<table class="levels"><tr><th></th><th>input</th><th>mastered</th>{head}<th></th></tr>{body}</table>'


def _level_stage(report: Mapping[str, Any]) -> str:
    """The level stage in words: ceiling, target and what reached it."""
    level = _section(report, "output")
    kind = "dBTP (true peak)" if level.get("true_peak") else "dBFS (sample peak)"
    lines = [f"model {_e(report.get('model', '?'))}, amount {number(report.get('amount', 1.0))}",
             f"ceiling {number(level.get('peak_ceiling_db'), 1)} {kind}"]
    if level.get("target_lufs") is not None:
        source = " (the reference's loudness)" if "reference" in report else ""
        lines.append(f"target {number(level['target_lufs'])} LUFS{source}, reached "
                     f"{number(level.get('loudness_lufs'))} LUFS")
    if level.get("loudness_before_lufs") is not None:
        lines.append(f"loudness before the level stage {number(level['loudness_before_lufs'])} LUFS")
    if level.get("peak_limiting_db") is not None:
        lines.append(f"limiter: at most {number(abs(level['peak_limiting_db']))} dB off a peak")
    if level.get("peak_reduction_db") is not None:
        lines.append(f"turned down {number(abs(level['peak_reduction_db']))} dB to keep the peak under the ceiling")
    if level.get("peak_normalisation_db") is not None:
        lines.append(f"peak normalised to the ceiling: {number(level['peak_normalisation_db'], sign=True)} dB")
    if level.get("target_missed"):
        lines.append(f'<span class="mark missed">target missed: {_e(level["target_missed"])}</span>')
    residual = _section(report, "residual_correction")
    if residual:
        bands = [v for v in _section(residual, "bands_db").values() if isinstance(v, (int, float))]
        span = f", bands {min(bands):+.1f} to {max(bands):+.1f} dB" if bands else ""
        lines.append(f"residual correction: level {number(residual.get('level_db'), sign=True)} dB{span}")
    for key, text in (("kept", "kept"), ("estimate_given", "estimate from an earlier report")):
        if report.get(key):
            lines.append(text + (f": {_e(', '.join(map(str, report[key])))}" if key == "kept" else ""))
    return '<ul class="stage">' + "".join(f"<li>{line}</li>" for line in lines) + "</ul>"


def _estimated(values: Mapping[str, Any]) -> str:
    """An effect's estimated parameters in words (``low shelf 56.6 Hz, low shelf q 0.85, ...``)."""
    parts = []
    for name, entry in values.items():
        value = entry.get("value") if isinstance(entry, dict) else entry
        unit = str(entry.get("unit", "")) if isinstance(entry, dict) else ""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            shown = f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
        else:
            shown = str(value)
        words, _, last = name.replace("_", " ").rpartition(" ")
        if not (words and last in ("hz", "db", "ms", "s") and unit.lower().startswith(last)):
            words = name.replace("_", " ")  # the unit's word only where the unit says it: "low_shelf_hz" in Hz
        parts.append(f"{words} {shown}{unit if unit.startswith(':') else ' ' + unit if unit else ''}")
    return ", ".join(parts)


def _effects(report: Mapping[str, Any]) -> str:
    """The estimate and correction per effect."""
    effects = _section(report, "effects")
    if not effects:
        return ""
    rows = "".join(
        f'<tr class="{"applied" if effect.get("applied") else "left"}"><th>{_e(name)}</th>'
        f'<td class="num">{number(effect.get("presence_probability"))}</td>'
        f'<td class="num">{number(effect.get("inverse_strength"))}</td>'
        f'<td class="num">{number(effect.get("correction_strength"))}</td>'
        f'<td class="small">{_e(_estimated(_section(effect, "estimated")))}</td>'
        f'<td class="small">{_e(effect.get("correction", ""))}</td></tr>'
        for name, effect in effects.items() if isinstance(effect, dict))
    return ('<table class="effects"><tr><th>effect</th><th>presence</th><th>inverse strength</th>'
            "<th>correction strength</th><th>estimated degradation</th><th>correction</th></tr>" + rows + "</table>")


def _reference_report(report: Mapping[str, Any]) -> str:
    """Reference mode's report in words."""
    details = _section(report, "reference")
    correction, distance = _section(details, "correction"), _section(details, "spectrum_distance_to_reference_db")
    path = reference_path(report)
    loudness = (number(details.get("reference_loudness_lufs")), number(details.get("input_loudness_lufs")))
    lines = [f"reference file {_e(path.name if path else '(not named in the report)')}: loudness {loudness[0]} LUFS "
             f"(input {loudness[1]})",
             f"swapped: {_e(', '.join(map(str, details.get('swapped', []))) or 'nothing')}"
             + (f"; kept: {_e(', '.join(map(str, details['kept'])))}" if details.get("kept") else "")
             + ("; echo and reverb taken from the reference" if details.get("ambience") else ""),
             f"correction: {_e(change_words(report).removeprefix('matched to the reference: '))}",
             f"compressor undone: {_e(correction.get('compressor_undone', 'none'))}",
             f"compressor applied: {_e(correction.get('compressor_applied', 'none'))}"]
    if distance:
        lines.append(f"spectrum distance to the reference: input {number(distance.get('input'))} dB, mastered "
                     f"{number(distance.get('output'))} dB")
    return '<ul class="stage reference">' + "".join(f"<li>{line}</li>" for line in lines) + "</ul>"


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1em auto;max-width:1200px;padding:0 1em;color:#222;background:#fff}
h1{font-size:1.4em}h2{font-size:1.15em;margin:.3em 0}code,kbd{font-size:.92em}
kbd{border:1px solid #aaa;border-radius:3px;padding:0 .3em;background:#f4f4f4}
.intro{color:#444;max-width:70em}
table{border-collapse:collapse;margin:.5em 0}th,td{padding:.2em .5em;border-bottom:1px solid #ddd;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
#album th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}#album tr.flagged td{background:#fff6e6}
#album tr.current td{outline:1px solid #58a}
.change{font-size:.9em;max-width:22em}.mark{display:inline-block;border-radius:3px;padding:0 .35em;margin:1px;
font-size:.85em}.mark.missed{background:#fdd;color:#800}.mark.ceiling{background:#ffe3b0;color:#740}
#failures{border:1px solid #e99;background:#fff4f4;padding:.3em 1em;margin:1em 0}
.track{border-top:2px solid #ccc;padding:.6em .4em;margin-top:1em}.track.current{background:#f3f8fc}
.files{font-size:.9em;color:#555;word-break:break-all}
.player{display:flex;flex-wrap:wrap;align-items:center;gap:.4em;margin:.4em 0}
.player button{padding:.25em .7em;border:1px solid #888;border-radius:4px;background:#fafafa;cursor:pointer}
.player button.active{background:#2a6fb0;color:#fff;border-color:#2a6fb0}
.player button.active kbd{background:transparent;color:#fff;border-color:#cde}
.player .seek{flex:1 1 12em}.player .time{font-variant-numeric:tabular-nums;min-width:4em}
.player .gain{color:#555;font-size:.9em}.player .error{color:#b00;font-weight:bold}
.notes{color:#740;font-size:.9em}.report{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}
.stage{margin:.5em 0;padding-left:1.2em}.effects tr.left{color:#888}.small{font-size:.85em}
.plot{max-width:100%;margin-top:.5em}
"""

SCRIPT = r"""
"use strict";
(() => {
const tracks = JSON.parse(document.getElementById("tracks").textContent);
const players = new Map();
// Chromium takes a muted (or silent) element off the audio device and, unmuted, puts it back with a stall of the
// device's latency (40 ms and more): the sources not heard play 100 dB down instead, in step with the one heard.
const UNHEARD = 1e-5;
let current = null;

function format(t) {
  if (!isFinite(t)) return "0:00.0";
  return Math.floor(t / 60) + ":" + (t % 60).toFixed(1).padStart(4, "0");
}

class Player {
  constructor(track, root) {
    this.track = track; this.root = root; this.sources = track.sources;
    this.active = "output" in this.sources ? "output" : Object.keys(this.sources)[0];
    this.matched = true; this.audio = null; this.position = 0; this.timer = null;
    this.q = s => root.querySelector(s);
    this.showGain(); this.showActive();
  }
  gains() {  // dB per source: matched, each at the quietest's loudness; else as measured
    const names = Object.keys(this.sources), s = this.sources;
    const measured = names.every(n => s[n].lufs !== null);
    const heard = n => s[n].lufs + s[n].offset_db;
    const quietest = Math.min(...names.map(n => measured ? heard(n) : 0));
    const base = Math.min(...names.map(n => s[n].offset_db));
    return Object.fromEntries(names.map(n => [n, this.matched && measured ? quietest - heard(n)
                                                                           : base - s[n].offset_db]));
  }
  showGain() {
    const names = Object.keys(this.sources), s = this.sources, box = this.q(".match");
    if (!names.every(n => s[n].lufs !== null)) {
      box.checked = false; box.disabled = true; this.matched = false;
      this.q(".gain").textContent = "not level-matched: a loudness could not be measured"; return;
    }
    const quietest = Math.min(...names.map(n => s[n].lufs));
    const loud = names.map(n => s[n].label + " " + s[n].lufs.toFixed(2) + " LUFS").join(", ");
    const turned = names.filter(n => s[n].lufs - quietest > 0.005)
      .map(n => s[n].label + " " + (quietest - s[n].lufs).toFixed(2) + " dB").join(", ");
    this.q(".gain").textContent = (this.matched ? "matching gain: " + (turned || "none")
                                               : "as mastered, not matched") + " (" + loud + ")";
    this.applyGains();
  }
  applyGains() {  // the one heard at its gain, the others 100 dB under it (not muted: see UNHEARD)
    if (!this.audio) return;
    const g = this.gains();
    for (const n in this.audio)
      this.audio[n].volume = Math.min(1, Math.pow(10, g[n] / 20)) * (n === this.active ? 1 : UNHEARD);
  }
  make() {  // the audio elements, on first use
    if (this.audio) return;
    this.audio = {};
    for (const n in this.sources) {
      const a = document.createElement("audio");
      a.preload = "none"; a.src = this.sources[n].url; a.dataset.source = n;
      a.addEventListener("error", () => {
        this.q(".error").textContent = "cannot play the " + this.sources[n].label + " (" + this.sources[n].url +
          "): " + (a.error && a.error.code === 4 ? "not found or not decodable" : "load error") +
          " (a copy of this page needs the inputs copied alongside)";
      });
      a.addEventListener("timeupdate", () => { if (n === this.active) this.showTime(); });
      a.addEventListener("ended", () => { if (n === this.active) this.pause(); });
      this.root.appendChild(a); this.audio[n] = a;
    }
    this.applyGains();
  }
  ready() {  // resolves to each source's duration once its metadata is loaded
    this.make();
    return Promise.all(Object.entries(this.audio).map(([n, a]) => new Promise((resolve, reject) => {
      if (a.readyState >= 1) { resolve([n, a.duration]); return; }
      a.addEventListener("loadedmetadata", () => resolve([n, a.duration]), {once: true});
      a.addEventListener("error", () => reject(new Error(n + ": " + (a.error && a.error.message))), {once: true});
      a.preload = "metadata"; a.load();
    }))).then(Object.fromEntries);
  }
  time() { return this.audio && !this.paused() ? this.audio[this.active].currentTime : this.position; }
  paused() { return !this.audio || this.audio[this.active].paused; }
  play() {
    this.make(); select(this);
    for (const p of players.values()) if (p !== this && !p.paused()) p.pause();
    const a = this.audio[this.active];
    const t = isFinite(a.duration) && this.position >= a.duration - 0.05 ? 0 : this.position;
    for (const n in this.audio) {
      const e = this.audio[n];
      e.playbackRate = 1;
      if (Math.abs(e.currentTime - t) > 0.001) e.currentTime = t;
      e.play().catch(err => { if (err.name !== "AbortError") this.q(".error").textContent = String(err); });
    }
    clearInterval(this.timer); this.timer = setInterval(() => this.sync(), 100);
    this.q(".play").innerHTML = "&#10074;&#10074; pause";
  }
  pause() {
    if (!this.audio) return;
    this.position = this.audio[this.active].currentTime;
    for (const n in this.audio) this.audio[n].pause();
    clearInterval(this.timer); this.q(".play").innerHTML = "&#9654; play";
  }
  toggle() { if (this.paused()) this.play(); else this.pause(); }
  sync() {  // the muted ones follow the one heard: sped up or slowed down (unheard), sought when far off
    const t = this.audio[this.active].currentTime;
    for (const n in this.audio) {
      const e = this.audio[n], d = e.currentTime - t;
      if (n === this.active || e.seeking || e.paused || (isFinite(e.duration) && t >= e.duration)) continue;
      if (Math.abs(d) > 0.25) { e.playbackRate = 1; e.currentTime = t; continue; }
      e.playbackRate = Math.abs(d) < 0.002 ? 1 : Math.min(1.25, Math.max(0.75, 1 - 4 * d));
    }
  }
  use(name) {  // switch to a source at the same position: unmuted where it is in step, else sought there
    if (!(name in this.sources)) return;
    select(this);
    if (this.audio && name !== this.active) {
      const from = this.audio[this.active], to = this.audio[name];
      if (this.paused()) this.position = from.currentTime;
      to.playbackRate = 1;
      if (Math.abs(to.currentTime - from.currentTime) > 0.03) to.currentTime = from.currentTime;
    }
    this.active = name; this.applyGains(); this.showActive();
  }
  swap() { this.use(this.active === "input" ? "output" : "input"); }
  seek(t) {
    this.make();
    const d = this.audio[this.active].duration;
    t = Math.max(0, isFinite(d) ? Math.min(t, d) : t);
    this.position = t;
    for (const n in this.audio) this.audio[n].currentTime = t;
    this.showTime();
  }
  setMatched(on) { this.matched = on; this.q(".match").checked = on; this.showGain(); }
  showActive() {
    for (const b of this.root.querySelectorAll("button.source"))
      b.classList.toggle("active", b.dataset.source === this.active);
  }
  showTime() {
    const a = this.audio && this.audio[this.active], t = a ? a.currentTime : this.position;
    this.q(".time").textContent = format(t);
    if (a && isFinite(a.duration) && a.duration > 0) this.q(".seek").value = Math.round(1000 * t / a.duration);
  }
}

function select(player) {
  if (current === player) return;
  for (const e of document.querySelectorAll(".current")) e.classList.remove("current");
  current = player;
  if (!player) return;
  document.getElementById(player.track.id).classList.add("current");
  const row = document.querySelector('#album tr[data-track="' + player.track.id + '"]');
  if (row) row.classList.add("current");
}

for (const track of tracks) {
  const root = document.querySelector('.player[data-track="' + track.id + '"]');
  if (!root) continue;
  const p = new Player(track, root);
  players.set(track.id, p);
  root.querySelector(".play").addEventListener("click", () => p.toggle());
  for (const b of root.querySelectorAll("button.source")) b.addEventListener("click", () => p.use(b.dataset.source));
  root.querySelector(".match").addEventListener("change", e => p.setMatched(e.target.checked));
  root.querySelector(".seek").addEventListener("input", e => {
    p.make(); const d = p.audio[p.active].duration;
    if (isFinite(d)) p.seek(d * e.target.value / 1000);
  });
}
for (const section of document.querySelectorAll("section.track")) {
  section.addEventListener("pointerdown", () => { const p = players.get(section.dataset.track); if (p) select(p); });
}
for (const row of document.querySelectorAll("#album tbody tr")) {
  row.addEventListener("click", () => { const p = players.get(row.dataset.track); if (p) select(p); });
}
if (players.size) select(players.values().next().value);

function step(by) {
  const list = [...players.values()];
  const next = list[Math.min(list.length - 1, Math.max(0, list.indexOf(current) + by))];
  if (!next) return;
  const playing = current && !current.paused();
  if (playing) current.pause();
  select(next); document.getElementById(next.track.id).scrollIntoView({block: "start"});
  if (playing) next.play();
}

const actions = {
  " ": p => p.toggle(), "a": p => p.use("input"), "b": p => p.use("output"), "r": p => p.use("reference"),
  "x": p => p.swap(), "m": p => p.setMatched(!p.matched), "arrowleft": p => p.seek(p.time() - 5),
  "arrowright": p => p.seek(p.time() + 5), "n": () => step(1), "p": () => step(-1),
};
document.addEventListener("keydown", e => {
  if (e.ctrlKey || e.metaKey || e.altKey || !current) return;
  const action = actions[e.key.toLowerCase()];
  if (!action) return;
  e.preventDefault(); action(current);
});
document.addEventListener("keyup", e => { if (e.key === " ") e.preventDefault(); });

let sortedBy = -1, order = 1;
for (const [column, th] of document.querySelectorAll("#album thead th").entries()) {
  th.addEventListener("click", () => {  // sort by this column, ascending, again: descending; "n/a" last
    const body = document.querySelector("#album tbody");
    const key = r => { const t = r.children[column].textContent, v = parseFloat(t); return isNaN(v) ? t : v; };
    order = column === sortedBy ? -order : 1; sortedBy = column;
    [...body.rows].sort((r, s) => {
      const a = key(r), b = key(s);
      if (typeof a !== typeof b) return typeof a === "number" ? -1 : 1;
      return (a < b ? -1 : a > b ? 1 : 0) * order;
    }).forEach(r => body.appendChild(r));
  });
}

window.dmasterPage = {tracks, player: id => players.get(id)};
})();
"""
