"""What degraded a track: the parameter model hears a short track whole, in one pass, and a longer one in
windows spread over it whose estimates are aggregated into one (the degradations are track-wide); the echo's
level is then read off the cepstra at the estimated delay."""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import features
from ..effects import Chain, ChainParams
from ..models import ParamEstimator
from .inputs import stereo

__all__ = ["ANALYSIS_SECONDS", "MAX_WINDOWS", "WHOLE_SECONDS", "aggregate", "analysis_windows", "estimate",
           "estimator_window", "measure_echo_level", "model_windows", "track_estimate"]

Tensor = torch.Tensor
MAX_WINDOWS = 8
ANALYSIS_SECONDS = 5.0
WHOLE_SECONDS = 60.0
"""The parameter model hears a track up to this long whole, in one pass: one estimate from all of it is better
than the aggregate of shorter windows' (measured on held-out excerpts of 10 to 60 s: ``docs/model_card.md``);
longer tracks in :data:`MAX_WINDOWS` windows of :data:`ANALYSIS_SECONDS` (on whole tracks one pass over their
middle minute measured no better, and over all of a long track it costs time and memory)."""
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


def estimator_window(model: ParamEstimator, samples: int) -> int:
    """Samples per analysis window of a track ``samples`` long: all of them up to :data:`WHOLE_SECONDS`, else
    :data:`ANALYSIS_SECONDS`; at least what the model needs (the estimator pools over time, so it takes windows
    longer than it was trained on).

    >>> model = ParamEstimator(width=8, hidden=64)
    >>> estimator_window(model, 10 * 44100) / 44100, estimator_window(model, 600 * 44100) / 44100
    (10.0, 5.0)
    """
    whole = samples <= WHOLE_SECONDS * model.sample_rate
    return max(model.min_samples, samples if whole else int(ANALYSIS_SECONDS * model.sample_rate))


def model_windows(model: nn.Module, audio: Tensor) -> Tensor:
    """The analysis windows ``(windows, 2, samples)`` of ``audio`` ``(channels, samples)`` at the model's rate
    that the parameter model hears (:func:`estimator_window`) and the residual correction measures."""
    samples = audio.shape[-1]
    window = (estimator_window(model, samples) if isinstance(model, ParamEstimator)
              else int(ANALYSIS_SECONDS * model.sample_rate))
    return analysis_windows(stereo(audio), window)


def measure_echo_level(model: ParamEstimator, windows: Tensor, params: ChainParams,
                       cepstrum: Tensor | None = None) -> ChainParams:
    """``params`` with the echo level read off the cepstral peak at its delay (:func:`features.echo_level`, on the
    cepstrum the delay was refined on, :meth:`~dmaster.models.ParamEstimator.echo_cepstrum`), the median over
    ``windows``.

    The network's level is a regression from its features; the peak's height measures the echo where the delay
    is right, and finds next to nothing (so the inverse does next to nothing) where it is not.

    Args:
        model: the parameter model the estimate came from.
        windows: ``(windows, channels, samples)`` the estimate came from.
        params: the track-wide estimate ``(1,)``.
        cepstrum: the model's echo cepstrum of ``windows``, when the caller has it already.

    Returns:
        ``params`` with ``echo.level_db`` measured (clamped to its range); the rest unchanged.
    """
    chain = model.chain
    spec = chain.specs[chain.effect_names.index("echo")].param("level_db")
    lag = params["echo"]["delay_ms"].double() * (chain.sample_rate / 1000)
    cepstrum = model.echo_cepstrum(windows) if cepstrum is None else cepstrum
    amplitude = features.echo_level(cepstrum, lag.expand(len(windows)), windows.shape[-1]).median()
    level_db = (20 * torch.log10(amplitude.clamp_min(1e-6))).clamp(spec.minimum, spec.maximum)
    return {**params, "echo": {**params["echo"], "level_db": level_db.reshape(1).to(params["echo"]["level_db"])}}


def track_estimate(model: ParamEstimator, windows: Tensor) -> ChainParams:
    """Track-wide estimate ``(1,)`` from the analysis ``windows`` (:func:`model_windows`): the per-window
    estimates aggregated (:func:`aggregate`), the echo level measured (:func:`measure_echo_level`) on the cepstra
    the delays were refined on."""
    cepstrum = model.echo_cepstrum(windows)
    params = aggregate(model.chain, model.estimate(windows, cepstrum=cepstrum))
    return measure_echo_level(model, windows, params, cepstrum)


@torch.no_grad()
def estimate(model: ParamEstimator, audio: Tensor) -> ChainParams:
    """Track-wide estimate ``(1,)`` (presence as a probability) of ``audio`` ``(channels, samples)`` at the
    model's rate."""
    return track_estimate(model, model_windows(model, audio))
