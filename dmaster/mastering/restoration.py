"""Undoing the degradations of a whole track: the chain's inverse with an estimate, each effect weighted
by its correction strength, plus the residual correction; or the U-Net, in cross-faded chunks.

The words (defined once, in ``docs/mastering.md``): a model's **inverse strength** per effect (fitted,
next to its checkpoint), the user's **amount** (0–1, scales every correction), and the **correction
strength** actually applied to an effect's inverse: presence probability × inverse strength × amount,
0 below :data:`MIN_PRESENCE` or below the effect's fitted **threshold**.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from ..effects import Chain, ChainParams, ExtraResponse
from ..effects.lti import apply_response, convolution_size
from ..models import SpectrogramUNet
from ..residual import ResidualCorrection, extra_response
from .chunks import in_chunks
from .estimation import model_windows, track_estimate
from .pretrained import EVIDENCE, NO_POLICY, Policy

__all__ = ["MIN_PRESENCE", "Correction", "Restoration", "apply_estimate", "calibrate",
           "correction_strengths", "decide", "filter_with", "fix_probability", "gated_strengths", "invert",
           "restore", "scaled_strengths"]

Tensor = torch.Tensor
MIN_PRESENCE = 0.05
"""Effects less likely than this are left alone (not inverted at all)."""
UNET_CHUNK_SECONDS = 20.0
UNET_OVERLAP_SECONDS = 1.0


class Correction(NamedTuple):
    """A residual correction of tonal balance and level."""

    bands_db: Tensor
    """``(40,)`` float64: dB per band of :data:`dmaster.residual.BAND_EDGES_HZ`."""
    level_db: float

    def scaled(self, amount: float) -> Correction:
        """The correction with both parts (in dB) times ``amount``."""
        return Correction(self.bands_db * amount, self.level_db * amount)


class Restoration(NamedTuple):
    """What :func:`restore` returns."""

    audio: Tensor
    """``(channels, samples)`` at the model's sample rate."""
    params: ChainParams | None
    """The parameter estimate ``(1,)``; ``None`` for the U-Net."""
    correction: Correction | None = None
    """The residual correction applied; ``None`` when none was."""
    strength: dict[str, float] | None = None
    """Per effect, the inverse strength applied (0 where the presence was below its threshold); ``None`` for
    the U-Net."""


def correction_strengths(params: ChainParams, inverse_strength: dict[str, float] | None = None) -> ChainParams:
    """``params`` with each effect's presence probability turned into its correction strength: the
    probability times its ``inverse_strength`` (default 1), or 0 below :data:`MIN_PRESENCE`."""
    inverse_strength = inverse_strength or {}
    return {name: {**effect, "present": effect["present"] * (effect["present"] >= MIN_PRESENCE)
                   * inverse_strength.get(name, 1.0)}
            for name, effect in params.items()}


def calibrate(params: ChainParams, calibration: dict[str, Sequence[float]] | None) -> ChainParams:
    """``params`` with each effect's presence probability ``p`` calibrated: ``sigmoid(a * logit(p) + b)`` with the
    effect's ``[a, b]`` from ``calibration`` (fitted on held-out music by ``recipes/fit_policy.py``), plus
    ``c * (value - reference) / scale`` with ``[a, b, c]`` for an effect of :data:`EVIDENCE` (its measurement as
    more evidence); effects it does not name, and every effect when it is ``None``, keep ``p``.

    >>> chain = Chain(44100)
    >>> params = chain.sample_params(1, torch.Generator().manual_seed(0))
    >>> params["eq"]["present"] = torch.tensor([0.8])
    >>> round(float(calibrate(params, {"eq": [2.0, -3.0]})["eq"]["present"]), 3)  # logit 0.8 = 1.386
    0.443
    >>> params["echo"]["present"], params["echo"]["level_db"] = torch.tensor([0.5]), torch.tensor([-10.0])
    >>> round(float(calibrate(params, {"echo": [1.0, 0.0, 2.0]})["echo"]["present"]), 3)  # sigmoid(2)
    0.881
    """
    if not calibration:
        return params
    out = dict(params)
    for name, values in calibration.items():
        p = params[name]["present"].clamp(1e-6, 1 - 1e-6)
        logit = values[0] * torch.logit(p) + values[1]
        if len(values) == 3:
            key, reference, scale = EVIDENCE[name]
            logit = logit + values[2] * (params[name][key].to(logit) - reference) / scale
        out[name] = {**params[name], "present": torch.sigmoid(logit)}
    return out


