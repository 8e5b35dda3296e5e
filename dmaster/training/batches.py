"""The batches a run trains and validates on, from the data source its config names.

``--data synthetic`` gives :class:`~dmaster.data.datasets.SyntheticBatches`, ``--manifest``
:class:`~dmaster.data.datasets.PairedDataset` through a ``DataLoader``, ``--music-root``
:class:`~dmaster.data.datasets.OnTheFlyBatches`. Batches hold the items of
:mod:`dmaster.data.datasets` stacked: ``"degraded"`` and ``"clean"`` ``(batch, 2, samples)``,
``"presence"`` ``(batch, effects)``, ``"params"`` ``(batch, params)``, ``"track_id"`` a list.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

from ..data.datasets import Batch, OnTheFlyBatches, PairedDataset, SyntheticBatches
from .config import TrainConfig

__all__ = ["training_batches", "validation_batches"]


def _to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _paired_batches(config: TrainConfig, split: str, rank: int, world_size: int, epoch: int,
                    shuffle: bool) -> Iterator[Batch]:
    """Endless batches of :class:`~dmaster.data.datasets.PairedDataset`, new windows every epoch."""
    dataset = PairedDataset(config.manifest, config.window_seconds, split, config.sample_rate, config.seed)
    if len(dataset) < config.batch_size * world_size:
        raise ValueError(f"the {split} split of {config.manifest} has {len(dataset)} pairs, fewer than one batch "
                         f"({config.batch_size} × {world_size} processes)")
    while True:
        dataset.set_epoch(epoch)
        if world_size > 1 and shuffle:
            sampler: Any = DistributedSampler(dataset, world_size, rank, shuffle=True, seed=config.seed, drop_last=True)
            sampler.set_epoch(epoch)
        elif shuffle:
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(config.seed + epoch))
        else:
            sampler = SequentialSampler(dataset)
        yield from DataLoader(dataset, config.batch_size, sampler=sampler, num_workers=config.num_workers,
                              drop_last=True)
        epoch += 1


def _music_batches(config: TrainConfig, split: str, device: torch.device, rank: int, world_size: int,
                   epoch: int, pool_tracks: int) -> Iterator[Batch]:
    """Endless batches of :class:`~dmaster.data.datasets.OnTheFlyBatches` (this rank's tracks)."""
    source = OnTheFlyBatches(config.music_root, config.window_seconds, config.batch_size, split, config.sample_rate,
                             device, config.seed, rank=rank, world_size=world_size, pool_tracks=pool_tracks,
                             max_seconds=config.track_seconds or None, prior=config.prior)
    source.set_epoch(epoch)
    return iter(source)


def training_batches(config: TrainConfig, device: torch.device, rank: int, world_size: int,
                     start_step: int) -> Iterator[Batch]:
    """Endless training batches of this process's shard.

    Synthetic data continues exactly where a resumed run stopped; the file sources restart with
    the step as their epoch, so a resumed run sees fresh windows rather than a replay.

    Args:
        config: the run's settings (data source, sizes, seed).
        device: where the batches' tensors go.
        rank: this process's rank, 0 … ``world_size - 1``.
        world_size: the number of processes sharing the data.
        start_step: the step the run starts (or resumes) from.

    Returns:
        An endless iterator of batches of ``config.batch_size`` items, on ``device``.
    """
    if config.data == "synthetic":
        source: Iterable[Batch] = SyntheticBatches(config.window_seconds, config.batch_size, "train",
                                                   config.sample_rate, device, config.seed, rank,
                                                   config.synthetic_clips, start_step, config.prior)
    elif config.manifest:
        source = _paired_batches(config, "train", rank, world_size, epoch=start_step, shuffle=True)
    else:
        source = _music_batches(config, "train", device, rank, world_size, epoch=start_step,
                                pool_tracks=config.pool_tracks)
    return (_to_device(batch, device) for batch in source)


def validation_batches(config: TrainConfig, device: torch.device) -> list[Batch]:
    """The fixed validation set: ``config.val_batches`` batches of held-out tracks.

    Args:
        config: the run's settings (data source, sizes, seed).
        device: where the batches' tensors go.

    Returns:
        The same batches for the same settings, on ``device``.
    """
    if config.data == "synthetic":
        source: Iterator[Batch] = iter(SyntheticBatches(config.window_seconds, config.batch_size, "val",
                                                        config.sample_rate, device, config.seed,
                                                        clips=max(2, config.synthetic_clips // 4),
                                                        prior=config.prior))
    elif config.manifest:
        source = _paired_batches(config, "val", 0, 1, epoch=0, shuffle=False)
    else:
        source = _music_batches(config, "val", device, 0, 1, epoch=0,
                                pool_tracks=min(64, config.val_batches * config.batch_size))
    return [_to_device(next(source), device) for _ in range(config.val_batches)]
