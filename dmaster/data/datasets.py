"""The training data sources: generated pairs from disk, or music degraded on the fly on the training device.

* :class:`PairedDataset`: windows of the pairs ``dmaster demaster`` wrote (a PyTorch ``Dataset``);
* :class:`OnTheFlyBatches`: a folder of music, degraded batch by batch with fresh parameters;
* :class:`SyntheticBatches`: synthetic music (:func:`dmaster.synth.music_like`), no files needed.

All give items with the same keys (the last two batched: a leading batch dimension, ``track_id`` a list):

* ``"degraded"``, ``"clean"``: ``(2, W)`` float32 windows of ``W = round(window_seconds · sample_rate)``
  samples, the same span of both signals, zero-padded at the end of short tracks;
* ``"presence"``: ``(effects,)`` float32, 1 where the effect is on (order of :data:`dmaster.effects.SPECS`);
* ``"params"``: ``(n_params,)`` float32 in ``[0, 1]`` (:meth:`Chain.to_vectors`; order of ``Chain.flat_params``);
* ``"track_id"``: the track id.

Splits are by track (:func:`~dmaster.data.splits.split_of`), never by window.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from ..audio import AudioError, load_audio, read_jsonl, read_window
from ..effects import Chain
from ..effects.registry import check_carried
from ..features import level_db
from ..synth import music_like
from .prior import DrawPrior
from .splits import Track, check_split, find_tracks, split_of

__all__ = ["Batch", "OnTheFlyBatches", "PairedDataset", "SyntheticBatches"]

Tensor = torch.Tensor
Batch = dict[str, Any]
"""An item or a batch of items: the keys above."""

SILENT_DB = -60.0
"""Tracks quieter than this (RMS, dBFS) are skipped by :class:`OnTheFlyBatches`."""
QUIET_DB = -45.0
"""Training windows quieter than this (RMS, dBFS) are redrawn, up to :data:`WINDOW_TRIES` times."""
WINDOW_TRIES = 4


def _seed_from(*parts: object) -> int:
    """A 63-bit seed from the SHA-256 of ``parts`` joined with ``:``."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _manifest_files(manifest: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(manifest, (str, os.PathLike)):
        manifest = [manifest]
    files = [Path(m) / "manifest.jsonl" if Path(m).is_dir() else Path(m) for m in manifest]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"manifest not found: {', '.join(missing)} (run `dmaster demaster` first)")
    return files


def _window_start(frames: int, window: int, generator: np.random.Generator) -> int:
    return int(generator.integers(0, frames - window + 1)) if frames > window else 0


