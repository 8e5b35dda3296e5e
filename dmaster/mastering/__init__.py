"""``master(audio, sample_rate)``: estimate what degraded a track and undo it, then set its level.

The pipeline, one module a step, data flowing down:

* :mod:`.inputs` checks the audio and settings and converts the audio to the model's rate (and back);
* :mod:`.pretrained` resolves the model and the files fitted for it (residual correction, policy);
* :mod:`.estimation` has the parameter model listen to windows spread over the track and aggregates its
  estimates (the degradations are track-wide);
* :mod:`.restoration` runs the chain's inverse over the whole track, each effect weighted by its correction
  strength, with the residual correction in the same pass (or the U-Net, in cross-faded chunks);
* :mod:`.level` sets the output level: a loudness target under a peak ceiling, or the peak kept under it;
* :mod:`.report` writes the JSON report (and reads it back, to apply an earlier estimate again).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from ..loudness import measure_levels
from ..models import ParamEstimator
from .inputs import (
    MAX_RATE,
    MIN_RATE,
    Audio,
    as_channels_first,
    check_flags,
    check_keep,
    check_sample_rate,
    check_settings,
    like_input,
    resample,
    resampled_length,
)
from .level import MAX_LIMITING_DB, PEAK_CEILING_DB, set_level
from .pretrained import ModelChoice, resolve_model, resolve_policy, resolve_residual
from .reference import match_reference, prepare_reference
from .report import describe_correction, describe_estimate, read_report
from .restoration import apply_estimate, restore, scaled_strengths

Tensor = torch.Tensor

__all__ = ["MAX_LIMITING_DB", "MAX_RATE", "MIN_RATE", "PEAK_CEILING_DB", "MasterResult", "master"]


@dataclass
class MasterResult:
    """What :func:`master` returns."""

    audio: Audio
    """Mastered audio, same type, dtype, layout and length as the input."""
    sample_rate: int
    report: dict[str, Any] = field(default_factory=dict)
    """JSON-ready: per effect, the presence probability, the estimated degradation in physical units and
    the correction applied; the residual correction; the input's levels as given and the output's (loudness,
    loudness range, true peak, peak to loudness) and how the output level was set."""

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text."""
        return json.dumps(self.report, indent=indent)


