"""Checkpoints: written atomically, loadable with ``torch.load(path, weights_only=True)``.

A checkpoint is a dict of tensors, dicts, lists, strings and numbers:

``format``, ``model_kind`` (``"param"`` | ``"unet"``), ``hyperparameters`` (the model's constructor
arguments; a parameter model's name the effects it estimates), ``spec_version``
(:data:`dmaster.effects.SPEC_VERSION` the model was trained with), ``config`` (the training configuration),
``step``, ``model`` (state dict), ``optimizer`` (state dict or ``None``) and whatever the trainer adds
(``best_metric``, ``rng_state`` …).

A parameter model is refused only for an effect it estimates whose parameters changed meaning since its spec
version (:func:`dmaster.effects.registry.check_carried`), or for a spec version newer than this dmaster's: an effect
that joined the chain later is one it does not estimate (``master()`` leaves it alone and says so). A checkpoint
from before they listed their effects estimates the effects of its spec version. The U-Net does not depend on the
effects, so its spec version is never checked. For example::

    model, config = load_model("models/param/best.pt")
    params = model.estimate(audio)        # ParamEstimator; audio (batch, channels, samples)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .effects import SPEC_VERSION
from .effects.registry import check_carried, estimated_at
from .models import MODELS, build_model

__all__ = ["CHECKPOINT_FORMAT", "load_checkpoint", "load_model", "save_checkpoint", "unwrap"]

CHECKPOINT_FORMAT = 1
REQUIRED_KEYS = ("format", "model_kind", "hyperparameters", "spec_version", "config", "step", "model")


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper (or the model itself).

    Args:
        model: a model, wrapped or not.
    """
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def save_checkpoint(path: str | Path, model: nn.Module, model_kind: str, config: dict[str, Any], step: int,
                    optimizer: torch.optim.Optimizer | None = None, **extra: Any) -> None:
    """Write a checkpoint to ``path`` via a temporary file and ``os.replace`` (never half-written).

    Args:
        path: the file; its folder is created.
        model: the model (unwrapped from ``DistributedDataParallel`` if need be); its ``hyperparameters``
            and state dict are stored.
        model_kind: ``"param"`` or ``"unet"``.
        config: the training configuration, a plain dict.
        step: optimiser steps taken.
        optimizer: its state is stored when given.
        **extra: further entries (tensors, dicts, lists, strings, numbers).
    """
    if model_kind not in MODELS:
        raise ValueError(f"unknown model kind {model_kind!r}; choose one of {', '.join(MODELS)}")
    model = unwrap(model)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_kind": model_kind,
        "hyperparameters": dict(model.hyperparameters),
        "spec_version": SPEC_VERSION,
        "config": config,
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        **extra,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint (``weights_only=True``) and check that it matches this dmaster's parameter spec.

    Args:
        path: the file.
        map_location: where its tensors go.

    Returns:
        The checkpoint dict (see the module docstring); a parameter model's ``hyperparameters`` name the effects it
        estimates (those of its spec version, where it does not list them).

    Raises:
        FileNotFoundError: when there is no such file.
        ValueError: when it is not a dmaster checkpoint, or is a parameter model that estimates an effect whose
            parameters changed meaning since it was trained (module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    missing = [key for key in REQUIRED_KEYS if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise ValueError(f"{path} is not a dmaster checkpoint (missing {', '.join(missing)})")
    if checkpoint["model_kind"] not in MODELS:
        raise ValueError(f"{path} holds an unknown model kind {checkpoint['model_kind']!r}")
    if checkpoint["model_kind"] == "param":
        checkpoint["hyperparameters"] = _estimated_effects(checkpoint, path)
    return checkpoint


def _estimated_effects(checkpoint: dict[str, Any], path: Path) -> dict[str, Any]:
    """A parameter model's hyper-parameters with the effects it estimates, after checking that this dmaster reads
    their parameters as it was trained to estimate them."""
    hyperparameters, version = checkpoint["hyperparameters"], checkpoint["spec_version"]
    effects = hyperparameters.get("effects")
    check_carried(estimated_at(version) if effects is None else effects, version, str(path))
    if effects is None:  # from before checkpoints listed them: the effects of its version, one presence row each
        effects = list(estimated_at(version))
        rows = checkpoint["model"].get("presence_head.weight")
        if rows is not None and rows.shape[0] != len(effects):
            raise ValueError(f"{path} was trained with parameter spec version {version}, whose effects this dmaster "
                             f"cannot match to its {rows.shape[0]} presence outputs: retrain it or use the dmaster "
                             "release it was trained with")
    return {**hyperparameters, "effects": list(effects)}


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint, in eval mode.

    Args:
        path: the checkpoint file.
        map_location: the device the model goes to.

    Returns:
        ``(model, training config dict)``.
    """
    checkpoint = load_checkpoint(path, map_location)
    model = build_model(checkpoint["model_kind"], **checkpoint["hyperparameters"])
    model.load_state_dict(checkpoint["model"])
    return model.to(map_location).eval(), checkpoint["config"]