def fix_probability(params: ChainParams) -> Tensor:
    """The probability that anything is to be fixed, ``1 - prod(1 - p)`` over the effects' presence
    probabilities (as if independent): ``(batch,)``."""
    return 1 - torch.stack([1 - effect["present"] for effect in params.values()]).prod(0)


def decide(params: ChainParams, correction: Correction | None, calibration: dict[str, Sequence[float]] | None,
           residual_strength: float = 1.0) -> tuple[ChainParams, Correction | None]:
    """The estimate with its presence calibrated (:func:`calibrate`), and the residual ``correction`` times
    ``residual_strength`` and, when the presence is calibrated, times the probability that anything is to be
    fixed (:func:`fix_probability`): music that needs nothing gets neither inverse nor correction."""
    params = calibrate(params, calibration)
    if correction is None:
        return params, None
    gate = float(fix_probability(params)[0]) if calibration else 1.0
    return params, correction.scaled(residual_strength * gate)


def gated_strengths(params: ChainParams, inverse_strength: dict[str, float] | None,
                    threshold: dict[str, float] | None) -> dict[str, float]:
    """Every effect's inverse strength (missing: 1), but 0 where the presence probability of ``params`` (a
    batch of one) is below the effect's ``threshold`` (missing: 0).

    >>> params = Chain(44100).sample_params(1, torch.Generator().manual_seed(0))
    >>> params["echo"]["present"] = torch.tensor([0.6])
    >>> strengths = gated_strengths(params, {"eq": 0.5}, {"echo": 0.7})
    >>> {name: strengths[name] for name in ("eq", "gain", "echo")}
    {'eq': 0.5, 'gain': 1.0, 'echo': 0.0}
    >>> set(strengths) == set(params)                    # every effect
    True
    """
    inverse_strength, threshold = inverse_strength or {}, threshold or {}
    return {name: 0.0 if float(effect["present"][0]) < threshold.get(name, 0.0) else inverse_strength.get(name, 1.0)
            for name, effect in params.items()}


def scaled_strengths(chain: Chain, inverse_strength: dict[str, float], amount: float) -> dict[str, float]:
    """Every effect's inverse strength (missing ones at 1) times the user's ``amount``."""
    return {name: inverse_strength.get(name, 1.0) * amount for name in chain.effect_names}


@torch.no_grad()
def restore(model: nn.Module, audio: Tensor, policy: Policy = NO_POLICY, residual: ResidualCorrection | None = None,
            amount: float = 1.0) -> Restoration:
    """Estimate what degraded ``audio`` and undo it.

    Args:
        model: a parameter estimator or the U-Net.
        audio: ``(channels, samples)`` at the model's rate.
        policy: how to apply the model's correction (:class:`~dmaster.mastering.pretrained.Policy`): per effect,
            the inverse strength (an effect to be kept at 0), presence calibration and threshold; the residual
            strength; the U-Net's mask strength.
        residual: the model's fitted residual correction, if it is to be applied (the U-Net's output is filtered
            with it).
        amount: the user's amount (0–1): scales every inverse strength, the residual correction (dB) and, for the
            U-Net, its mask.
    """
    if isinstance(model, SpectrogramUNet):
        restored = _restore_with_unet(model, audio, policy.mask * amount)
        correction = None
        if residual is not None and policy.residual * amount > 0:
            correction = Correction(*residual.correct(model_windows(model, audio), model.sample_rate)).scaled(
                policy.residual * amount)
            restored = filter_with(restored, extra_response(*correction, model.sample_rate), model.sample_rate)
        return Restoration(restored, None, correction)
    windows = model_windows(model, audio)
    params = track_estimate(model, windows)
    correction = None if residual is None else Correction(
        *residual.correct(windows, model.sample_rate, *model.chain.to_vectors(params)))
    return restore_estimate(model.chain, audio, params, policy, correction, amount)