def master(audio: Audio, sample_rate: int, *, model: ModelChoice = None, target_lufs: float | None = None,
           peak_ceiling_db: float = PEAK_CEILING_DB, normalise_peak: bool = False, true_peak: bool = False,
           correct_residual: bool = True, keep: str | Iterable[str] = (), amount: float = 1.0,
           report: Mapping[str, Any] | str | Path | None = None,
           reference: Audio | str | Path | None = None, reference_sample_rate: int | None = None,
           ambience: bool = False, progress: Callable[[str], None] | None = None) -> MasterResult:
    """Master ``audio``: estimate what degraded it, undo that, and set the output level.

    Args:
        audio: numpy or torch, ``(channels, samples)`` or ``(samples,)``, any float dtype or int16/int32 PCM.
        sample_rate: Hz, in [8000, 384000]; the model works at its own rate, the result comes back at this one.
        model: ``None`` (the shipped parameter model), ``"unet"`` (the shipped baseline), a checkpoint path
            or a loaded model.
        target_lufs: integrated loudness (LUFS, ITU-R BS.1770) to normalise to, in [−60, 0], the peaks limited to
            the ceiling by a lookahead limiter. Without it the restored level is kept under the ceiling.
        peak_ceiling_db: the highest peak of the output, dBFS (or dBTP with ``true_peak``).
        normalise_peak: set the peak to the ceiling (not with ``target_lufs``).
        true_peak: the ceiling counts the peaks between the samples too (ITU-R BS.1770-4 true peak, as any of the
            interpolators meters are built with reads it: :func:`dmaster.limiter.peak_envelope`).
        correct_residual: apply the model's residual correction of tonal balance and level, read from next
            to its checkpoint (a loaded module has none).
        keep: effects to leave in, e.g. ``"reverb"`` when the room is wanted; they are still estimated and
            reported.
        amount: how much of the correction to apply, 0–1: every effect's correction strength and the residual
            correction (dB) scaled by it (for the U-Net, its mask's dB); 0 leaves the audio as it is but for
            the level.
        report: an earlier result's ``report`` (or the path of its JSON) whose estimate, inverse strengths
            and residual correction are applied instead of estimating anew: the same correction for another
            mix, or an estimate edited by hand.
        reference: a track to sound like (array/tensor, or the path of an audio file): instead of undoing
            an estimated degradation, the mix takes the reference's tonal balance, level and dynamics (the
            input's estimated EQ, gain and compressor undone, the reference's applied, the EQ then refined
            towards the reference's long-term spectrum; :mod:`dmaster.mastering.reference`), and the reference's
            loudness unless ``target_lufs`` is given. ``keep`` leaves those of the input's effects as they
            are; ``amount`` scales the whole change. Parameter model only.
        reference_sample_rate: the reference array's rate in Hz (default ``sample_rate``), an integer in
            [8000, 384000]; ignored for a path (a file says its rate).
        ambience: with a reference, also swap echo and reverb (the input's removed, the reference's added).
        progress: called with the name of each stage as it starts.

    Returns:
        The mastered audio in the input's type, dtype, layout and length, and the report.

    Example:
        >>> import numpy as np
        >>> from dmaster.synth import music_like
        >>> clip = music_like(1.0, 44100, 2, seed=0).numpy()
        >>> result = master(clip, 44100, target_lufs=-14.0)
        >>> result.audio.shape == clip.shape, round(result.report["output"]["loudness_lufs"])
        (True, -14)
    """
    check_flags(normalise_peak=normalise_peak, true_peak=true_peak, correct_residual=correct_residual,
                ambience=ambience)
    if reference is not None and report is not None:
        raise ValueError("reference and report each say what to apply; give one")
    if reference is not None and normalise_peak:
        raise ValueError("normalise_peak and reference each set the output level (a reference sets its loudness)")
    if reference is None and ambience:
        raise ValueError("ambience swaps the reference's echo and reverb in: it needs a reference")
    if reference_sample_rate is not None:
        check_sample_rate(reference_sample_rate, "reference_sample_rate")
    progress = progress or (lambda stage: None)
    check_sample_rate(sample_rate)
    check_settings(target_lufs, peak_ceiling_db, amount, normalise_peak)
    tensor, mono = as_channels_first(audio)
    levels = measure_levels(tensor, int(sample_rate))  # the input's, before anything
    network = resolve_model(model)
    keep = check_keep(keep, network)
    rate, samples = int(sample_rate), tensor.shape[-1]
    working = resample(tensor, rate, network.sample_rate, resampled_length(samples, rate, network.sample_rate))
    if reference is not None:
        progress("matching the reference")
        matched, written = _match(working, reference, reference_sample_rate or rate, network, amount, keep, ambience)
        if target_lufs is None:
            target_lufs = written["reference"]["reference_loudness_lufs"]
        restored = resample(matched, network.sample_rate, rate, samples)
        progress("setting the level")
        restored, written["output"] = set_level(restored, rate, target_lufs, peak_ceiling_db, False, true_peak)
        return _result(restored, audio, mono, rate, {**written, "input": levels})
    if report is None:
        progress("estimating and restoring")
        policy = resolve_policy(model)
        policy = policy._replace(strength={**policy.strength, **dict.fromkeys(keep, 0.0)})
        residual = resolve_residual(model) if correct_residual else None
        restored, estimate, correction, inverse_strength = restore(network, working, policy, residual, amount)
    else:
        progress("restoring")
        estimate, inverse_strength, correction = read_report(report, network)
        inverse_strength = scaled_strengths(network.chain, {**inverse_strength, **dict.fromkeys(keep, 0.0)}, amount)
        correction = correction.scaled(amount) if correct_residual and correction is not None else None
        restored = apply_estimate(network.chain, working, estimate, inverse_strength, correction)
    written: dict[str, Any] = {"model": "unet", "mask_strength": policy.mask * amount} if estimate is None else {
        "model": "param", "effects": describe_estimate(network.chain, estimate, inverse_strength)}
    if report is not None:
        written["estimate_given"] = True
    if keep:
        written["kept"] = list(keep)
    written["amount"] = amount
    if correction is not None:
        written["residual_correction"] = describe_correction(correction)
    restored = resample(restored, network.sample_rate, rate, samples)
    progress("setting the level")
    restored, written["output"] = set_level(restored, rate, target_lufs, peak_ceiling_db, normalise_peak, true_peak)
    return _result(restored, audio, mono, rate, {**written, "input": levels})


def _result(restored: Tensor, audio: Audio, mono: bool, rate: int, report: dict[str, Any]) -> MasterResult:
    """The result in the input's form, the output's measured levels (:func:`dmaster.loudness.measure_levels`)
    added to the report's ``output`` section."""
    report["output"].update(measure_levels(restored, rate))
    return MasterResult(like_input(restored, audio, mono), rate, report)


def _match(audio: Tensor, reference: Audio | str | Path, reference_rate: int, model: nn.Module, amount: float,
           keep: tuple[str, ...], ambience: bool) -> tuple[Tensor, dict[str, Any]]:
    """Reference mode: ``audio`` at the model's rate matched to ``reference``, and the report so far."""
    if not isinstance(model, ParamEstimator):
        raise ValueError("a reference needs the parameter model; the U-Net has no parameters to swap")
    prepared = prepare_reference(reference, reference_rate, model.sample_rate)
    matched, details = match_reference(audio, prepared, model, amount=amount, keep=keep, ambience=ambience)
    return matched, {"model": "param", "reference": details, "kept": list(keep), "amount": amount}
