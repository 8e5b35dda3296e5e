"""The output level: a loudness target reached under a peak ceiling with the lookahead limiter, or the
peak set to the ceiling, or the restored level kept under it."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..limiter import limit_peaks, peak_db, peak_envelope
from ..loudness import ABSOLUTE_GATE_LUFS, integrated_loudness
from .chunks import in_chunks

__all__ = ["LOUDNESS_PASSES", "LOUDNESS_TOLERANCE_LU", "MAX_LIMITING_DB", "PEAK_CEILING_DB", "set_level", "to_loudness"]

Tensor = torch.Tensor
LOUDNESS_PASSES = 4
LOUDNESS_TOLERANCE_LU = 0.1
MAX_LIMITING_DB = 12.0
"""The most the limiter may take off a peak to reach a loudness target; louder targets are missed."""
PEAK_CEILING_DB = -1.0
"""``master()``'s default peak ceiling, dBFS: the level every benchmark and fit scores its output at."""


def set_level(audio: Tensor, sample_rate: int, target_lufs: float | None, peak_ceiling_db: float,
              normalise_peak: bool = False, true_peak: bool = False) -> tuple[Tensor, dict[str, Any]]:
    """Set the output level of ``audio``.

    With ``target_lufs``, the loudness is normalised to it with the peaks limited to the ceiling
    (:func:`to_loudness`); else, with ``normalise_peak``, the peak is set to the ceiling; else a gain keeps
    the peak under it. Without a loudness target the whole track is turned down rather than limited: the
    restored level is an estimate, and a restoration that peaks over the ceiling is more often too loud
    than too peaky.

    Args:
        audio: ``(channels, samples)``.
        sample_rate: Hz.
        target_lufs: integrated loudness (LUFS) wanted, or ``None``.
        peak_ceiling_db: dBFS (sample peak), or dBTP with ``true_peak``.
        normalise_peak: set the peak to the ceiling.
        true_peak: count the peaks between the samples too (:func:`dmaster.limiter.peak_envelope`).

    Returns:
        The audio and the report's ``output`` section (what was done, the loudness reached).
    """
    report: dict[str, Any] = {"peak_ceiling_db": peak_ceiling_db, "true_peak": true_peak}
    if target_lufs is not None:
        loudness = integrated_loudness(audio, sample_rate)
        if not math.isfinite(loudness):  # below BS.1770's absolute gate: measure it at the ceiling
            audio = audio * (10 ** (peak_ceiling_db / 20) / float(peak_envelope(audio[None], true_peak).max()))
            loudness = integrated_loudness(audio, sample_rate)
        if not math.isfinite(loudness):
            report["target_missed"] = (f"the loudness cannot be measured: even at the peak ceiling every block is "
                                       f"below BS.1770's absolute gate ({ABSOLUTE_GATE_LUFS:g} LUFS)")
            return audio, report
        audio, reached, limiting_db = to_loudness(audio, sample_rate, loudness, target_lufs, peak_ceiling_db,
                                                  true_peak)
        report.update(loudness_before_lufs=round(loudness, 2), target_lufs=target_lufs, loudness_lufs=round(reached, 2))
        if limiting_db < 0:
            report["peak_limiting_db"] = round(limiting_db, 2)
        return audio, report
    peak = float(peak_envelope(audio[None], true_peak).max())
    ceiling = 10 ** (peak_ceiling_db / 20)
    if normalise_peak and peak > 0:
        audio = audio * (ceiling / peak)
        report["peak_normalisation_db"] = round(20 * math.log10(ceiling / peak), 2)
    elif peak > ceiling:
        audio = audio * (ceiling / peak)
        report["peak_reduction_db"] = round(20 * math.log10(ceiling / peak), 2)
    return audio, report


def to_loudness(audio: Tensor, sample_rate: int, loudness: float, target_lufs: float, peak_ceiling_db: float,
                true_peak: bool) -> tuple[Tensor, float, float]:
    """``audio`` at ``target_lufs``, its peaks limited to the ceiling (:mod:`dmaster.limiter`). Limiting
    lowers the loudness, so the gain is raised (secant steps on loudness against gain) until the output
    is within :data:`LOUDNESS_TOLERANCE_LU` of the target, in at most :data:`LOUDNESS_PASSES` passes,
    and never so far that the limiter takes more than :data:`MAX_LIMITING_DB` off a peak (the target is
    then missed). Returns the output, its loudness and the limiter's largest gain reduction (dB, ≤ 0)."""
    peak = peak_db(audio, true_peak)
    max_gain_db = peak_ceiling_db + MAX_LIMITING_DB - peak
    gain_db, previous, slope = min(target_lufs - loudness, max_gain_db), None, 1.0
    for _ in range(LOUDNESS_PASSES):
        limited = audio * 10 ** (gain_db / 20)
        limiting_db = min(0.0, peak_ceiling_db - peak - gain_db)
        if limiting_db < 0.0:
            limited = in_chunks(limited, lambda piece: limit_peaks(piece[None], sample_rate, peak_ceiling_db,
                                                                   true_peak=true_peak)[0], sample_rate)
        # measured, not assumed: gating makes loudness not quite scale with the gain (very quiet input)
        reached = integrated_loudness(limited, sample_rate)
        if abs(reached - target_lufs) <= LOUDNESS_TOLERANCE_LU or gain_db >= max_gain_db:
            break
        if previous is not None:  # limiting harder gains less loudness per dB of gain
            slope = min(1.0, max(0.1, (reached - previous[1]) / (gain_db - previous[0])))
        previous = gain_db, reached
        gain_db = min(gain_db + (target_lufs - reached) / slope, max_gain_db)
    return limited, reached, limiting_db