def restore_estimate(chain: Chain, audio: Tensor, params: ChainParams, policy: Policy = NO_POLICY,
                     correction: Correction | None = None, amount: float = 1.0) -> Restoration:
    """What :func:`restore` does with a parameter model's estimate once it has it: for callers that keep the raw
    estimate (the residual correction's features) or reuse one estimate for many restorations.

    Args:
        chain: the model's chain.
        audio: ``(channels, samples)`` at the chain's rate.
        params: the raw estimate ``(1,)`` (presence not yet calibrated).
        policy: as for :func:`restore`.
        correction: the residual correction the model's :class:`~dmaster.residual.ResidualCorrection` gives for
            ``audio``, if it is to be applied.
        amount: as for :func:`restore`.
    """
    params, correction = decide(params, correction, policy.calibration, policy.residual)
    if correction is not None:
        correction = correction.scaled(amount)
    strength = gated_strengths(params, scaled_strengths(chain, policy.strength, amount), policy.threshold)
    return Restoration(apply_estimate(chain, audio, params, strength, correction), params, correction, strength)


def apply_estimate(chain: Chain, audio: Tensor, params: ChainParams, inverse_strength: dict[str, float] | None = None,
                   correction: Correction | None = None) -> Tensor:
    """The chain's inverse of ``audio`` ``(channels, samples)`` with ``params`` ``(1,)`` at their correction
    strengths (:func:`correction_strengths`), plus a residual ``correction`` when given."""
    extra = None if correction is None else extra_response(*correction, chain.sample_rate)
    return invert(chain, audio, correction_strengths(params, inverse_strength), extra)


def invert(chain: Chain, audio: Tensor, params: ChainParams, extra: ExtraResponse | None = None) -> Tensor:
    """The chain's inverse of ``audio`` ``(channels, samples)`` with ``params`` (a batch of one), filtered in
    float32 (``exact=False``: far below any estimate's error), long tracks in chunks."""
    return in_chunks(audio, lambda piece: chain.inverse(piece[None], params, extra, exact=False)[0],
                     chain.sample_rate)


def filter_with(audio: Tensor, extra: ExtraResponse, sample_rate: int) -> Tensor:
    """``audio`` ``(channels, samples)`` filtered with ``extra`` alone, long tracks in chunks."""
    def apply(piece: Tensor) -> Tensor:
        n_fft = convolution_size(piece.shape[-1] + extra.tail_samples)
        return apply_response(piece[None], extra.response(n_fft), n_fft)[0]
    return in_chunks(audio, apply, sample_rate)


@torch.no_grad()
def _restore_with_unet(model: SpectrogramUNet, audio: Tensor, strength: float) -> Tensor:
    """Run the U-Net (its mask at ``strength``) over ``audio`` in overlapping chunks, cross-faded (no seams).
    The U-Net is not time-invariant, so it gets its own chunker rather than :func:`in_chunks`."""
    if strength == 0:
        return audio.clone()
    chunk = int(UNET_CHUNK_SECONDS * model.sample_rate)
    overlap = int(UNET_OVERLAP_SECONDS * model.sample_rate)
    samples = audio.shape[-1]
    if samples <= chunk:
        return _unet_pairs(model, audio, strength)
    step = chunk - overlap
    out = torch.zeros_like(audio)
    weight = torch.zeros(samples)
    fade = torch.ones(chunk)
    ramp = torch.linspace(0, 1, overlap + 2)[1:-1]
    fade[:overlap], fade[-overlap:] = ramp, ramp.flip(0)
    for start in range(0, samples - overlap, step):
        piece = audio[:, start : start + chunk]
        w = fade[: piece.shape[-1]]
        out[:, start : start + piece.shape[-1]] += _unet_pairs(model, piece, strength) * w
        weight[start : start + piece.shape[-1]] += w
    return out / weight.clamp_min(1e-6)


def _unet_pairs(model: SpectrogramUNet, audio: Tensor, strength: float) -> Tensor:
    """The U-Net takes stereo; mono is duplicated and more channels go through in pairs; a clip shorter
    than the U-Net's minimum is zero-padded to it."""
    samples = audio.shape[-1]
    if samples < model.min_samples:
        padded = torch.nn.functional.pad(audio, (0, model.min_samples - samples))
        return _unet_pairs(model, padded, strength)[:, :samples]
    channels = audio.shape[0]
    if channels == 1:
        return model(audio.expand(2, -1)[None], strength)[0].mean(0, keepdim=True)
    padded = torch.cat([audio, audio[-1:]]) if channels % 2 else audio
    restored = model(padded.reshape(-1, 2, padded.shape[-1]).contiguous(), strength).reshape(padded.shape)
    return restored[:channels]
