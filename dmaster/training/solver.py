"""The optimisation loop of one training run: steps, validation, checkpoints and resuming.

Checkpoints go to ``MODELS_DIR/RUN/``: ``last.pt`` at every validation, ``best.pt`` when the
validation MR-STFT of the restored audio (level-matched with ``level_matched``) is the lowest so
far. Besides the weights they hold the optimiser state, the step, the best metric, the training
time and the RNG state, so that ``resume`` continues the run as if it had not stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..checkpoint import load_checkpoint, save_checkpoint, unwrap
from ..data.datasets import Batch
from ..effects import Chain
from ..models import build_model, count_parameters
from .batches import training_batches, validation_batches
from .config import TrainConfig, parse_scales
from .distrib import DistributedContext, leave_distributed, main_rank_value, setup_distributed, wait_for_all
from .logs import RunLog
from .objective import training_loss
from .schedule import e2e_weight_at, learning_rate_at
from .validation import degraded_baseline, validate

__all__ = ["Solver", "TrainResult", "train"]


@dataclass
class TrainResult:
    """What a finished run leaves.

    Args:
        model: the trained model (unwrapped from ``DistributedDataParallel``), on the training device.
        step: optimiser steps taken in all.
        best_metric: the lowest validation MR-STFT of the run (``inf`` on ranks other than 0).
        checkpoint_dir: ``MODELS_DIR/RUN``, holding ``best.pt`` and ``last.pt``.
        log_dir: ``LOGS_DIR/RUN``, holding the CSV logs.
        metrics: the last validation's metrics (empty on ranks other than 0).
    """

    model: nn.Module
    step: int
    best_metric: float
    checkpoint_dir: Path
    log_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) training as ``config`` says; in a ``torchrun`` job every process calls this.

    Args:
        config: the run's settings; checked first (``ValueError`` names a bad one).

    Returns:
        The trained model and where its checkpoints and logs are.
    """
    config.validate()
    context = setup_distributed(config.device)
    try:
        return Solver(config, context).run()
    finally:
        leave_distributed(context)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _load_weights(model: nn.Module, checkpoint: dict[str, Any], path: Path, config: TrainConfig) -> None:
    """Load ``checkpoint``'s weights into ``model`` after checking it holds the same kind and size, or the same
    but for branches ``model`` adds that start as no change (``ParamEstimator.grown_from``): those keep their
    initial weights."""
    grown = getattr(model, "grown_from", lambda stored: () if stored == model.hyperparameters else None)
    added = grown(checkpoint["hyperparameters"]) if checkpoint["model_kind"] == config.model else None
    if added is None:
        raise ValueError(f"{path} holds a {checkpoint['model_kind']} model with {checkpoint['hyperparameters']}, "
                         f"not the {config.model} model with {model.hyperparameters} this run asks for")
    missing, unexpected = model.load_state_dict(checkpoint["model"], strict=not added)
    if unexpected or any(not key.startswith(added) for key in missing):
        raise ValueError(f"{path}: weights do not fit the {config.model} model (missing {missing}, "
                         f"unexpected {unexpected})")


