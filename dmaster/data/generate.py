"""``dmaster demaster``: turn a folder of finished music into (original, degraded) pairs.

Every track under INPUT (``*.wav``, ``*.flac``, ``*.ogg``, ``*.mp3``, any case) is
loaded as stereo at the working rate (see :mod:`dmaster.data.audio`), clipped to
``--max-seconds``, and degraded by the chain with parameters drawn from its
priors. The parameters of a track depend only on the seed and the track id (a
generator seeded from ``sha256(f"{seed}:{track_id}")``), never on batching,
sharding or order. Audio is degraded in batches on ``--device``: the batch is
zero-padded to its longest track and each track is cropped back (the chain is
causal, so padding after the end changes nothing but the FFT grid: the results
do not depend on the batch beyond float32 FFT rounding on grids of other lengths,
~1e-5; with the same seed, batch size and device they are identical bit for bit).

Output under OUTPUT, per track id ``ID`` (e.g. ``000_000002``)::

    output_audio/ID_original.wav   loaded, resampled, stereo source (float WAV)
    output_audio/ID_degraded.wav   degraded (float WAV: values beyond ±1 do not clip)
    output_spectrograms/ID.png     both spectrograms, annotated with the parameters
    output_txt/ID.txt              the parameters in words, with units
    output_txt/ID.json             the manifest record of the pair (written last)
    manifest.jsonl                 one record per pair, for PairedDataset
    errors.jsonl                   inputs that could not be used, with the reason
    generation.json                seed, sample rate, clip length and spec version of OUTPUT

Every file is written under a temporary name and renamed (no half-written file,
ever). A pair is done when its JSON exists; a rerun skips done pairs and first
appends the manifest line of any pair whose JSON was written before a kill.
Unreadable inputs are reported and skipped; the run goes on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..effects import SPEC_VERSION, Chain, ChainParams, EffectSpec, Param
from .audio import (AudioError, append_jsonl, load_audio, read_jsonl,
                    remove_stale_temporaries, save_audio, write_json_atomic, write_text_atomic)
from .plots import save_spectrograms
from .splits import Track, find_tracks, split_of

Tensor = torch.Tensor

DEFAULT_INPUT = Path("data/raw/fma_small")
DEFAULT_OUTPUT = Path("experiments/output_full")
EFFECT_TITLES = {"eq": "EQ"}


class GenerationError(ValueError):
    """A problem with the arguments or the output folder that stops the run before it starts."""


# -- inputs -------------------------------------------------------------------------------------


def parse_shard(text: str) -> tuple[int, int]:
    """``"k/N"`` → ``(k, N)`` with ``1 ≤ k ≤ N`` (an ``argparse`` type)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard must look like k/N (e.g. 1/4), got {text!r}") from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"shard k/N needs 1 ≤ k ≤ N, got {text!r}")
    return index, count


def select_shard(tracks: Sequence[Track], index: int, count: int) -> list[Track]:
    """Tracks whose position in the sorted list is ``index - 1`` modulo ``count``."""
    return list(tracks[index - 1 :: count])


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def check_folders(input_root: Path, output_root: Path) -> None:
    """Refuse an OUTPUT that is, contains or lies inside INPUT: inputs are never written to."""
    source, target = input_root.resolve(), output_root.resolve()
    if source == target or target.is_relative_to(source) or source.is_relative_to(target):
        raise GenerationError(f"output folder {output_root} overlaps the input folder {input_root}; "
                              f"choose an output outside it")


# -- parameters ---------------------------------------------------------------------------------


def track_generator(seed: int, track: str) -> torch.Generator:
    """A CPU generator seeded from ``sha256(f"{seed}:{track}")``."""
    digest = hashlib.sha256(f"{seed}:{track}".encode("utf-8")).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "big"))


def track_params(chain: Chain, seed: int, tracks: Sequence[str]) -> ChainParams:
    """Parameters for each track id, drawn from the priors with :func:`track_generator`:
    the same for a track whatever batch it is in."""
    items = [chain.sample_params(1, track_generator(seed, t)) for t in tracks]
    return {effect: {key: torch.cat([item[effect][key] for item in items]) for key in values}
            for effect, values in items[0].items()}


