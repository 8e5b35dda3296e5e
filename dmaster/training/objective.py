"""The loss one training step minimises, for either model kind.

The U-Net: the reconstruction loss (MR-STFT + L1) of its output. The parameter estimator: its
parameter, presence and delay-bin losses against the batch's truth, plus (once
:func:`~dmaster.training.schedule.e2e_weight_at` is above 0) the reconstruction loss of the chain
inverse driven by its estimate: the end-to-end term.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..checkpoint import unwrap
from ..data.datasets import Batch
from ..effects import Chain
from ..losses import delay_bin_loss, match_peak, parameter_loss, parameter_weights, presence_loss, reconstruction_loss
from ..models import EstimatorOutput, ParamEstimator
from .config import TrainConfig

__all__ = ["supervised_terms", "training_loss"]

Tensor = torch.Tensor


def supervised_terms(estimator: ParamEstimator, output: EstimatorOutput, batch: Batch,
                     chain: Chain) -> dict[str, Tensor]:
    """The parameter estimator's losses against the batch's truth.

    Args:
        estimator: the model (its ``delay_column`` locates the echo delay among the parameters).
        output: its output for ``batch["degraded"]``.
        batch: a batch with ``"presence"`` ``(batch, effects)`` and ``"params"`` ``(batch, params)``.
        chain: the chain whose parameters are estimated.

    Returns:
        Scalar tensors ``"param"`` (weighted L1 of the normalised parameters), ``"presence"``
        (cross-entropy) and ``"delay"`` (cross-entropy of the echo-delay bins).
    """
    presence, target = batch["presence"], batch["params"]
    echo = chain.effect_names.index("echo")
    return {
        "param": parameter_loss(output.params, target, parameter_weights(chain, target, presence)),
        "presence": presence_loss(output.presence_logits, presence),
        "delay": delay_bin_loss(output.delay_logits, target[:, estimator.delay_column], presence[:, echo]),
    }


def training_loss(model: nn.Module, batch: Batch, config: TrainConfig, chain: Chain,
                  e2e_weight: float) -> tuple[Tensor, dict[str, float]]:
    """The weighted total loss of one batch and its terms.

    Args:
        model: a ``ParamEstimator`` or ``SpectrogramUNet``, possibly wrapped in ``DistributedDataParallel``.
        batch: a training batch (``"degraded"`` and ``"clean"`` ``(batch, 2, samples)``, truth vectors).
        config: the loss weights, ``e2e_items`` and ``level_matched``.
        chain: the chain whose inverse the end-to-end term runs.
        e2e_weight: weight of the end-to-end term now; it is computed only when > 0.

    Returns:
        ``(loss, terms)``: the scalar loss to minimise and each term's value. The U-Net's term is
        ``"reconstruction"``; the estimator's are ``"param"``, ``"presence"``, ``"delay"`` and
        ``"e2e"`` (NaN while it is off, so the log's columns stay the same).
    """
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