class PairedDataset(Dataset):
    """Windows of the pairs written by ``dmaster demaster``.

    Only the window's frames are read from the float WAVs. The window of item ``index`` is random
    but fixed by ``(seed, epoch, index)``; call :meth:`set_epoch` for new windows (with a
    ``DataLoader``, before creating its iterator, and without ``persistent_workers``).

    Args:
        manifest: a ``manifest.jsonl``, the OUTPUT folder holding one, or a list of either (e.g. one
            per shard); a track listed twice is used once.
        window_seconds: length of each window, seconds.
        split: ``"train"``, ``"val"`` or ``"test"``; ``None`` uses every pair.
        sample_rate: Hz; the pairs must have been generated at this rate.
        seed: seed of the window positions.
    """

    def __init__(self, manifest: str | os.PathLike | Sequence[str | os.PathLike], window_seconds: float = 3.0,
                 split: str | None = "train", sample_rate: int = 44100, seed: int = 0):
        if split is not None:
            check_split(split)
        self.window = round(window_seconds * sample_rate)
        if self.window < 1:
            raise ValueError(f"window_seconds must give at least one sample, got {window_seconds}")
        self.sample_rate, self.seed, self.epoch = sample_rate, seed, 0
        records: dict[str, dict[str, Any]] = {}
        for file in _manifest_files(manifest):
            for record in read_jsonl(file):
                if record["sample_rate"] != sample_rate:
                    raise ValueError(f"{file}: pair {record['id']} is at {record['sample_rate']} Hz; this dataset "
                                     f"needs {sample_rate} Hz")
                # a pair made before an effect joined the chain was made without it: absent (Chain.from_json)
                check_carried(record["params"], record["spec_version"], f"{file}: pair {record['id']}")
                if split is None or record["split"] == split:
                    records.setdefault(record["id"], {**record, "folder": file.parent})
        if not records:
            raise ValueError(f"no pairs of split {split!r} in {manifest}")
        self.records = list(records.values())
        chain = Chain(sample_rate)
        self.presence, self.params = chain.to_vectors(chain.from_json([r["params"] for r in self.records]))

    def set_epoch(self, epoch: int) -> None:
        """Draw new windows: item ``i`` of epoch ``e`` is fixed by ``(seed, e, i)``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        generator = np.random.default_rng([self.seed, self.epoch, index])
        start = _window_start(record["frames"], self.window, generator)
        return {
            "degraded": read_window(record["folder"] / record["degraded"], start, self.window),
            "clean": read_window(record["folder"] / record["original"], start, self.window),
            "presence": self.presence[index],
            "params": self.params[index],
            "track_id": record["id"],
        }


class OnTheFlyBatches:
    """Batches of raw music windows degraded on the training device with fresh random parameters.

    Use it directly (not through a ``DataLoader``): it batches itself and runs the chain on
    ``device``. Tracks of ``split`` under ``root`` are decoded (stereo, ``sample_rate``, the first
    ``max_seconds``) by background threads into an in-memory **pool** (float32 stereo: 10.6 MB
    per 30 s at 44.1 kHz). Each batch takes windows at random places of random pool tracks; after
    each batch the oldest ``ceil(batch_size / windows_per_track)`` tracks are replaced by the next
    ones of a shuffled order, so each decode serves about ``windows_per_track`` windows. A corpus
    no larger than the pool is decoded once and kept (no refresh). Unusable files are skipped with
    a warning. Everything random follows ``(seed, rank, epoch)``; :meth:`set_epoch` starts a new
    stream.

    Args:
        root: folder of music, searched recursively.
        window_seconds: length of each window, seconds.
        batch_size: windows per batch.
        split: ``"train"``, ``"val"`` or ``"test"``: which tracks (:func:`~dmaster.data.splits.split_of`).
        sample_rate: Hz.
        device: where the chain runs and the batches' tensors go.
        seed: seed of the track order, the windows and the parameters.
        steps: batches per iteration; ``None``: endless. Give all ranks the same.
        subfolders: only these subfolders of ``root`` (ids stay relative to ``root``).
        rank: this process's rank (default: from ``torch.distributed``, else 0); each rank takes every
            ``world_size``-th track and its own seeds.
        world_size: the number of processes (default: from ``torch.distributed``, else 1).
        pool_tracks: tracks held decoded at once.
        windows_per_track: about how many windows each decoded track serves.
        max_seconds: seconds decoded from the start of each track; ``None``: all.
        workers: decoding threads.
        prior: how the degradations are drawn (:class:`~dmaster.data.prior.DrawPrior`; default: the specs').
    """

    def __init__(self, root: str | os.PathLike, window_seconds: float = 3.0, batch_size: int = 8,
                 split: str = "train", sample_rate: int = 44100, device: str | torch.device = "cpu", seed: int = 0,
                 steps: int | None = None, *, subfolders: Sequence[str] | None = None, rank: int | None = None,
                 world_size: int | None = None, pool_tracks: int = 64, windows_per_track: int = 4,
                 max_seconds: float | None = 30.0, workers: int = 2, prior: DrawPrior | None = None):
        check_split(split)
        if batch_size < 1 or pool_tracks < 1 or windows_per_track < 1 or workers < 1:
            raise ValueError("batch_size, pool_tracks, windows_per_track and workers must be positive")
        if steps is not None and steps < 0:
            raise ValueError(f"steps must be None or ≥ 0, got {steps}")
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        self.world_size = world_size if world_size is not None else (dist.get_world_size() if distributed else 1)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside [0, world_size = {self.world_size})")
        tracks = [t for t in find_tracks(root, subfolders) if split_of(t.id) == split]
        self.tracks: list[Track] = tracks[self.rank :: self.world_size]
        if not self.tracks:
            raise ValueError(f"no {split} tracks under {root} for rank {self.rank} of {self.world_size} "
                             f"({len(tracks)} in the split)")
        self.window = round(window_seconds * sample_rate)
        self.batch_size, self.sample_rate, self.seed, self.steps = batch_size, sample_rate, seed, steps
        self.device = torch.device(device)
        self.pool_tracks, self.windows_per_track = pool_tracks, windows_per_track
        self.max_seconds, self.workers, self.epoch = max_seconds, workers, 0
        self.chain = Chain(sample_rate).to(self.device)
        self.prior = prior or DrawPrior()

    def set_epoch(self, epoch: int) -> None:
        """Start the random stream of ``epoch`` (new track order, windows and parameters)."""
        self.epoch = epoch

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError("an endless OnTheFlyBatches (steps=None) has no length")
        return self.steps

    def _track_order(self) -> Iterator[Track]:
        """The tracks in a new shuffled order on every pass, endlessly."""
        generator = torch.Generator().manual_seed(_seed_from("order", self.seed, self.rank, self.epoch))
        while True:
            for i in torch.randperm(len(self.tracks), generator=generator).tolist():
                yield self.tracks[i]

    def _decoded(self, pool: ThreadPoolExecutor) -> Iterator[tuple[Track, Tensor]]:
        """Decoded tracks in :meth:`_track_order`, decoding a few ahead in ``pool``; skips unusable ones."""
        order = self._track_order()
        ahead: deque[tuple[Track, Future]] = deque()
        failures_in_a_row = 0
        while True:
            while len(ahead) < 2 * self.workers:
                track = next(order)
                ahead.append((track, pool.submit(load_audio, track.path, self.sample_rate, self.max_seconds)))
            track, future = ahead.popleft()
            try:
                audio = future.result()
                if float(level_db(audio[None])) < SILENT_DB:
                    raise AudioError(f"{track.path}: silent (RMS below {SILENT_DB:g} dBFS)")
                yield track, audio
                failures_in_a_row = 0
            except AudioError as error:
                warnings.warn(f"skipping {error}", stacklevel=2)
                failures_in_a_row += 1
                if failures_in_a_row >= len(self.tracks):
                    raise ValueError(f"none of the {len(self.tracks)} tracks of this rank can be decoded") from error

    def _window(self, audio: Tensor, generator: torch.Generator) -> Tensor:
        """A random window of ``audio``; up to :data:`WINDOW_TRIES` draws to find one that is not quiet."""
        frames = audio.shape[-1]
        for _ in range(WINDOW_TRIES):
            start = int(torch.randint(frames - self.window + 1, (), generator=generator)) if frames > self.window else 0
            window = audio[:, start : start + self.window]
            if float(level_db(window[None])) >= QUIET_DB:
                break
        return torch.nn.functional.pad(window, (0, self.window - window.shape[-1]))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        generator = torch.Generator().manual_seed(_seed_from("batches", self.seed, self.rank, self.epoch))
        refresh = math.ceil(self.batch_size / self.windows_per_track) if len(self.tracks) > self.pool_tracks else 0
        executor = ThreadPoolExecutor(max_workers=self.workers)
        try:
            decoded = self._decoded(executor)
            resident: deque[tuple[Track, Tensor]] = deque(next(decoded) for _ in range(
                min(self.pool_tracks, len(self.tracks))))
            step = 0
            while self.steps is None or step < self.steps:
                if len(resident) >= self.batch_size:
                    picks = torch.randperm(len(resident), generator=generator)[: self.batch_size].tolist()
                else:
                    picks = torch.randint(len(resident), (self.batch_size,), generator=generator).tolist()
                clean = torch.stack([self._window(resident[i][1], generator) for i in picks]).to(self.device)
                degraded, params = self.prior.degrade(self.chain, clean, generator)
                presence, normalised = self.chain.to_vectors(params)
                yield {"degraded": degraded, "clean": clean, "presence": presence.to(self.device),
                       "params": normalised.to(self.device), "track_id": [resident[i][0].id for i in picks]}
                for _ in range(refresh):
                    resident.popleft()
                    resident.append(next(decoded))
                step += 1
        finally:
            executor.shutdown(wait=False, cancel_futures=True)


class SyntheticBatches:
    """Endless batches of synthetic music (:func:`dmaster.synth.music_like`) degraded by the chain on ``device``.

    Clips come from a pool of ``clips`` per split (each split from other seeds); batch ``k`` of
    ``rank`` is a pure function of ``(seed, rank, split, k)``, so a resumed run sees the same data.

    Args:
        window_seconds: length of each item, seconds.
        batch_size: items per batch.
        split: ``"train"``, ``"val"`` or ``"test"``.
        sample_rate: Hz.
        device: where the chain runs and the batches' tensors go.
        seed: seed of the pool and of the batches.
        rank: this process's rank; each rank draws its own batches.
        clips: clips in the pool, each ``window_seconds + 1`` seconds long.
        start_step: the index of the first batch iteration yields.
        prior: how the degradations are drawn (:class:`~dmaster.data.prior.DrawPrior`; default: the specs').
    """

    def __init__(self, window_seconds: float, batch_size: int, split: str, sample_rate: int,
                 device: torch.device | str = "cpu", seed: int = 0, rank: int = 0, clips: int = 16,
                 start_step: int = 0, prior: DrawPrior | None = None):
        self.window = int(window_seconds * sample_rate)
        self.batch_size, self.split, self.device = batch_size, split, torch.device(device)
        self.seed, self.rank, self.start_step = seed, rank, start_step
        self.chain = Chain(sample_rate)
        self.prior = prior or DrawPrior()
        self.split_index = ("train", "val", "test").index(split)
        clip_seconds = window_seconds + 1.0
        first_seed = 1_000_000 * self.split_index + 1000 * seed
        self.pool = torch.stack([music_like(clip_seconds, sample_rate, 2, seed=first_seed + i) for i in range(clips)])

    def batch(self, step: int) -> Batch:
        """Batch number ``step``: the same for the same settings, whenever it is asked for."""
        mixed = ((self.seed * 1_000_003 + self.rank) * 1_000_003 + self.split_index) * 1_000_003 + step
        generator = torch.Generator().manual_seed(mixed % 2**63)
        which = torch.randint(len(self.pool), (self.batch_size,), generator=generator)
        starts = torch.randint(self.pool.shape[-1] - self.window + 1, (self.batch_size,), generator=generator)
        clean = torch.stack([self.pool[i, :, s:s + self.window] for i, s in zip(which.tolist(), starts.tolist())])
        clean = clean.to(self.device)
        degraded, params = self.prior.degrade(self.chain, clean, generator)
        presence, normalised = self.chain.to_vectors(params)
        return {"degraded": degraded, "clean": clean, "presence": presence.to(self.device),
                "params": normalised.to(self.device),
                "track_id": [f"synthetic-{self.split}-{i}" for i in which.tolist()]}

    def __iter__(self) -> Iterator[Batch]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1