def evenly_spaced_excerpts(audio: Tensor, count: int, samples: int) -> list[Tensor]:
    """``count`` excerpts of ``samples`` (or the whole track, if shorter) spread evenly over ``audio``
    ``(channels, samples)``, none at its very start or end."""
    length = min(samples, audio.shape[-1])
    starts = [(audio.shape[-1] - length) * (k + 1) // (count + 1) for k in range(count)]
    return [audio[:, start : start + length] for start in starts]


def degraded_excerpts(chain: Chain, audio: Tensor, track: str, draws: int, seconds: float,
                      first_seed: int) -> Iterator[tuple[Tensor, ChainParams, Tensor]]:
    """:func:`evenly_spaced_excerpts` of ``seconds``, excerpt ``k`` degraded with the parameters
    :func:`track_params` draws for ``track`` with seed ``first_seed + k``: ``(clean, params, degraded)``."""
    for draw, clean in enumerate(evenly_spaced_excerpts(audio, draws, int(seconds * chain.sample_rate))):
        params = track_params(chain, first_seed + draw, [track])
        yield clean, params, chain(clean[None], params)[0]


def _label(param: Param) -> str:
    for suffix in ("_db", "_hz", "_ms", "_s"):
        if param.name.endswith(suffix):
            return param.name[: -len(suffix)].replace("_", " ").replace("t60", "T60")
    return param.name.replace("_", " ")


def _value_text(param: Param, value: float) -> str:
    if param.unit in ("dB", "dBFS"):
        return f"{value:+.1f} {param.unit}" if param.minimum < 0 else f"{value:.1f} {param.unit}"
    if param.unit == "Hz":
        return f"{value:.0f} Hz"
    if param.unit == ":1":
        return f"{value:.1f}:1"
    if param.unit == "ratio":
        return f"{100 * value:.0f} %"
    if not param.unit:
        return f"{value:.2f}"
    return f"{value:.3g} {param.unit}"


def describe_effect(spec: EffectSpec, values: Mapping[str, Any]) -> str:
    """One effect in words, e.g. ``"EQ: bell 2 +5.8 dB at 2100 Hz, Q 1.40; ..."`` or ``"Echo: off"``.

    Parameters named ``<band>_gain_db``, ``<band>_hz``, ``<band>_q`` are told as one band."""
    title = EFFECT_TITLES.get(spec.name, spec.name.capitalize())
    if not values["present"]:
        return f"{title}: off"
    bands = [p.name.removesuffix("_gain_db") for p in spec.params if p.name.endswith("_gain_db")]
    bands = [b for b in bands if {f"{b}_hz", f"{b}_q"} <= set(spec.names)]
    in_bands = {f"{b}_{s}" for b in bands for s in ("gain_db", "hz", "q")}
    parts = [f"{b.replace('_', ' ')} {values[b + '_gain_db']:+.1f} dB at {values[b + '_hz']:.0f} Hz, "
             f"Q {values[b + '_q']:.2f}" for b in bands]
    rest = [p for p in spec.params if p.name not in in_bands]
    if len(spec.params) == 1:
        parts.append(_value_text(rest[0], values[rest[0].name]))
    elif rest:
        parts.append(", ".join(f"{_label(p)} {_value_text(p, values[p.name])}" for p in rest))
    return f"{title}: {'; '.join(parts)}"


def describe_params(chain: Chain, item: Mapping[str, Mapping[str, Any]], present_only: bool = False) -> list[str]:
    """One line per effect (one :meth:`Chain.to_json` item) in processing order."""
    return [describe_effect(spec, item[spec.name]) for spec in chain.specs
            if item[spec.name]["present"] or not present_only]


# -- processing ---------------------------------------------------------------------------------


def degrade_batch(chain: Chain, clips: Sequence[Tensor], params: ChainParams, device: torch.device) -> list[Tensor]:
    """Degrade clips ``(2, samples_i)`` together on ``device``: zero-pad to the longest,
    run the chain, crop each back. Returns CPU float32 tensors shaped like the clips."""
    length = max(c.shape[-1] for c in clips)
    batch = torch.stack([F.pad(c, (0, length - c.shape[-1])) for c in clips]).to(device)
    with torch.inference_mode():
        degraded = chain(batch, params).cpu()
    return [degraded[i, :, : c.shape[-1]] for i, c in enumerate(clips)]


@dataclass(frozen=True)
class OutputLayout:
    """Where each output of OUTPUT lives."""

    root: Path

    @property
    def audio_folder(self) -> Path:
        return self.root / "output_audio"

    @property
    def spectrogram_folder(self) -> Path:
        return self.root / "output_spectrograms"

    @property
    def text_folder(self) -> Path:
        return self.root / "output_txt"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.jsonl"

    @property
    def errors(self) -> Path:
        return self.root / "errors.jsonl"

    @property
    def settings(self) -> Path:
        return self.root / "generation.json"

    def original(self, track: str) -> Path:
        return self.audio_folder / f"{track}_original.wav"

    def degraded(self, track: str) -> Path:
        return self.audio_folder / f"{track}_degraded.wav"

    def spectrogram(self, track: str) -> Path:
        return self.spectrogram_folder / f"{track}.png"

    def text(self, track: str) -> Path:
        return self.text_folder / f"{track}.txt"

    def record(self, track: str) -> Path:
        return self.text_folder / f"{track}.json"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def prepare(self, settings: Mapping[str, Any]) -> None:
        """Create the folders, remove temporaries of killed runs, and check that OUTPUT was
        (or record that it is now) generated with ``settings``."""
        for folder in (self.audio_folder, self.spectrogram_folder, self.text_folder):
            folder.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(folder)
        if self.settings.exists():
            existing = read_json(self.settings)
            if existing != dict(settings):
                raise GenerationError(f"{self.root} holds pairs generated with {existing}, not {dict(settings)}; "
                                      f"use another output folder")
        else:
            write_json_atomic(self.settings, dict(settings))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_pair(layout: OutputLayout, chain: Chain, track: Track, original: Tensor, degraded: Tensor,
               item: dict[str, Any], seed: int, spectrograms: bool) -> dict[str, Any]:
    """Write every output of one pair (the JSON record last) and return the record."""
    sample_rate = chain.sample_rate
    split = split_of(track.id)
    save_audio(layout.original(track.id), original, sample_rate)
    save_audio(layout.degraded(track.id), degraded, sample_rate)
    seconds = original.shape[-1] / sample_rate
    heading = f"{track.id}: {seconds:.2f} s at {sample_rate} Hz, split {split}, seed {seed} (source {track.path})"
    if spectrograms:
        save_spectrograms(layout.spectrogram(track.id), original, degraded, sample_rate,
                          f"{track.id}: original (top) and degraded (bottom)",
                          describe_params(chain, item, present_only=True) or ["no effect (identity)"])
    write_text_atomic(layout.text(track.id), "\n".join([heading, *describe_params(chain, item)]) + "\n")
    record = {
        "id": track.id,
        "split": split,
        "original": layout.relative(layout.original(track.id)),
        "degraded": layout.relative(layout.degraded(track.id)),
        "spectrogram": layout.relative(layout.spectrogram(track.id)) if spectrograms else None,
        "text": layout.relative(layout.text(track.id)),
        "source": str(track.path),
        "sample_rate": sample_rate,
        "frames": original.shape[-1],
        "duration_s": round(seconds, 6),
        "seed": seed,
        "spec_version": SPEC_VERSION,
        "params": item,
    }
    write_json_atomic(layout.record(track.id), record)
    return record


@dataclass
class Summary:
    """What a run did."""

    tracks: int = 0
    already_done: int = 0
    written: int = 0
    audio_seconds: float = 0.0
    elapsed_s: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)


