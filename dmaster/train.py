"""``dmaster train``: train the parameter estimator or the U-Net baseline, one process or DDP.

Single process::

    dmaster train --model param --music-root data/raw/fma_small --steps 3000

Several processes (``gloo`` on CPU, ``nccl`` on GPU; logs and checkpoints on rank 0)::

    torchrun --nproc_per_node 4 -m dmaster.train --model param --manifest experiments/output_full/manifest.jsonl

Settings come from the :class:`TrainConfig` defaults, then ``--config file.yaml|json``, then flags.
Checkpoints go to ``models/<run_name>/{best,last}.pt`` (best = lowest validation MR-STFT distance
of the restored audio), CSV logs to ``experiments/logs/<run_name>/{train,val}.csv``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
import torch.distributed as dist
import yaml
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint, unwrap
from .effects import Chain
from .losses import (delay_bin_loss, match_peak, parameter_loss, parameter_weights, presence_loss,
                     reconstruction_loss)
from .metrics import mrstft_distance, si_sdr
from .models import MODELS, EstimatorOutput, ParamEstimator, build_model, count_parameters
from .synth import music_like

Tensor = torch.Tensor
Batch = dict[str, Any]

HELP = "train the parameter estimator or the spectrogram U-Net (single process or torchrun/DDP)"


def _setting(default: Any, help: str) -> Any:
    """A :class:`TrainConfig` field whose ``help`` shows in ``--help``."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Everything a training run depends on; every field is a ``--flag`` and a config-file key."""

    model: str = _setting("param", "param (ParamEstimator) or unet (SpectrogramUNet)")
    run_name: str = _setting("", "names models/RUN/ and experiments/logs/RUN/; defaults to the model kind")
    data: str = _setting("", "'synthetic': synthetic music degraded on the fly, no files needed")
    manifest: str = _setting("", "manifest of pairs written by dmaster demaster (PairedDataset)")
    music_root: str = _setting("", "folder of music degraded on the fly on the training device (OnTheFlyBatches)")
    track_seconds: float = _setting(30.0, "--music-root: seconds decoded from the start of each track, 0 = all")
    sample_rate: int = _setting(44100, "Hz")
    window_seconds: float = _setting(3.0, "length of each training clip")
    batch_size: int = _setting(8, "clips per step and process")
    steps: int = _setting(2000, "optimiser steps")
    max_minutes: float = _setting(0.0, "wall-clock budget, 0 = none; the learning-rate schedule follows whichever "
                                       "of steps and time runs out first")
    learning_rate: float = _setting(1e-3, "peak Adam learning rate")
    weight_decay: float = _setting(0.0, "Adam weight decay")
    schedule: str = _setting("cosine", "cosine (decay to min_learning_rate_ratio) or constant, after a linear warm-up")
    warmup_steps: int = _setting(100, "steps of linear learning-rate warm-up")
    min_learning_rate_ratio: float = _setting(0.05, "final learning rate of the cosine schedule, relative")
    grad_clip: float = _setting(1.0, "maximum global gradient norm")
    val_every: int = _setting(200, "validate and write last.pt every this many steps (and at the end)")
    val_batches: int = _setting(4, "batches of held-out tracks in the validation set")
    log_every: int = _setting(10, "print a progress line every this many steps (the CSV gets every step)")
    seed: int = _setting(0, "seed of initial weights and data")
    device: str = _setting("auto", "auto (CUDA when available), cpu or cuda")
    num_workers: int = _setting(0, "DataLoader worker processes for --manifest")
    model_args: dict[str, Any] = _setting({}, "model hyper-parameters, e.g. {width: 16}")
    mrstft_weight: float = _setting(1.0, "weight of the multi-resolution STFT loss")
    l1_weight: float = _setting(1.0, "weight of the time-domain L1 loss")
    param_weight: float = _setting(1.0, "param model: weight of the normalised-parameter L1 loss")
    presence_weight: float = _setting(0.5, "param model: weight of the presence cross-entropy")
    delay_weight: float = _setting(0.1, "param model: weight of the echo-delay bin cross-entropy")
    e2e_weight: float = _setting(0.1, "param model: weight of the end-to-end loss (MR-STFT + L1 of "
                                      "chain.inverse(degraded, estimate) against the clean audio); at 0.5 its "
                                      "gradient was 4-5 times that of the supervised terms and stalled them")
    e2e_start: float = _setting(0.2, "param model: training progress (0…1) at which the end-to-end loss starts; "
                                     "its weight then ramps up linearly over the same span again")
    e2e_items: int = _setting(2, "param model: batch items run through the chain inverse for the end-to-end "
                                 "loss, 0 = all (2 of 8 about double the time of a step)")
    level_matched: bool = _setting(False, "scale restorations to the original's peak before the reconstruction / "
                                          "end-to-end loss and pick best.pt by the level-matched validation MR-STFT "
                                          "(for outputs whose level is set afterwards, e.g. by "
                                          "master(normalise_peak=True))")
    compressor_inverse_steps: int = _setting(4, "fixed-point steps of the compressor inverse in training")
    synthetic_clips: int = _setting(16, "clips in the synthetic training music pool (--data synthetic)")
    models_dir: str = _setting("models", "checkpoints go to MODELS_DIR/RUN/{best,last}.pt")
    logs_dir: str = _setting("experiments/logs", "CSV logs go to LOGS_DIR/RUN/")
    resume: bool = _setting(False, "continue from MODELS_DIR/RUN/last.pt (step, weights, optimiser, RNG, time)")
    init_from: str = _setting("", "start from the weights of this checkpoint (same model kind and size) with a "
                                  "fresh optimiser and schedule: fine-tuning")

    @property
    def name(self) -> str:
        return self.run_name or self.model

    def validate(self) -> None:
        """Raise ``ValueError`` with a message naming the first bad setting."""
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        positive = ("sample_rate", "window_seconds", "batch_size", "steps", "learning_rate", "grad_clip", "val_every",
                    "val_batches", "log_every", "compressor_inverse_steps", "synthetic_clips")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive, got {value}")
        non_negative = ("max_minutes", "track_seconds", "weight_decay", "warmup_steps", "num_workers",
                        "mrstft_weight", "l1_weight", "param_weight", "presence_weight", "delay_weight", "e2e_weight",
                        "e2e_items")
        for name in non_negative:
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be ≥ 0, got {value}")
        if self.resume and self.init_from:
            raise ValueError("resume and init_from exclude each other: resume continues this run, init_from starts "
                             "a new one from another run's weights")
        if not 0 <= self.e2e_start < 1:
            raise ValueError(f"e2e_start must lie in [0, 1), got {self.e2e_start}")
        if not 0 <= self.min_learning_rate_ratio <= 1:
            raise ValueError(f"min_learning_rate_ratio must lie in [0, 1], got {self.min_learning_rate_ratio}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}; choose cosine or constant")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"unknown device {self.device!r}; choose auto, cpu or cuda")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda was asked for, but no CUDA device is available")
        if "sample_rate" in self.model_args:
            raise ValueError("set the sample rate with sample_rate, not in model_args")
        if not isinstance(self.model_args, dict):
            raise ValueError(f"model_args must be a mapping, got {self.model_args!r}")
        sources = [s for s, given in (("--data synthetic", self.data), ("--manifest", self.manifest),
                                      ("--music-root", self.music_root)) if given]
        if not sources:
            raise ValueError("no training data: pass --manifest FILE, --music-root DIR or --data synthetic")
        if len(sources) > 1:
            raise ValueError(f"choose one data source, got {' and '.join(sources)}")
        if self.data and self.data != "synthetic":
            raise ValueError(f"unknown --data {self.data!r}; the only built-in source is synthetic")
        if self.manifest and not Path(self.manifest).is_file():
            raise ValueError(f"manifest not found: {self.manifest}")
        if self.music_root and not Path(self.music_root).is_dir():
            raise ValueError(f"music root is not a folder: {self.music_root}")
        if self.model == "unet" and not (self.mrstft_weight or self.l1_weight):
            raise ValueError("the unet is trained on mrstft_weight and l1_weight; at least one must be > 0")
        if self.model == "param" and not (self.param_weight or self.presence_weight or self.e2e_weight):
            raise ValueError("the param model needs param_weight, presence_weight or e2e_weight > 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- configuration from file and flags ------------------------------------------------------------

FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    """``value`` as the type of field ``name`` (so that YAML's ``1e-3``, a string, or ``"8"`` work)."""
    kind = type(getattr(TrainConfig(), name))
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
    elif kind in (dict, str):
        if isinstance(value, kind):
            return kind(value)
    elif not isinstance(value, (bool, dict, list)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if kind is float or number.is_integer():
            return kind(number)
    raise ValueError(f"{name} must be {kind.__name__}, got {value!r}")


def config_from_file(path: str | Path) -> dict[str, Any]:
    """Settings from a YAML or JSON file (a mapping of :class:`TrainConfig` field names)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"cannot parse config file {path}: {error}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"config file {path} must hold a mapping of settings")
    unknown = sorted(set(loaded) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown settings in {path}: {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    return {name: _coerce(name, value) for name, value in loaded.items()}


def _parse_model_arg(text: str) -> tuple[str, Any]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise ValueError(f"--model-arg takes KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults (with ``--resume``: the resumed run's settings), then ``--config`` file, then flags
    given on the command line."""
    settings: dict[str, Any] = config_from_file(args.config) if getattr(args, "config", None) else {}
    for name in FIELDS:
        if name != "model_args" and hasattr(args, name):
            settings[name] = _coerce(name, getattr(args, name))
    if settings.get("resume"):
        settings = {**stored_settings(TrainConfig(**settings)), **settings}
    model_args = dict(settings.get("model_args", {}))
    model_args.update(_parse_model_arg(text) for text in getattr(args, "model_arg", None) or [])
    settings["model_args"] = model_args
    return TrainConfig(**settings)


def stored_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings saved in the run's ``last.pt`` (empty when there is none), minus unknown keys and
    ``init_from`` (a resumed run continues from its own weights)."""
    path = Path(config.models_dir) / config.name / "last.pt"
    if not path.is_file():
        return {}
    stored = load_checkpoint(path)["config"]
    return {name: value for name, value in stored.items() if name in FIELDS and name != "init_from"}


CHOICES = {"model": tuple(MODELS), "data": ("synthetic",), "schedule": ("cosine", "constant"),
           "device": ("auto", "cpu", "cuda")}
PATH_SETTINGS = ("manifest", "music_root", "models_dir", "logs_dir", "init_from")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON file of settings; flags override it")
    defaults = TrainConfig()
    for name, spec in FIELDS.items():
        if name == "model_args":
            continue
        flag, default, doc = "--" + name.replace("_", "-"), getattr(defaults, name), spec.metadata["help"]
        if isinstance(default, bool):
            parser.add_argument(flag, dest=name, action="store_true", default=argparse.SUPPRESS, help=doc)
            continue
        metavar = ("PATH" if name in PATH_SETTINGS else "NAME" if isinstance(default, str)
                   else "N" if isinstance(default, int) else "X")
        parser.add_argument(flag, dest=name, type=type(default), default=argparse.SUPPRESS, choices=CHOICES.get(name),
                            metavar=None if name in CHOICES else metavar, help=f"{doc} (default: {default!r})")
    parser.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                        help="model hyper-parameter, e.g. --model-arg width=16 (repeatable; adds to model_args)")


# -- data ------------------------------------------------------------------------------------------

class SyntheticBatches:
    """Endless batches of synthetic music (:func:`dmaster.synth.music_like`) degraded by the chain on ``device``.

    Clips come from a pool of ``clips`` per split (train and val use different seeds); batch ``k``
    of ``rank`` is a pure function of ``(seed, rank, k)``, so a resumed run sees the same data.
    Items as in :class:`dmaster.data.datasets.PairedDataset`, batched.
    """

    def __init__(self, window_seconds: float, batch_size: int, split: str, sample_rate: int,
                 device: torch.device | str = "cpu", seed: int = 0, rank: int = 0, clips: int = 16,
                 start_step: int = 0):
        self.window = int(window_seconds * sample_rate)
        self.batch_size, self.split, self.device = batch_size, split, torch.device(device)
        self.seed, self.rank, self.start_step = seed, rank, start_step
        self.chain = Chain(sample_rate)
        self.split_index = ("train", "val", "test").index(split)
        clip_seconds = window_seconds + 1.0
        first_seed = 1_000_000 * self.split_index + 1000 * seed
        self.pool = torch.stack([music_like(clip_seconds, sample_rate, 2, seed=first_seed + i) for i in range(clips)])

    def batch(self, step: int) -> Batch:
        mixed = ((self.seed * 1_000_003 + self.rank) * 1_000_003 + self.split_index) * 1_000_003 + step
        generator = torch.Generator().manual_seed(mixed % 2**63)
        which = torch.randint(len(self.pool), (self.batch_size,), generator=generator)
        starts = torch.randint(self.pool.shape[-1] - self.window + 1, (self.batch_size,), generator=generator)
        clean = torch.stack([self.pool[i, :, s:s + self.window] for i, s in zip(which.tolist(), starts.tolist())])
        params = self.chain.sample_params(self.batch_size, generator)
        clean = clean.to(self.device)
        with torch.no_grad():
            degraded = self.chain(clean, params)
        presence, normalised = self.chain.to_vectors(params)
        return {"degraded": degraded, "clean": clean, "presence": presence.to(self.device),
                "params": normalised.to(self.device),
                "track_id": [f"synthetic-{self.split}-{i}" for i in which.tolist()]}

    def __iter__(self) -> Iterator[Batch]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1


def _to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}


def _paired_batches(config: TrainConfig, split: str, rank: int, world_size: int, epoch: int,
                    shuffle: bool) -> Iterator[Batch]:
    """Endless batches of :class:`~dmaster.data.datasets.PairedDataset`, new windows every epoch."""
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

    from .data.datasets import PairedDataset

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
                   epoch: int, pool_tracks: int = 64) -> Iterator[Batch]:
    """Endless batches of :class:`~dmaster.data.datasets.OnTheFlyBatches` (this rank's tracks)."""
    from .data.datasets import OnTheFlyBatches

    source = OnTheFlyBatches(config.music_root, config.window_seconds, config.batch_size, split, config.sample_rate,
                             device, config.seed, rank=rank, world_size=world_size, pool_tracks=pool_tracks,
                             max_seconds=config.track_seconds or None)
    source.set_epoch(epoch)
    return iter(source)


def training_batches(config: TrainConfig, device: torch.device, rank: int, world_size: int,
                     start_step: int) -> Iterator[Batch]:
    """Endless training batches of this process's shard, on ``device``.

    Synthetic data continues exactly where a resumed run stopped; the file sources restart with
    the step as their epoch, so a resumed run sees fresh windows rather than a replay.
    """
    if config.data == "synthetic":
        source: Iterable[Batch] = SyntheticBatches(config.window_seconds, config.batch_size, "train",
                                                   config.sample_rate, device, config.seed, rank,
                                                   config.synthetic_clips, start_step)
    elif config.manifest:
        source = _paired_batches(config, "train", rank, world_size, epoch=start_step, shuffle=True)
    else:
        source = _music_batches(config, "train", device, rank, world_size, epoch=start_step)
    return (_to_device(batch, device) for batch in source)


def validation_batches(config: TrainConfig, device: torch.device) -> list[Batch]:
    """The fixed validation set: ``val_batches`` batches of held-out tracks, on ``device``."""
    if config.data == "synthetic":
        source: Iterator[Batch] = iter(SyntheticBatches(config.window_seconds, config.batch_size, "val",
                                                        config.sample_rate, device, config.seed,
                                                        clips=max(2, config.synthetic_clips // 4)))
    elif config.manifest:
        source = _paired_batches(config, "val", 0, 1, epoch=0, shuffle=False)
    else:
        source = _music_batches(config, "val", device, 0, 1, epoch=0,
                                pool_tracks=min(64, config.val_batches * config.batch_size))
    return [_to_device(next(source), device) for _ in range(config.val_batches)]


# -- losses and metrics ----------------------------------------------------------------------------

def e2e_weight_at(progress: float, config: TrainConfig) -> float:
    """End-to-end loss weight: 0 until ``e2e_start``, then a linear ramp to ``e2e_weight`` (the supervised
    terms first bring the estimate close enough for the chain inverse to give useful gradients)."""
    if config.e2e_start == 0:
        return config.e2e_weight
    return config.e2e_weight * min(1.0, max(0.0, progress / config.e2e_start - 1.0))


def supervised_terms(estimator: ParamEstimator, output: EstimatorOutput, batch: Batch,
                     chain: Chain) -> dict[str, Tensor]:
    """The param model's parameter, presence and delay-bin losses against the batch's truth."""
    presence, target = batch["presence"], batch["params"]
    echo = chain.effect_names.index("echo")
    return {
        "param": parameter_loss(output.params, target, parameter_weights(chain, target, presence)),
        "presence": presence_loss(output.presence_logits, presence),
        "delay": delay_bin_loss(output.delay_logits, target[:, estimator.delay_column], presence[:, echo]),
    }


def training_loss(model: nn.Module, batch: Batch, config: TrainConfig, chain: Chain,
                  e2e_weight: float) -> tuple[Tensor, dict[str, float]]:
    """Weighted total loss and its terms for one batch; ``model`` may be DDP-wrapped. The param
    model's end-to-end term is computed only when ``e2e_weight`` > 0."""
    degraded, clean = batch["degraded"], batch["clean"]
    if config.model == "unet":
        restored = model(degraded)
        if config.level_matched:
            restored = match_peak(restored, clean)
        loss = reconstruction_loss(restored, clean, config.mrstft_weight, config.l1_weight)
        return loss, {"reconstruction": loss.item()}

    estimator: ParamEstimator = unwrap(model)
    output = model(degraded)
    terms = supervised_terms(estimator, output, batch, chain)
    weights = {"param": config.param_weight, "presence": config.presence_weight, "delay": config.delay_weight}
    if e2e_weight > 0:
        items = config.e2e_items or len(degraded)
        params = estimator.refine_delay(degraded[:items], output.params[:items])
        estimate = chain.from_vectors(torch.sigmoid(output.presence_logits[:items]), params)
        restored = chain.inverse(degraded[:items], estimate)
        if config.level_matched:
            restored = match_peak(restored, clean[:items])
        terms["e2e"] = reconstruction_loss(restored, clean[:items], config.mrstft_weight, config.l1_weight, robust=True)
        weights["e2e"] = e2e_weight
    loss = sum(weights[name] * value for name, value in terms.items())
    values = {name: value.item() for name, value in terms.items()}
    values.setdefault("e2e", math.nan)  # a fixed set of log columns, whether or not it ran
    return loss, values


@torch.no_grad()
def validate(model: nn.Module, batches: list[Batch], config: TrainConfig, chain: Chain) -> dict[str, float]:
    """Mean validation metrics of the restored audio (``mrstft``, ``si_sdr``, ``mrstft_level_matched``
    after scaling to the original's peak) and ``loss`` (the param
    model's: its supervised terms, weighted; the U-Net's: its training loss). The param model
    restores with its delay refined and each effect's inverse weighted by its presence probability,
    as at inference, and also reports its parameter error, presence accuracy (at 0.5), EQ gain error
    (dB) and median echo delay error."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    delay_errors_ms: list[Tensor] = []

    def add(name: str, value: Tensor | float) -> None:
        sums[name] = sums.get(name, 0.0) + float(value)

    for batch in batches:
        degraded, clean = batch["degraded"], batch["clean"]
        if isinstance(model, ParamEstimator):
            output = model(degraded)
            terms = supervised_terms(model, output, batch, chain)
            add("loss", config.param_weight * terms["param"] + config.presence_weight * terms["presence"]
                + config.delay_weight * terms["delay"])
            params = model.refine_delay(degraded, output.params)
            probability = torch.sigmoid(output.presence_logits)
            restored = chain.inverse(degraded, chain.from_vectors(probability, params))
            presence = (probability > 0.5).float()
            true_presence, target = batch["presence"], batch["params"]
            add("param_error", parameter_loss(params, target, parameter_weights(chain, target, true_presence)))
            add("presence_accuracy", (presence == true_presence).float().mean())
            estimated, true = chain.from_vectors(presence, params), chain.from_vectors(true_presence, target)
            eq_on = true_presence[:, chain.effect_names.index("eq")]
            gain_errors = torch.stack([(estimated["eq"][n] - true["eq"][n]).abs()
                                       for n in true["eq"] if n.endswith("_gain_db")], 1).mean(1)
            add("eq_gain_error_db", (eq_on * gain_errors).sum() / eq_on.sum().clamp_min(1))
            echo_on = true_presence[:, chain.effect_names.index("echo")] > 0
            delay_errors_ms.append((estimated["echo"]["delay_ms"] - true["echo"]["delay_ms"]).abs()[echo_on])
        else:
            restored = model(degraded)
            add("loss", reconstruction_loss(restored, clean, config.mrstft_weight, config.l1_weight))
        add("mrstft", mrstft_distance(restored, clean).mean())
        add("mrstft_level_matched", mrstft_distance(match_peak(restored, clean), clean).mean())
        add("si_sdr", si_sdr(restored, clean).mean())
    metrics = {name: value / len(batches) for name, value in sums.items()}
    if delay_errors_ms:
        errors = torch.cat(delay_errors_ms)
        metrics["median_delay_error_samples"] = (float(errors.median()) * config.sample_rate / 1000
                                                 if len(errors) else float("nan"))
    model.train(was_training)
    return metrics


def degraded_baseline(batches: list[Batch]) -> dict[str, float]:
    """MR-STFT (also level-matched) and SI-SDR of the degraded audio itself, the mark every
    restoration must beat."""
    metrics = {"degraded_mrstft": lambda d, c: mrstft_distance(d, c),
               "degraded_mrstft_level_matched": lambda d, c: mrstft_distance(match_peak(d, c), c),
               "degraded_si_sdr": si_sdr}
    return {name: sum(float(metric(b["degraded"], b["clean"]).mean()) for b in batches) / len(batches)
            for name, metric in metrics.items()}


def learning_rate_at(step: int, progress: float, config: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay over ``progress`` ∈ [0, 1] (or constant)."""
    warmup = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    if config.schedule == "constant":
        return config.learning_rate * warmup
    floor = config.min_learning_rate_ratio
    return config.learning_rate * warmup * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


# -- logging ---------------------------------------------------------------------------------------

class CsvLog:
    """Appends rows to a CSV file; columns are fixed by the first row. On resume, rows past the
    resumed step are dropped so the log reads as one run."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.columns: list[str] | None = None
        rows: list[dict[str, str]] = []
        if resume_step is not None and path.is_file():
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                self.columns = list(reader.fieldnames or []) or None
                rows = [row for row in reader if int(float(row["step"])) <= resume_step]
        self.handle = path.open("w", newline="")
        self.writer: csv.DictWriter | None = None
        if self.columns:
            self._start(self.columns)
            self.writer.writerows(rows)
            self.handle.flush()

    def _start(self, columns: list[str]) -> None:
        self.columns = columns
        self.writer = csv.DictWriter(self.handle, columns, extrasaction="ignore")
        self.writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            self._start(list(row))
        self.writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def _tensorboard(log_dir: Path) -> Any:
    """A TensorBoard writer when ``tensorboard`` is installed, else ``None``."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir))


# -- the loop --------------------------------------------------------------------------------------

@dataclass
class DistributedContext:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_option: str) -> DistributedContext:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1),
    with ``nccl`` on CUDA and ``gloo`` on CPU; a single process needs nothing."""
    use_cuda = device_option == "cuda" or (device_option == "auto" and torch.cuda.is_available())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext(0, 1, torch.device("cuda" if use_cuda else "cpu"))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, device)


@dataclass
class TrainResult:
    model: nn.Module
    step: int
    best_metric: float
    checkpoint_dir: Path
    log_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _agreed(value: float, context: DistributedContext) -> float:
    """Rank 0's ``value`` on every rank (keeps time-based stopping in lockstep)."""
    if context.world_size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=context.device)
    dist.broadcast(tensor, 0)
    return float(tensor)


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) training as :class:`TrainConfig` says; in a torchrun job every process calls this."""
    config.validate()
    context = setup_distributed(config.device)
    try:
        return _train(config, context)
    finally:
        if context.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _load_weights(model: nn.Module, checkpoint: dict[str, Any], path: Path, config: TrainConfig) -> None:
    """Load ``checkpoint``'s weights into ``model`` after checking it holds the same kind and size."""
    if checkpoint["model_kind"] != config.model or checkpoint["hyperparameters"] != model.hyperparameters:
        raise ValueError(f"{path} holds a {checkpoint['model_kind']} model with {checkpoint['hyperparameters']}, "
                         f"not the {config.model} model with {model.hyperparameters} this run asks for")
    model.load_state_dict(checkpoint["model"])


def _train(config: TrainConfig, context: DistributedContext) -> TrainResult:
    device = context.device
    checkpoint_dir, log_dir = Path(config.models_dir) / config.name, Path(config.logs_dir) / config.name
    last_path, best_path = checkpoint_dir / "last.pt", checkpoint_dir / "best.pt"

    torch.manual_seed(config.seed)  # same initial weights on every rank
    model = build_model(config.model, sample_rate=config.sample_rate, **config.model_args)
    window = int(config.window_seconds * config.sample_rate)
    if window < model.min_samples:
        raise ValueError(f"window_seconds = {config.window_seconds:g} gives {window} samples, but the {config.model} "
                         f"model needs at least {model.min_samples} ({model.min_samples / config.sample_rate:.2f} s "
                         f"at {config.sample_rate} Hz)")
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    chain = Chain(config.sample_rate, compressor_inverse_steps=config.compressor_inverse_steps)

    step, best_metric, elapsed_before = 0, math.inf, 0.0
    if config.resume:
        if not last_path.is_file():
            raise ValueError(f"nothing to resume: {last_path} does not exist")
        checkpoint = load_checkpoint(last_path, map_location=device)
        _load_weights(model, checkpoint, last_path, config)
        optimizer.load_state_dict(checkpoint["optimizer"])
        step, best_metric = checkpoint["step"], checkpoint["best_metric"]
        elapsed_before = checkpoint["elapsed_seconds"]
        _set_rng_state(checkpoint["rng_state"])
    elif last_path.exists():
        raise ValueError(f"{last_path} exists; pass --resume to continue that run or choose another --run-name")
    if config.init_from:
        _load_weights(model, load_checkpoint(config.init_from, map_location=device), Path(config.init_from), config)

    if context.world_size > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    model.train()

    train_batches = training_batches(config, device, context.rank, context.world_size, step)
    train_log = val_log = tensorboard = None
    val_set: list[Batch] = []
    baseline: dict[str, float] = {}
    if context.is_main:
        val_set = validation_batches(config, device)
        baseline = degraded_baseline(val_set)
        resume_step = step if config.resume else None
        train_log = CsvLog(log_dir / "train.csv", resume_step)
        val_log = CsvLog(log_dir / "val.csv", resume_step)
        (log_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        tensorboard = _tensorboard(log_dir)
        print(f"training {config.model} ({count_parameters(unwrap(model)):,} parameters) on {device} × "
              f"{context.world_size}, run {config.name}, from step {step}", flush=True)

    def checkpoint(path: Path, metrics: dict[str, float]) -> None:
        save_checkpoint(path, model, config.model, config.to_dict(), step, optimizer, best_metric=best_metric,
                        elapsed_seconds=elapsed, rng_state=_rng_state(), metrics=metrics)

    metrics: dict[str, float] = {}
    started = time.monotonic()
    elapsed = elapsed_before
    budget = config.max_minutes * 60
    try:
        while True:
            elapsed = _agreed(elapsed_before + time.monotonic() - started, context)
            progress = max(step / config.steps, elapsed / budget if budget else 0.0)
            if progress >= 1.0:
                break
            step_started = time.monotonic()
            learning_rate = learning_rate_at(step, progress, config)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate
            batch = next(train_batches)
            loss, terms = training_loss(model, batch, config, chain, e2e_weight_at(progress, config))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
            if math.isfinite(grad_norm):  # the norm is all-reduced, so every rank agrees
                optimizer.step()
            step += 1

            if context.is_main:
                row = {"step": step, "loss": loss.item(), **terms, "grad_norm": grad_norm, "lr": learning_rate,
                       "seconds": time.monotonic() - step_started, "skipped": int(not math.isfinite(grad_norm))}
                train_log.write(row)
                if tensorboard:
                    for name, value in row.items():
                        tensorboard.add_scalar(f"train/{name}", value, step)
                if step % config.log_every == 0 or step == 1:
                    detail = " ".join(f"{k} {v:.4f}" for k, v in terms.items())
                    print(f"step {step}/{config.steps} loss {loss.item():.4f} ({detail}) lr {learning_rate:.2e} "
                          f"{row['seconds']:.2f} s/step", flush=True)

            elapsed = _agreed(elapsed_before + time.monotonic() - started, context)
            finished = step >= config.steps or (budget and elapsed >= budget)
            if context.is_main and (step % config.val_every == 0 or finished):
                metrics = validate(model, val_set, config, chain)
                selected = metrics["mrstft_level_matched" if config.level_matched else "mrstft"]
                is_best = selected < best_metric
                if is_best:
                    best_metric = selected
                val_log.write({"step": step, **metrics, **baseline})
                if tensorboard:
                    for name, value in metrics.items():
                        tensorboard.add_scalar(f"val/{name}", value, step)
                print(f"validation at step {step}: " + " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
                      + f" (degraded: mrstft {baseline['degraded_mrstft']:.4g}, si_sdr "
                      f"{baseline['degraded_si_sdr']:.4g})" + (" — best so far" if is_best else ""), flush=True)
                if is_best:
                    checkpoint(best_path, metrics)
                checkpoint(last_path, metrics)
    finally:
        for log in (train_log, val_log):
            if log:
                log.close()
        if tensorboard:
            tensorboard.close()
    if context.world_size > 1:
        dist.barrier()
    return TrainResult(unwrap(model), step, best_metric, checkpoint_dir, log_dir, metrics)


# -- command line ----------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        result = train(config)
    except (ValueError, FileNotFoundError) as error:
        print(f"dmaster train: error: {error}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done at step {result.step}; best validation MR-STFT {result.best_metric:.4g}; "
              f"checkpoints in {result.checkpoint_dir}, logs in {result.log_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dmaster.train", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
