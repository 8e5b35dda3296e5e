"""Demastering: turn a folder of finished music into (original, degraded) pairs with known parameters.

:func:`generate` does it (the ``dmaster demaster`` command, :mod:`dmaster.apps.demaster`, calls it).
Every track under INPUT (``*.wav``, ``*.flac``, ``*.ogg``, ``*.mp3``, any case) is
loaded as stereo at the working rate (see :mod:`dmaster.audio`), clipped to
``max_seconds``, and degraded by the chain with parameters drawn from its
priors. The parameters of a track depend only on the seed and the track id (a
generator seeded from ``sha256(f"{seed}:{track_id}")``), never on batching,
sharding or order. Audio is degraded in batches on ``device``: the batch is
zero-padded to its longest track and each track is cropped back (the chain is
causal, so padding after the end changes nothing but the FFT grid: the results
do not depend on the batch beyond float32 FFT rounding on grids of other lengths;
with the same seed, batch size and device they are identical bit for bit).

The files of OUTPUT are described in :mod:`dmaster.data.pairs`. Every file is
written under a temporary name and renamed (no half-written file, ever). A pair
is done when its JSON exists; a rerun skips done pairs and first appends the
manifest line of any pair whose JSON was written before a kill. Unreadable
inputs are reported and skipped; the run goes on.
"""

from __future__ import annotations

import hashlib
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..audio import AudioError, append_jsonl, load_audio, read_jsonl, write_json_atomic
from ..effects import SPEC_VERSION, Chain, ChainParams
from .pairs import OutputLayout, write_pair
from .splits import Track, find_tracks

__all__ = ["GenerationError", "Summary", "check_folders", "degrade_batch", "degraded_excerpts",
           "evenly_spaced_excerpts", "generate", "select_shard", "track_generator", "track_params"]

Tensor = torch.Tensor


class GenerationError(ValueError):
    """A problem with the arguments or the output folder that stops the run before it starts."""


# -- inputs -------------------------------------------------------------------------------------


def select_shard(tracks: Sequence[Track], index: int, count: int) -> list[Track]:
    """Shard ``index`` of ``count``: the tracks whose position in ``tracks`` is ``index - 1`` modulo ``count``.

    Args:
        tracks: all tracks, sorted.
        index: 1 … ``count``.
        count: the number of shards.

    >>> select_shard(["a", "b", "c", "d", "e"], 2, 2)
    ['b', 'd']
    """
    return list(tracks[index - 1 :: count])


def check_folders(input_root: Path, output_root: Path) -> None:
    """Refuse an OUTPUT that is, contains or lies inside INPUT: inputs are never written to.

    Args:
        input_root: the folder of music.
        output_root: the folder the pairs go to.

    Raises:
        GenerationError: when the two overlap.
    """
    source, target = input_root.resolve(), output_root.resolve()
    if source == target or target.is_relative_to(source) or source.is_relative_to(target):
        raise GenerationError(f"output folder {output_root} overlaps the input folder {input_root}; "
                              f"choose an output outside it")


# -- parameters ---------------------------------------------------------------------------------


def track_generator(seed: int, track: str) -> torch.Generator:
    """A CPU generator seeded from ``sha256(f"{seed}:{track}")``.

    Args:
        seed: the run's seed.
        track: the track id.
    """
    digest = hashlib.sha256(f"{seed}:{track}".encode("utf-8")).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "big"))


def track_params(chain: Chain, seed: int, tracks: Sequence[str]) -> ChainParams:
    """Parameters for each track id, drawn from the priors with :func:`track_generator`:
    the same for a track whatever batch it is in.

    Args:
        chain: the chain whose priors are drawn from.
        seed: the run's seed.
        tracks: track ids.

    Returns:
        Parameters of a batch of ``len(tracks)``, item ``i`` for ``tracks[i]``.
    """
    items = [chain.sample_params(1, track_generator(seed, t)) for t in tracks]
    return {effect: {key: torch.cat([item[effect][key] for item in items]) for key in values}
            for effect, values in items[0].items()}


