"""Training losses; each returns a scalar tensor.

Audio losses take ``(batch, channels, samples)``; parameter losses take the normalised vectors of
:meth:`dmaster.effects.Chain.to_vectors`: presence ``(batch, effects)`` and parameters
``(batch, params)`` in ``[0, 1]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .effects import Chain
from .metrics import MRSTFT_RESOLUTIONS, stft_magnitude

__all__ = ["EQ_RELEVANT_GAIN_DB", "delay_bin_loss", "match_peak", "multi_resolution_stft_loss", "parameter_loss",
           "parameter_weights", "presence_loss", "reconstruction_loss", "time_l1_loss"]

Tensor = torch.Tensor

EQ_RELEVANT_GAIN_DB = 3.0
"""An EQ band's frequency and Q count fully in the parameter loss once its gain reaches ±3 dB;
below that they are less and less audible and hence less and less identifiable."""


def multi_resolution_stft_loss(estimate: Tensor, reference: Tensor,
                               resolutions: tuple[tuple[int, int], ...] = MRSTFT_RESOLUTIONS,
                               linear_weight: float = 1.0, log_weight: float = 1.0, reduce: bool = True) -> Tensor:
    """Spectral convergence (linear magnitude, relative) plus mean absolute log-magnitude difference.

    Args:
        estimate: ``(batch, channels, samples)``.
        reference: the same shape.
        resolutions: ``(n_fft, hop)`` pairs (samples); the result is the mean over them.
        linear_weight: weight of the spectral convergence.
        log_weight: weight of the log-magnitude difference.
        reduce: average over the batch; otherwise one value per item, ``(batch,)``.
    """
    total = estimate.new_zeros(estimate.shape[0])
    for n_fft, hop in resolutions:
        est, ref = stft_magnitude(estimate, n_fft, hop), stft_magnitude(reference, n_fft, hop)
        convergence = (est - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1).clamp_min(1e-8)
        log_distance = (est.log() - ref.log()).abs().flatten(1).mean(1)
        total = total + linear_weight * convergence + log_weight * log_distance
    total = total / len(resolutions)
    return total.mean() if reduce else total


def match_peak(estimate: Tensor, reference: Tensor) -> Tensor:
    """``estimate`` scaled per item to the peak of ``reference``.

    The scale carries no gradient, so a loss on the result neither rewards nor teaches the level.

    Args:
        estimate: ``(batch, channels, samples)``.
        reference: the same shape.

    >>> match_peak(torch.tensor([[[0.5, -0.25]]]), torch.tensor([[[0.1, 1.0]]]))
    tensor([[[ 1.0000, -0.5000]]])
    """
    estimate_peak = estimate.detach().abs().flatten(1).amax(1).clamp_min(1e-8)
    scale = reference.abs().flatten(1).amax(1) / estimate_peak
    return estimate * scale[:, None, None]


def time_l1_loss(estimate: Tensor, reference: Tensor, reduce: bool = True) -> Tensor:
    """Mean absolute sample difference.

    Args:
        estimate: ``(batch, channels, samples)``.
        reference: the same shape.
        reduce: average over the batch; otherwise one value per item, ``(batch,)``.
    """
    per_item = (estimate - reference).abs().flatten(1).mean(1)
    return per_item.mean() if reduce else per_item


def reconstruction_loss(estimate: Tensor, reference: Tensor, mrstft_weight: float = 1.0,
                        l1_weight: float = 1.0, robust: bool = False) -> Tensor:
    """``mrstft_weight · MR-STFT + l1_weight · time-domain L1``, averaged over the batch.

    Args:
        estimate: ``(batch, channels, samples)``.
        reference: the same shape.
        mrstft_weight: weight of :func:`multi_resolution_stft_loss`.
        l1_weight: weight of :func:`time_l1_loss`.
        robust: compress each item's loss ``ℓ`` to ``log(1 + ℓ)`` first, so that one wildly wrong
            restoration (a chain inverse driven by a poor estimate can be tens of dB too loud)
            cannot dominate the batch; small losses are hardly changed.
    """
    per_item = (mrstft_weight * multi_resolution_stft_loss(estimate, reference, reduce=False)
                + l1_weight * time_l1_loss(estimate, reference, reduce=False))
    return (torch.log1p(per_item) if robust else per_item).mean()


def parameter_weights(chain: Chain, target: Tensor, presence: Tensor) -> Tensor:
    """Weights for :func:`parameter_loss`: 1 for parameters of present effects, 0 for absent ones;
    an EQ band's frequency and Q are further scaled by ``min(1, |gain| / EQ_RELEVANT_GAIN_DB)``.

    Args:
        chain: the chain whose parameters the vectors hold.
        target: true normalised parameters, ``(batch, params)``.
        presence: true presence, ``(batch, effects)``.

    Returns:
        ``(batch, params)``.
    """
    columns = {(effect, p.name): i for i, (effect, p) in enumerate(chain.flat_params)}
    effect_index = {name: i for i, name in enumerate(chain.effect_names)}
    weights = torch.stack([presence[:, effect_index[effect]] for effect, _ in chain.flat_params], dim=1)
    eq_spec = chain.specs[effect_index["eq"]]
    scales = []
    for column, (effect, param) in enumerate(chain.flat_params):
        band, _, suffix = param.name.rpartition("_")
        if effect == "eq" and suffix in ("hz", "q"):
            gain_param = eq_spec.param(f"{band}_gain_db")
            gain_db = gain_param.denormalise(target[:, columns[("eq", gain_param.name)]])
            scales.append((gain_db.abs() / EQ_RELEVANT_GAIN_DB).clamp(max=1.0))
        else:
            scales.append(torch.ones_like(target[:, column]))
    return weights * torch.stack(scales, dim=1)


def parameter_loss(predicted: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Weighted mean absolute error of normalised parameters (0 when every weight is 0).

    Args:
        predicted: ``(batch, params)`` in ``[0, 1]``.
        target: the same shape.
        weights: the same shape (:func:`parameter_weights`).
    """
    return (weights * (predicted - target).abs()).sum() / weights.sum().clamp_min(1.0)


def presence_loss(logits: Tensor, presence: Tensor) -> Tensor:
    """Binary cross-entropy of the presence logits against the presence.

    Args:
        logits: ``(batch, effects)``.
        presence: ``(batch, effects)`` in ``[0, 1]``.
    """
    return F.binary_cross_entropy_with_logits(logits, presence)


def delay_bin_loss(delay_logits: Tensor, target_delay: Tensor, echo_present: Tensor) -> Tensor:
    """Cross-entropy of the lag-bin scores against the delay, shared between the two nearest bin centres.

    Args:
        delay_logits: ``(batch, bins)``; bin ``k`` is centred on the normalised delay ``(k + 0.5) / bins``.
        target_delay: the normalised delay, ``(batch,)`` in ``[0, 1]``.
        echo_present: ``(batch,)``, 1 where there is an echo; items without one are left out.
    """
    bins = delay_logits.shape[1]
    position = (target_delay * bins - 0.5).clamp(0, bins - 1)
    lower = position.floor().long()
    upper = (lower + 1).clamp(max=bins - 1)
    upper_share = position - lower
    log_probabilities = delay_logits.log_softmax(1)
    rows = torch.arange(len(lower), device=delay_logits.device)
    cross_entropy = -((1 - upper_share) * log_probabilities[rows, lower] + upper_share * log_probabilities[rows, upper])
    return (echo_present * cross_entropy).sum() / echo_present.sum().clamp_min(1.0)
