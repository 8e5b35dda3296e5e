"""Which model: the shipped weights or a checkpoint, and the files fitted for it that lie next to it
(its residual correction ``<checkpoint>.residual.json`` and inverse strengths ``<checkpoint>.strength.json``)."""

from __future__ import annotations

import json
import pickle
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Union

from torch import nn

from ..checkpoint import load_model
from ..data.audio import write_json_atomic
from ..effects import SPECS
from ..residual import ResidualCorrection

__all__ = ["RESIDUAL_SUFFIX", "SHIPPED", "STRENGTH_SUFFIX", "ModelChoice", "check_effect_names", "check_strength",
           "load_strength", "resolve_model", "resolve_residual", "resolve_strength", "save_strength",
           "shipped_weights"]

ModelChoice = Union[None, str, Path, nn.Module]
"""``None`` (the shipped parameter model), ``"param"``/``"unet"`` (a shipped model), a checkpoint path or a
loaded model."""
SHIPPED = {"param": "param.pt", "unet": "unet.pt"}
RESIDUAL_SUFFIX = ".residual.json"
"""A checkpoint's residual correction lies next to it: ``param.pt`` → ``param.residual.json``."""
STRENGTH_SUFFIX = ".strength.json"
"""A parameter model's inverse strengths lie next to it: ``param.pt`` → ``param.strength.json``."""


@lru_cache(maxsize=4)
def _load(path: str) -> nn.Module:
    try:
        model, _ = load_model(path, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path} is not a dmaster model checkpoint: torch cannot load it "
                         f"({type(error).__name__})") from None
    return model.eval()


def shipped_weights(kind: str) -> Path:
    """Path of a model shipped inside the package.

    Args:
        kind: ``"param"`` or ``"unet"``.

    >>> shipped_weights("param").name
    'param.pt'
    """
    if kind not in SHIPPED:
        raise ValueError(f"unknown shipped model {kind!r}; choose one of {', '.join(SHIPPED)}")
    return Path(str(resources.files("dmaster") / "weights" / SHIPPED[kind]))


def _checkpoint_path(model: None | str | Path) -> Path:
    path = shipped_weights(model or "param") if model is None or model in SHIPPED else Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"no model checkpoint at {path}")
    return path


def resolve_model(model: ModelChoice) -> nn.Module:
    """The model ``model`` names, in eval mode (checkpoints are loaded once and cached).

    Args:
        model: see :data:`ModelChoice`.
    """
    if isinstance(model, nn.Module):
        return model.eval()
    return _load(str(_checkpoint_path(model)))


def _sidecar(model: ModelChoice, suffix: str) -> Path | None:
    """The file next to ``model``'s checkpoint named with ``suffix``, if there is one; ``None`` for a module."""
    if isinstance(model, nn.Module):
        return None
    path = _checkpoint_path(model)
    sidecar = path.with_name(path.stem + suffix)
    return sidecar if sidecar.is_file() else None


def resolve_residual(model: ModelChoice) -> ResidualCorrection | None:
    """The residual correction fitted for ``model`` (a file next to its checkpoint), or ``None`` for a module
    or a checkpoint without one.

    Args:
        model: see :data:`ModelChoice`.
    """
    sidecar = _sidecar(model, RESIDUAL_SUFFIX)
    return None if sidecar is None else _load_residual(str(sidecar), sidecar.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _load_residual(path: str, modified_ns: int) -> ResidualCorrection:
    """Cached by modification time too, so that a refitted correction is read again."""
    return ResidualCorrection.load(path)


def resolve_strength(model: ModelChoice) -> dict[str, float]:
    """Per-effect inverse strengths in [0, 1] fitted for ``model`` (a file next to its checkpoint); ``{}``
    (every effect at full strength) for a module, the U-Net or a checkpoint without one.

    Args:
        model: see :data:`ModelChoice`.
    """
    sidecar = _sidecar(model, STRENGTH_SUFFIX)
    return {} if sidecar is None else load_strength(sidecar)


def load_strength(path: str | Path) -> dict[str, float]:
    """Read an inverse-strength file, ``{"strength": {effect: value in [0, 1]}, "description": ...}``.

    Args:
        path: the JSON file.

    Raises:
        ValueError: naming the file and what is wrong with it.
    """
    try:
        strength = {str(name): float(value) for name, value in json.loads(Path(path).read_text())["strength"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{path} is not an inverse-strength file: {error!r}") from error
    return check_strength(strength, str(path))


def save_strength(path: str | Path, strength: dict[str, float], description: str) -> None:
    """Write what :func:`load_strength` reads, atomically.

    Args:
        path: the JSON file.
        strength: ``{effect: inverse strength in [0, 1]}``.
        description: how the strengths were chosen, for whoever reads the file.
    """
    write_json_atomic(path, {"strength": strength, "description": description})


def check_effect_names(names: Iterable[str], source: str) -> None:
    """Raise ``ValueError`` naming ``source`` and the first of ``names`` that is not an effect of the chain."""
    effects = [spec.name for spec in SPECS]
    for name in names:
        if name not in effects:
            raise ValueError(f"{source}: unknown effect {name!r}; effects are {', '.join(effects)}")


def check_strength(strength: dict[str, float], source: str) -> dict[str, float]:
    """``strength`` after checking that it names effects of the chain with values in [0, 1]; ``ValueError``
    names ``source`` otherwise."""
    check_effect_names(strength, source)
    for name, value in strength.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{source}: strength of {name} must lie in [0, 1], got {value}")
    return strength