def evenly_spaced_excerpts(audio: Tensor, count: int, samples: int) -> list[Tensor]:
    """Excerpts spread evenly over a track, none at its very start or end.

    Args:
        audio: the track, ``(channels, samples)``.
        count: how many excerpts.
        samples: the length of each (the whole track, if shorter).

    Returns:
        ``count`` views of ``audio``, ``(channels, min(samples, audio length))``.

    >>> [excerpt.tolist() for excerpt in evenly_spaced_excerpts(torch.arange(10.0)[None], 2, 2)]
    [[[2.0, 3.0]], [[5.0, 6.0]]]
    """
    length = min(samples, audio.shape[-1])
    starts = [(audio.shape[-1] - length) * (k + 1) // (count + 1) for k in range(count)]
    return [audio[:, start : start + length] for start in starts]


def degraded_excerpts(chain: Chain, audio: Tensor, track: str, draws: int, seconds: float,
                      first_seed: int, clean: int = 0) -> Iterator[tuple[Tensor, ChainParams | None, Tensor]]:
    """:func:`evenly_spaced_excerpts` of a track, each degraded with parameters of its own (and, after them,
    ``clean`` more left as they are).

    Args:
        chain: the chain that degrades.
        audio: the track, ``(channels, samples)`` at ``chain.sample_rate``.
        track: the track id.
        draws: how many excerpts.
        seconds: the length of each.
        first_seed: excerpt ``k`` is degraded with the parameters :func:`track_params` draws for
            ``track`` with seed ``first_seed + k``.
        clean: how many excerpts to yield undegraded after the ``draws`` degraded ones (all spread
            evenly together): music that needs nothing, beside the degraded.

    Yields:
        ``(clean, params, degraded)``: the excerpt ``(channels, samples)``, its parameters (a batch
        of 1; ``None`` for an undegraded one) and the degraded excerpt (the excerpt itself when undegraded).
    """
    for draw, excerpt in enumerate(evenly_spaced_excerpts(audio, draws + clean, int(seconds * chain.sample_rate))):
        if draw >= draws:
            yield excerpt, None, excerpt
            continue
        params = track_params(chain, first_seed + draw, [track])
        yield excerpt, params, chain(excerpt[None], params)[0]


# -- processing ---------------------------------------------------------------------------------


def degrade_batch(chain: Chain, clips: Sequence[Tensor], params: ChainParams, device: torch.device) -> list[Tensor]:
    """Degrade clips of different lengths together: zero-pad to the longest, run the chain, crop each back.

    Args:
        chain: the chain, on ``device``.
        clips: stereo clips ``(2, samples_i)``.
        params: a batch of ``len(clips)`` parameters.
        device: where the chain runs.

    Returns:
        CPU float32 tensors shaped like the clips.
    """
    length = max(c.shape[-1] for c in clips)
    batch = torch.stack([F.pad(c, (0, length - c.shape[-1])) for c in clips]).to(device)
    with torch.inference_mode():
        degraded = chain(batch, params).cpu()
    return [degraded[i, :, : c.shape[-1]] for i, c in enumerate(clips)]


@dataclass
class Summary:
    """What a :func:`generate` run did.

    Args:
        tracks: tracks of this shard (after ``limit``).
        already_done: of them, pairs an earlier run had written.
        written: pairs written now.
        audio_seconds: seconds of audio written now.
        elapsed_s: wall-clock seconds of the run.
        failures: unusable inputs, ``{"source": path, "reason": text}``.
    """

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
            run.report(track.path, f"{track.path}: has the same track id {track.id!r} as "
                                   f"{first_with_id[track.id].path}")
    return [t for t in tracks if first_with_id[t.id] is t]


def _prepare(layout: OutputLayout, settings: dict[str, Any]) -> None:
    """Create OUTPUT's folders, and check that it was (or record that it is now) generated with ``settings``."""
    layout.create()
    existing = layout.read_settings()
    if existing is None:
        write_json_atomic(layout.settings, settings)
    elif existing != settings:
        raise GenerationError(f"{layout.root} holds pairs generated with {existing}, not {settings}; "
                              f"use another output folder")


def _resume(layout: OutputLayout, tracks: Sequence[Track]) -> list[Track]:
    """The tracks still to do. Done pairs (their JSON exists) missing from the manifest, because
    a run was killed between the two writes, get their manifest line now."""
    recorded = {r.get("id") for r in read_jsonl(layout.manifest)}
    for track in tracks:
        if layout.record(track.id).exists() and track.id not in recorded:
            append_jsonl(layout.manifest, layout.read_record(track.id))
    return [t for t in tracks if not layout.record(t.id).exists()]


def generate(input_root: str | Path, output_root: str | Path, *, subfolders: Sequence[str] | None = None,
             seed: int = 0, device: str = "cpu", batch_size: int = 8, shard: tuple[int, int] = (1, 1),
             limit: int | None = None, spectrograms: bool = True, sample_rate: int = 44100,
             max_seconds: float | None = 30.0, workers: int = 2, progress: bool = True) -> Summary:
    """Generate the pairs of ``input_root`` into ``output_root`` (see the module docstring).

    Args:
        input_root: folder of mastered music, searched recursively.
        output_root: the OUTPUT folder; a rerun continues where an earlier one stopped.
        subfolders: only these subfolders of ``input_root`` (ids stay relative to it).
        seed: seed of the parameters.
        device: where the chain runs: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        batch_size: tracks degraded at once.
        shard: ``(k, N)``: only tracks k, k+N, k+2N ... of the sorted list (1-based).
        limit: at most this many tracks of the shard.
        spectrograms: draw the PNGs.
        sample_rate: the working rate, Hz.
        max_seconds: keep only the first seconds of longer inputs; ``None`` (or 0) keeps whole tracks.
        workers: decoding threads.
        progress: show a progress bar.

    Returns:
        What the run did; unusable inputs are in ``failures`` and ``errors.jsonl``, not raised.

    Raises:
        GenerationError: for a bad device or sample rate, overlapping folders, or an OUTPUT
            generated with other settings.
        FileNotFoundError: when ``input_root`` or a subfolder does not exist.
    """
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
    _prepare(layout, {"seed": seed, "sample_rate": sample_rate, "max_seconds": max_seconds,
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
