"""How well a model restores the validation set, and the mark the degraded audio itself sets."""

from __future__ import annotations

import torch
from torch import nn

from ..checkpoint import unwrap
from ..data.datasets import Batch
from ..effects import Chain
from ..losses import match_peak, parameter_loss, parameter_weights, reconstruction_loss
from ..metrics import mrstft_distance, si_sdr
from ..models import ParamEstimator
from .config import TrainConfig
from .objective import supervised_terms

__all__ = ["degraded_baseline", "validate"]

Tensor = torch.Tensor


@torch.no_grad()
def validate(model: nn.Module, batches: list[Batch], config: TrainConfig, chain: Chain) -> dict[str, float]:
    """Mean validation metrics of the model's restorations.

    The parameter estimator restores with its delay refined and each effect's inverse weighted by
    its presence probability, as at inference. The model is left in the mode it was in.

    Args:
        model: a ``ParamEstimator`` or ``SpectrogramUNet``, possibly DDP-wrapped.
        batches: the validation set (:func:`~dmaster.training.batches.validation_batches`).
        config: the loss weights and ``sample_rate``.
        chain: the chain whose inverse restores.

    Returns:
        ``mrstft``, ``mrstft_level_matched`` (after scaling to the original's peak), ``si_sdr`` (dB) and
        ``loss`` (the estimator's weighted supervised terms; the U-Net's training loss). The estimator
        adds ``param_error``, ``presence_accuracy`` (at 0.5), ``eq_gain_error_db`` and
        ``median_delay_error_samples``.
    """
    model = unwrap(model)
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    delay_errors_ms: list[Tensor] = []

    def add(name: str, value: Tensor | float) -> None:
        sums[name] = sums.get(name, 0.0) + float(value)

    for batch in batches:
        degraded, clean = batch["degraded"], batch["clean"]
        if isinstance(model, ParamEstimator):
            output = model(degraded)
            terms = supervised_terms(model, output, batch, chain)
            add("loss", config.param_weight * terms["param"] + config.presence_weight * terms["presence"]
                + config.delay_weight * terms["delay"])
            params = model.refine_delay(degraded, output.params)
            probability = torch.sigmoid(output.presence_logits)
            restored = chain.inverse(degraded, chain.from_vectors(probability, params))
            presence = (probability > 0.5).float()
            true_presence, target = batch["presence"], batch["params"]
            add("param_error", parameter_loss(params, target, parameter_weights(chain, target, true_presence)))
            add("presence_accuracy", (presence == true_presence).float().mean())
            estimated, true = chain.from_vectors(presence, params), chain.from_vectors(true_presence, target)
            eq_on = true_presence[:, chain.effect_names.index("eq")]
            gain_errors = torch.stack([(estimated["eq"][n] - true["eq"][n]).abs()
                                       for n in true["eq"] if n.endswith("_gain_db")], 1).mean(1)
            add("eq_gain_error_db", (eq_on * gain_errors).sum() / eq_on.sum().clamp_min(1))
            echo_on = true_presence[:, chain.effect_names.index("echo")] > 0
            delay_errors_ms.append((estimated["echo"]["delay_ms"] - true["echo"]["delay_ms"]).abs()[echo_on])
        else:
            restored = model(degraded)
            add("loss", reconstruction_loss(restored, clean, config.mrstft_weight, config.l1_weight))
        add("mrstft", mrstft_distance(restored, clean).mean())
        add("mrstft_level_matched", mrstft_distance(match_peak(restored, clean), clean).mean())
        add("si_sdr", si_sdr(restored, clean).mean())
    metrics = {name: value / len(batches) for name, value in sums.items()}
    if delay_errors_ms:
        errors = torch.cat(delay_errors_ms)
        metrics["median_delay_error_samples"] = (float(errors.median()) * config.sample_rate / 1000
                                                 if len(errors) else float("nan"))
    model.train(was_training)
    return metrics


def degraded_baseline(batches: list[Batch]) -> dict[str, float]:
    """The validation metrics of the degraded audio itself: the mark every restoration must beat.

    Args:
        batches: the validation set.

    Returns:
        ``degraded_mrstft``, ``degraded_mrstft_level_matched`` and ``degraded_si_sdr`` (dB), means over the set.
    """
    metrics = {"degraded_mrstft": lambda d, c: mrstft_distance(d, c),
               "degraded_mrstft_level_matched": lambda d, c: mrstft_distance(match_peak(d, c), c),
               "degraded_si_sdr": si_sdr}
    return {name: sum(float(metric(b["degraded"], b["clean"]).mean()) for b in batches) / len(batches)
            for name, metric in metrics.items()}
