"""What degraded a track: the parameter model listens to windows spread over it and its per-window
estimates are aggregated into one (the degradations are track-wide)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..effects import Chain, ChainParams
from ..models import ParamEstimator
from .inputs import stereo

__all__ = ["ANALYSIS_SECONDS", "MAX_WINDOWS", "aggregate", "analysis_windows", "estimate", "estimator_window",
           "model_windows"]

Tensor = torch.Tensor
MAX_WINDOWS = 8
ANALYSIS_SECONDS = 5.0
SILENT_WINDOW_DB = -60.0


def analysis_windows(audio: Tensor, window: int, max_windows: int = MAX_WINDOWS) -> Tensor:
    """Up to ``max_windows`` windows spread evenly over ``audio``, near-silent ones dropped unless all are.

    Args:
        audio: ``(channels, samples)``; a track shorter than one window is looped to fill it.
        window: samples per window.
        max_windows: most windows taken.

    Returns:
        ``(windows, channels, window)``.

    >>> analysis_windows(torch.ones(2, 10), 4).shape
    torch.Size([2, 2, 4])
    """
    samples = audio.shape[-1]
    if samples < window:
        audio = audio.repeat(1, math.ceil(window / samples))[:, :window]
        samples = window
    count = min(max_windows, max(1, samples // window))
    starts = [(samples - window) * i // max(count - 1, 1) for i in range(count)]  # exact integers at any length
    windows = torch.stack([audio[:, s : s + window] for s in starts])
    rms = windows.square().mean((1, 2)).sqrt()
    keep = rms > 10 ** (SILENT_WINDOW_DB / 20)
    return windows[keep] if keep.any() else windows


def aggregate(chain: Chain, estimates: ChainParams) -> ChainParams:
    """One track-wide estimate ``(1,)`` from per-window estimates ``(windows,)``: the mean presence
    probability and the median of each normalised parameter (robust to a window that hears it wrong)."""
    presence, normalised = chain.to_vectors(estimates)
    return chain.from_vectors(presence.mean(0, keepdim=True), normalised.median(0, keepdim=True).values)


def estimator_window(model: ParamEstimator) -> int:
    """Samples per analysis window: :data:`ANALYSIS_SECONDS`, or what the model needs if longer (the
    estimator pools over time, so it takes windows longer than it was trained on)."""
    return max(model.min_samples, int(ANALYSIS_SECONDS * model.sample_rate))


def model_windows(model: nn.Module, audio: Tensor) -> Tensor:
    """The analysis windows ``(windows, 2, samples)`` of ``audio`` ``(channels, samples)`` at the model's rate
    that the parameter model hears and the residual correction measures."""
    window = estimator_window(model) if isinstance(model, ParamEstimator) else int(ANALYSIS_SECONDS * model.sample_rate)
    return analysis_windows(stereo(audio), window)


@torch.no_grad()
def estimate(model: ParamEstimator, audio: Tensor) -> ChainParams:
    """Track-wide estimate ``(1,)`` (presence as a probability) of ``audio`` ``(channels, samples)`` at the
    model's rate."""
    return aggregate(model.chain, model.estimate(model_windows(model, audio)))