class _Run:
    """Book-keeping of one run: the summary, and unusable inputs reported once to errors.jsonl."""

    def __init__(self, layout: OutputLayout):
        self.layout = layout
        self.summary = Summary()
        self.known = {(f["source"], f["reason"]) for f in read_jsonl(layout.errors)}

    def report(self, source: Path, reason: str) -> None:
        self.summary.failures.append({"source": str(source), "reason": reason})
        tqdm.write(f"skipping: {reason}", file=sys.stderr)
        if (str(source), reason) not in self.known:
            self.known.add((str(source), reason))
            append_jsonl(self.layout.errors, {"source": str(source), "reason": reason})


def _load(track: Track, sample_rate: int, max_seconds: float | None) -> Tensor | AudioError:
    try:
        return load_audio(track.path, sample_rate, max_seconds)
    except AudioError as error:
        return error


def _loaded_batches(tracks: Sequence[Track], batch_size: int, sample_rate: int, max_seconds: float | None,
                    workers: int) -> Iterator[list[tuple[Track, Tensor | AudioError]]]:
    """Batches of ``(track, audio or the error)``; the next batch decodes in ``workers``
    threads while the caller processes the current one."""
    batches = [tracks[i : i + batch_size] for i in range(0, len(tracks), batch_size)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        def submit(batch: Sequence[Track]) -> list[Future]:
            return [pool.submit(_load, t, sample_rate, max_seconds) for t in batch]

        pending = submit(batches[0]) if batches else []
        for number, batch in enumerate(batches):
            loaded = [f.result() for f in pending]
            pending = submit(batches[number + 1]) if number + 1 < len(batches) else []
            yield list(zip(batch, loaded))


def _distinct(tracks: Sequence[Track], everything: Sequence[Track], run: _Run) -> list[Track]:
    """``tracks`` without those whose id an earlier file of ``everything`` already has (reported)."""
    first_with_id: dict[str, Track] = {}
    for track in everything:
        first_with_id.setdefault(track.id, track)
    for track in tracks:
        if first_with_id[track.id] is not track:
            run.report(track.path, f"{track.path}: has the same track id {track.id!r} as {first_with_id[track.id].path}")
    return [t for t in tracks if first_with_id[t.id] is t]


def _resume(layout: OutputLayout, tracks: Sequence[Track]) -> list[Track]:
    """The tracks still to do. Done pairs (their JSON exists) missing from the manifest, because
    a run was killed between the two writes, get their manifest line now."""
    recorded = {r.get("id") for r in read_jsonl(layout.manifest)}
    for track in tracks:
        if layout.record(track.id).exists() and track.id not in recorded:
            append_jsonl(layout.manifest, read_json(layout.record(track.id)))
    return [t for t in tracks if not layout.record(t.id).exists()]


def generate(input_root: str | Path, output_root: str | Path, *, subfolders: Sequence[str] | None = None,
             seed: int = 0, device: str = "cpu", batch_size: int = 8, shard: tuple[int, int] = (1, 1),
             limit: int | None = None, spectrograms: bool = True, sample_rate: int = 44100,
             max_seconds: float | None = 30.0, workers: int = 2, progress: bool = True) -> Summary:
    """Generate the pairs of ``input_root`` into ``output_root`` (see the module docstring);
    ``max_seconds=None`` (or 0) keeps whole tracks."""
    started = time.perf_counter()
    input_root, output_root, max_seconds = Path(input_root), Path(output_root), max_seconds or None
    check_folders(input_root, output_root)
    try:
        target = torch.device(device)
    except RuntimeError:
        raise GenerationError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise GenerationError(f"device {device} was asked for, but CUDA is not available here")
    try:
        chain = Chain(sample_rate).to(target)
    except ValueError as error:
        raise GenerationError(str(error)) from None
    layout = OutputLayout(output_root)
    found = find_tracks(input_root, subfolders)
    layout.prepare({"seed": seed, "sample_rate": sample_rate, "max_seconds": max_seconds,
                    "spec_version": SPEC_VERSION})
    run = _Run(layout)
    tracks = _distinct(select_shard(found, *shard)[:limit], found, run)
    todo = _resume(layout, tracks)
    run.summary.tracks, run.summary.already_done = len(tracks), len(tracks) - len(todo)

    with tqdm(total=len(todo), unit="file", desc="demaster", disable=not progress, dynamic_ncols=True) as bar:
        for batch in _loaded_batches(todo, batch_size, sample_rate, max_seconds, max(workers, 1)):
            for track, error in batch:
                if isinstance(error, AudioError):
                    run.report(track.path, str(error))
            good = [(track, audio) for track, audio in batch if isinstance(audio, Tensor)]
            if good:
                params = track_params(chain, seed, [track.id for track, _ in good])
                degraded = degrade_batch(chain, [audio for _, audio in good], params, target)
                for (track, original), output, item in zip(good, degraded, chain.to_json(params)):
                    if not torch.isfinite(output).all():
                        run.report(track.path, f"{track.path}: degraded audio is not finite")
                        continue
                    append_jsonl(layout.manifest, write_pair(layout, chain, track, original, output, item,
                                                             seed, spectrograms))
                    run.summary.written += 1
                    run.summary.audio_seconds += original.shape[-1] / sample_rate
            bar.update(len(batch))
            bar.set_postfix_str(f"audio {run.summary.audio_seconds / (time.perf_counter() - started):.1f} s/s")
    run.summary.elapsed_s = time.perf_counter() - started
    return run.summary


# -- command line -------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", nargs="?", type=Path, default=DEFAULT_INPUT, metavar="INPUT",
                        help=f"folder of mastered music, searched recursively (default: {DEFAULT_INPUT})")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, metavar="OUTPUT",
                        help=f"output folder (default: {DEFAULT_OUTPUT})")
    parser.add_argument("--subfolders", nargs="+", metavar="NAME",
                        help="only these subfolders of INPUT (e.g. 000 001); ids stay relative to INPUT")
    parser.add_argument("--seed", type=int, default=0, help="seed of the parameters (default: 0)")
    parser.add_argument("--device", default="cpu", help="device the chain runs on: cpu, cuda, cuda:1 ...")
    parser.add_argument("--batch-size", type=_positive_int, default=8, metavar="N", help="tracks degraded at once (default: 8)")
    parser.add_argument("--shard", type=parse_shard, default=(1, 1), metavar="k/N",
                        help="do only tracks k, k+N, k+2N ... of the sorted list (1-based; default: 1/1)")
    parser.add_argument("--limit", type=_positive_int, metavar="N", help="at most this many tracks (of this shard)")
    parser.add_argument("--no-spectrograms", action="store_true", help="skip the PNGs (faster)")
    parser.add_argument("--sample-rate", type=_positive_int, default=44100, metavar="HZ", help="working rate in Hz (default: 44100)")
    parser.add_argument("--max-seconds", type=float, default=30.0, metavar="SECONDS",
                        help="keep only the first seconds of longer inputs; 0 keeps everything (default: 30)")
    parser.add_argument("--workers", type=_positive_int, default=2, metavar="N", help="decoding threads (default: 2)")


def run(args: argparse.Namespace) -> int:
    try:
        summary = generate(args.input, args.output, subfolders=args.subfolders, seed=args.seed,
                           device=args.device, batch_size=args.batch_size, shard=args.shard, limit=args.limit,
                           spectrograms=not args.no_spectrograms, sample_rate=args.sample_rate,
                           max_seconds=args.max_seconds or None, workers=args.workers)
    except (GenerationError, FileNotFoundError) as error:
        print(f"dmaster demaster: error: {error}", file=sys.stderr)
        return 2
    failed = f"; {len(summary.failures)} unusable (listed in {OutputLayout(args.output).errors})" \
        if summary.failures else ""
    print(f"{summary.written} pairs written, {summary.already_done} already done{failed}; "
          f"{summary.audio_seconds:.0f} s of audio in {summary.elapsed_s:.1f} s", file=sys.stderr)
    return 0
