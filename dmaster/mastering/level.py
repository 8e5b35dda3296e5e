"""The output level: a loudness target reached under a peak ceiling with the lookahead limiter, or the
peak set to the ceiling, or the restored level kept under it."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..limiter import TRUE_PEAK_MARGIN_DB, limit_peaks, peak_db, peak_envelope
from ..loudness import ABSOLUTE_GATE_LUFS, integrated_loudness
from .chunks import in_chunks

__all__ = ["LOUDNESS_PASSES", "LOUDNESS_TOLERANCE_LU", "MAX_LIMITING_DB", "PEAK_CEILING_DB", "set_level", "to_loudness"]

Tensor = torch.Tensor
LOUDNESS_PASSES = 6
LOUDNESS_TOLERANCE_LU = 0.1
ENVELOPE_ROOM_DB = 2.0
"""How much louder than the gain it is first read for the input's peak envelope is read (the secant steps rarely
go further; past it, it is read again)."""
MISSED_TARGET_LU = 0.5
"""A loudness this far from its target is reported as missed, with the reason."""
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
    peak = peak_db(audio, true_peak)
    if not math.isfinite(peak):
        raise ValueError("the audio to set the level of is silent")
    aim_db = peak_ceiling_db - TRUE_PEAK_MARGIN_DB if true_peak else peak_ceiling_db
    if target_lufs is not None:
        loudness = integrated_loudness(audio, sample_rate)
        report.update(loudness_before_lufs=round(loudness, 2) if math.isfinite(loudness) else None,
                      target_lufs=target_lufs)
        if not math.isfinite(loudness):  # below BS.1770's absolute gate: measure it at the ceiling
            audio = _scaled(audio, aim_db - peak)
            peak, loudness = aim_db, integrated_loudness(audio, sample_rate)
        if not math.isfinite(loudness):
            report["target_missed"] = (f"the loudness cannot be measured: even at the peak ceiling every block is "
                                       f"below BS.1770's absolute gate ({ABSOLUTE_GATE_LUFS:g} LUFS)")
            return audio, report
        audio, reached, limiting_db = to_loudness(audio, sample_rate, loudness, peak, target_lufs, peak_ceiling_db,
                                                  true_peak)
        report["loudness_lufs"] = round(reached, 2) if math.isfinite(reached) else None
        if limiting_db < 0:
            report["peak_limiting_db"] = round(limiting_db, 2)
        if not abs(reached - target_lufs) <= MISSED_TARGET_LU:
            report["target_missed"] = _why_missed(reached, target_lufs, limiting_db)
        return audio, report
    if normalise_peak:
        audio = _scaled(audio, aim_db - peak)
        report["peak_normalisation_db"] = round(aim_db - peak, 2)
    elif peak > aim_db:
        audio = _scaled(audio, aim_db - peak)
        report["peak_reduction_db"] = round(aim_db - peak, 2)
    return audio, report


def _scaled(audio: Tensor, gain_db: float) -> Tensor:
    """``audio`` times a gain in dB, refused where the result would not be finite."""
    out = audio * 10 ** (gain_db / 20)
    if not torch.isfinite(out).all():
        raise ValueError(f"a gain of {gain_db:+.1f} dB would take the audio past the largest number its type holds")
    return out


def _why_missed(reached: float, target_lufs: float, limiting_db: float) -> str:
    """The report's words for a missed loudness target."""
    if not math.isfinite(reached):
        return (f"at the gain the target asks for every block is below BS.1770's absolute gate "
                f"({ABSOLUTE_GATE_LUFS:g} LUFS)")
    if reached < target_lufs and limiting_db <= -MAX_LIMITING_DB + 0.01:
        return f"reached {reached:.2f} LUFS: the limiter takes at most {MAX_LIMITING_DB:g} dB off a peak"
    return f"reached {reached:.2f} LUFS: the gating of BS.1770 makes the loudness move unevenly with the gain here"


def to_loudness(audio: Tensor, sample_rate: int, loudness: float, peak: float, target_lufs: float,
                peak_ceiling_db: float, true_peak: bool) -> tuple[Tensor, float, float]:
    """``audio`` at ``target_lufs``, its peaks limited to the ceiling (:mod:`dmaster.limiter`). Limiting
    lowers the loudness, so the gain is raised (secant steps on loudness against gain) until the output
    is within :data:`LOUDNESS_TOLERANCE_LU` of the target, in at most :data:`LOUDNESS_PASSES` passes,
    and never so far that the limiter takes more than :data:`MAX_LIMITING_DB` off a peak (the target is
    then missed). ``loudness`` and ``peak`` are the input's (LUFS; dBFS, or dBTP with ``true_peak``). Returns the
    output, its loudness and the limiter's largest gain reduction (dB, ≤ 0)."""
    max_gain_db = peak_ceiling_db + MAX_LIMITING_DB - peak
    gain_db = min(target_lufs - loudness, max_gain_db)
    envelope, floor_db = None, math.inf  # the input's peak envelope, read down to floor_db, scaled with the gain
    tried: list[tuple[float, float]] = []  # (gain, loudness reached)
    for _ in range(LOUDNESS_PASSES):
        limited = _scaled(audio, gain_db)
        limiting_db = min(0.0, peak_ceiling_db - peak - gain_db)
        if limiting_db < 0.0:
            if peak_ceiling_db - gain_db < floor_db:  # read once, with room for the next gains
                floor_db = peak_ceiling_db - TRUE_PEAK_MARGIN_DB - gain_db - ENVELOPE_ROOM_DB
                envelope = peak_envelope(audio[None], true_peak, floor_db)
            # long tracks in chunks (memory): the envelope, scaled with the gain, travels as one more row
            stacked = torch.cat([limited, envelope * 10 ** (gain_db / 20)])
            limited = in_chunks(stacked, lambda piece: torch.cat([limit_peaks(
                piece[None, :-1], sample_rate, peak_ceiling_db, true_peak=true_peak, envelope=piece[None, -1])[0],
                piece[-1:]]), sample_rate)[:-1]
        # measured, not assumed: gating makes loudness not quite scale with the gain (very quiet targets)
        reached = integrated_loudness(limited, sample_rate)
        tried.append((gain_db, reached))
        if abs(reached - target_lufs) <= LOUDNESS_TOLERANCE_LU or (gain_db >= max_gain_db and reached < target_lufs):
            break
        gain_db = _next_gain(tried, target_lufs, max_gain_db)
    return limited, reached, limiting_db


def _next_gain(tried: list[tuple[float, float]], target_lufs: float, max_gain_db: float) -> float:
    """The next gain to try: a secant step on loudness against gain (limiting harder gains less loudness per dB,
    between 0.1 and 1 dB a dB); where the gain left every block under BS.1770's gate (no loudness), half way
    towards the quietest louder gain whose loudness was measured (1 dB up when there is none)."""
    gain_db, reached = tried[-1]
    measured = [(g, r) for g, r in tried if math.isfinite(r)]
    if not math.isfinite(reached):
        louder = [g for g, _ in measured if g > gain_db]
        return (gain_db + min(louder)) / 2 if louder else gain_db + 1.0
    slope = 1.0
    if len(measured) > 1:
        (g0, r0), (g1, r1) = measured[-2], measured[-1]
        slope = min(1.0, max(0.1, (r1 - r0) / (g1 - g0))) if g1 != g0 else 1.0
    return min(gain_db + (target_lufs - reached) / slope, max_gain_db)