def parameter_groups(model: nn.Module, scales: dict[str, float]) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: one per learning-rate ``scale`` (the first of ``scales``' name prefixes
    that a parameter's name starts with; 1 for the rest), each with its ``"scale"``.

    Raises:
        ValueError: a prefix that names no parameter of ``model``.
    """
    groups: dict[float, list[nn.Parameter]] = {1.0: []}
    for name, parameter in model.named_parameters():
        scale = next((s for prefix, s in scales.items() if name.startswith(prefix)), 1.0)
        groups.setdefault(scale, []).append(parameter)
    unused = [prefix for prefix in scales if not any(n.startswith(prefix) for n, _ in model.named_parameters())]
    if unused:
        raise ValueError(f"learning_rate_scales: no weights of the model start with {', '.join(unused)}")
    return [{"params": parameters, "scale": scale} for scale, parameters in groups.items() if parameters]


class Solver:
    """One run's model, optimiser and progress, and the loop that advances them.

    Building it seeds the weights, and with ``resume`` restores the run from its ``last.pt``
    (weights, optimiser, step, time, RNG) or with ``init_from`` loads another run's weights.

    Args:
        config: the run's settings, already validated.
        context: this process's place in the job (:func:`~dmaster.training.distrib.setup_distributed`).
    """

    def __init__(self, config: TrainConfig, context: DistributedContext):
        self.config, self.context = config, context
        self.checkpoint_dir, self.log_dir = Path(config.models_dir) / config.name, Path(config.logs_dir) / config.name
        self.last_path, self.best_path = self.checkpoint_dir / "last.pt", self.checkpoint_dir / "best.pt"

        torch.manual_seed(config.seed)  # same initial weights on every rank
        model = build_model(config.model, sample_rate=config.sample_rate, **config.model_args)
        window = int(config.window_seconds * config.sample_rate)
        if window < model.min_samples:
            raise ValueError(f"window_seconds = {config.window_seconds:g} gives {window} samples, but the "
                             f"{config.model} model needs at least {model.min_samples} "
                             f"({model.min_samples / config.sample_rate:.2f} s at {config.sample_rate} Hz)")
        model.to(context.device)
        self.optimizer = torch.optim.Adam(parameter_groups(model, parse_scales(config.learning_rate_scales)),
                                          lr=config.learning_rate, weight_decay=config.weight_decay)
        self.chain = Chain(config.sample_rate, compressor_inverse_steps=config.compressor_inverse_steps)
        self.step, self.best_metric, self.elapsed_before = 0, math.inf, 0.0
        self.elapsed = 0.0
        self._restore(model)
        if context.world_size > 1:
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[context.device.index] if context.device.type == "cuda" else None)
        model.train()
        self.model = model

    def _restore(self, model: nn.Module) -> None:
        """Continue from ``last.pt`` (``resume``) or refuse to overwrite it; then apply ``init_from``."""
        config, device = self.config, self.context.device
        if config.resume:
            if not self.last_path.is_file():
                raise ValueError(f"nothing to resume: {self.last_path} does not exist")
            checkpoint = load_checkpoint(self.last_path, map_location=device)
            _load_weights(model, checkpoint, self.last_path, config)
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.step, self.best_metric = checkpoint["step"], checkpoint["best_metric"]
            self.elapsed_before = checkpoint["elapsed_seconds"]
            _set_rng_state(checkpoint["rng_state"])
        elif self.last_path.exists():
            raise ValueError(f"{self.last_path} exists; pass --resume to continue that run or choose another "
                             f"--run-name")
        if config.init_from:
            _load_weights(model, load_checkpoint(config.init_from, map_location=device), Path(config.init_from),
                          config)

    def run(self) -> TrainResult:
        """Train until ``steps`` or ``max_minutes`` runs out, validating and checkpointing on rank 0."""
        config, context = self.config, self.context
        batches = training_batches(config, context.device, context.rank, context.world_size, self.step)
        log: RunLog | None = None
        val_set: list[Batch] = []
        baseline: dict[str, float] = {}
        if context.is_main:
            val_set = validation_batches(config, context.device)
            baseline = degraded_baseline(val_set)
            log = RunLog(self.log_dir, config, self.step if config.resume else None)
            print(f"training {config.model} ({count_parameters(unwrap(self.model)):,} parameters) on "
                  f"{context.device} × {context.world_size}, run {config.name}, from step {self.step}", flush=True)

        metrics: dict[str, float] = {}
        started = time.monotonic()
        self.elapsed = self.elapsed_before
        budget = config.max_minutes * 60
        try:
            while True:
                self.elapsed = main_rank_value(self.elapsed_before + time.monotonic() - started, context)
                progress = max(self.step / config.steps, self.elapsed / budget if budget else 0.0)
                if progress >= 1.0:
                    break
                row, terms = self._optimise(batches, progress)
                if log:
                    log.training_step(row, terms)
                self.elapsed = main_rank_value(self.elapsed_before + time.monotonic() - started, context)
                finished = self.step >= config.steps or (budget and self.elapsed >= budget)
                if log and (self.step % config.val_every == 0 or finished):
                    metrics = self._validate(val_set, baseline, log)
        finally:
            if log:
                log.close()
        wait_for_all(context)
        return TrainResult(unwrap(self.model), self.step, self.best_metric, self.checkpoint_dir, self.log_dir, metrics)

    def _optimise(self, batches: Iterator[Batch], progress: float) -> tuple[dict[str, Any], dict[str, float]]:
        """One optimiser step on the next batch: its ``train.csv`` row and its loss terms."""
        config = self.config
        step_started = time.monotonic()
        learning_rate = learning_rate_at(self.step, progress, config)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate * group.get("scale", 1.0)
        batch = next(batches)
        loss, terms = training_loss(self.model, batch, config, self.chain, e2e_weight_at(progress, config))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip))
        if math.isfinite(grad_norm):  # the norm is all-reduced, so every rank agrees
            self.optimizer.step()
        self.step += 1
        row = {"step": self.step, "loss": loss.item(), **terms, "grad_norm": grad_norm, "lr": learning_rate,
               "seconds": time.monotonic() - step_started, "skipped": int(not math.isfinite(grad_norm))}
        return row, terms

    def _validate(self, val_set: list[Batch], baseline: dict[str, float], log: RunLog) -> dict[str, float]:
        """Validate, log, and write ``best.pt`` (when best so far) and ``last.pt``; return the metrics."""
        metrics = validate(self.model, val_set, self.config, self.chain)
        selected = metrics["mrstft_level_matched" if self.config.level_matched else "mrstft"]
        is_best = selected < self.best_metric
        if is_best:
            self.best_metric = selected
        log.validation(self.step, metrics, baseline, is_best)
        if is_best:
            self._save(self.best_path, metrics)
        self._save(self.last_path, metrics)
        return metrics

    def _save(self, path: Path, metrics: dict[str, float]) -> None:
        save_checkpoint(path, self.model, self.config.model, self.config.to_dict(), self.step, self.optimizer,
                        best_metric=self.best_metric, elapsed_seconds=self.elapsed, rng_state=_rng_state(),
                        metrics=metrics)
