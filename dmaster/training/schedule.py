"""How the learning rate and the end-to-end loss weight follow a run's progress.

``progress`` is the fraction of the run done, 0 … 1: of its steps, or of its time budget when
that runs out first.
"""

from __future__ import annotations

import math

from .config import TrainConfig

__all__ = ["e2e_weight_at", "learning_rate_at"]


def learning_rate_at(step: int, progress: float, config: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay over ``progress`` (or constant).

    Args:
        step: optimiser steps taken so far.
        progress: fraction of the run done, 0 … 1.
        config: ``learning_rate``, ``warmup_steps``, ``schedule`` and ``min_learning_rate_ratio``.

    Returns:
        The learning rate of the next step.

    >>> config = TrainConfig(learning_rate=1e-3, warmup_steps=4, schedule="constant")
    >>> learning_rate_at(1, 0.5, config)
    0.0005
    """
    warmup = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    if config.schedule == "constant":
        return config.learning_rate * warmup
    floor = config.min_learning_rate_ratio
    return config.learning_rate * warmup * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def e2e_weight_at(progress: float, config: TrainConfig) -> float:
    """The end-to-end loss weight: 0 until ``e2e_start``, then a linear ramp to ``e2e_weight``.

    The supervised terms first bring the estimate close enough for the chain inverse to give
    useful gradients.

    Args:
        progress: fraction of the run done, 0 … 1.
        config: ``e2e_weight`` and ``e2e_start``.

    >>> config = TrainConfig(e2e_weight=0.5, e2e_start=0.25)
    >>> e2e_weight_at(0.25, config), e2e_weight_at(0.375, config), e2e_weight_at(0.9, config)
    (0.0, 0.25, 0.5)
    """
    if config.e2e_start == 0:
        return config.e2e_weight
    return config.e2e_weight * min(1.0, max(0.0, progress / config.e2e_start - 1.0))
