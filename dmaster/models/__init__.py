"""The estimators: :class:`ParamEstimator` (parameters of the chain) and :class:`SpectrogramUNet`
(direct restoration baseline). :func:`build_model` makes either from its kind and keyword arguments,
as stored in checkpoints.

>>> model = build_model("unet", width=8)
>>> type(model).__name__, model.hyperparameters["width"]
('SpectrogramUNet', 8)
>>> count_parameters(model) > 0
True
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .estimator import EstimatorOutput, ParamEstimator
from .unet import SpectrogramUNet

MODELS: dict[str, type[nn.Module]] = {"param": ParamEstimator, "unet": SpectrogramUNet}
"""Model kind → class; every class takes keyword hyper-parameters and stores them in ``.hyperparameters``."""


def build_model(kind: str, **hyperparameters: Any) -> nn.Module:
    """A fresh (untrained) model.

    Args:
        kind: ``"param"`` (:class:`ParamEstimator`) or ``"unet"`` (:class:`SpectrogramUNet`).
        **hyperparameters: the class's keyword arguments.

    Raises:
        ValueError: an unknown kind or bad hyper-parameters.
    """
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}; choose one of {', '.join(MODELS)}")
    try:
        return MODELS[kind](**hyperparameters)
    except TypeError as error:
        raise ValueError(f"bad hyper-parameters for the {kind} model: {error}") from None


def count_parameters(model: nn.Module) -> int:
    """The number of parameters (weights) of ``model``."""
    return sum(p.numel() for p in model.parameters())


__all__ = ["EstimatorOutput", "MODELS", "ParamEstimator", "SpectrogramUNet", "build_model", "count_parameters"]
