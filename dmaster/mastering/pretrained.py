"""Which model: the shipped weights or a checkpoint, and the files fitted for it that lie next to it
(its residual correction ``<checkpoint>.residual.json`` and policy ``<checkpoint>.policy.json``)."""

from __future__ import annotations

import json
import math
import pickle
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, NamedTuple, Union

from torch import nn

from ..audio import write_json_atomic
from ..checkpoint import load_model
from ..effects import SPECS
from ..residual import ResidualCorrection

__all__ = ["EVIDENCE", "NO_POLICY", "POLICY_SUFFIX", "RESIDUAL_SUFFIX", "SHIPPED", "ModelChoice", "Policy",
           "check_effect_names", "check_strength", "load_policy", "resolve_model", "resolve_policy",
           "resolve_residual", "save_policy", "shipped_weights"]

ModelChoice = Union[None, str, Path, nn.Module]
"""``None`` (the shipped parameter model), ``"param"``/``"unet"`` (a shipped model), a checkpoint path or a
loaded model."""
SHIPPED = {"param": "param.pt", "unet": "unet.pt"}
RESIDUAL_SUFFIX = ".residual.json"
"""A checkpoint's residual correction lies next to it: ``param.pt`` → ``param.residual.json``."""
POLICY_SUFFIX = ".policy.json"
"""A model's :class:`Policy` lies next to it: ``param.pt`` → ``param.policy.json``."""


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


EVIDENCE: dict[str, tuple[str, float, float]] = {"echo": ("level_db", -20.0, 10.0)}
"""Per effect, a measured parameter its calibration may also weigh, the value where that weighs nothing and the
scale of one unit: the echo's level, read off the cepstrum (:func:`~dmaster.mastering.estimation.measure_echo_level`),
in tens of dB above -20 dB."""


class Policy(NamedTuple):
    """How ``master()`` applies a model's correction: fitted on held-out music by ``recipes/fit_policy.py`` and
    kept next to the checkpoint (``param.pt`` → ``param.policy.json``). A parameter model's uses every field but
    :attr:`mask`; the U-Net's only :attr:`residual` and :attr:`mask`."""

    strength: dict[str, float]
    """Per effect, its inverse strength in [0, 1] (missing: 1)."""
    calibration: dict[str, list[float]]
    """Per effect, ``[a, b]`` (or ``[a, b, c]`` with the effect's measured evidence) of
    :func:`~dmaster.mastering.restoration.calibrate` (missing: uncalibrated)."""
    residual: float = 1.0
    """How much of the residual correction to apply, 0–1."""
    threshold: dict[str, float] = {}
    """Per effect, the presence probability in [0, 1] (calibrated where :attr:`calibration` names the effect)
    below which its inverse is not applied at all (missing: 0): an effect whose inverse harms music without it
    is undone only where the model is sure."""
    mask: float = 1.0
    """The U-Net's mask strength, 0–1: the log gains of its time–frequency mask times this (1: as trained)."""


NO_POLICY = Policy({}, {})
"""Every effect at full strength, presence uncalibrated, the whole residual correction."""


def resolve_policy(model: ModelChoice) -> Policy:
    """The policy fitted for ``model`` (a file next to its checkpoint); :data:`NO_POLICY` for a module or a
    checkpoint without one.

    Args:
        model: see :data:`ModelChoice`.
    """
    sidecar = _sidecar(model, POLICY_SUFFIX)
    return NO_POLICY if sidecar is None else load_policy(sidecar)


def load_policy(path: str | Path) -> Policy:
    """Read a policy file, ``{"strength": {effect: 0–1}, "calibration": {effect: [a, b] or [a, b, c]}, "residual": 0–1,
    "threshold": {effect: 0–1}, "mask": 0–1, "description": ...}`` (only ``strength`` is required; a U-Net's
    is ``{}``).

    Args:
        path: the JSON file.

    Raises:
        ValueError: naming the file and what is wrong with it.
    """
    try:
        stored = json.loads(Path(path).read_text())
        strength = {str(name): float(value) for name, value in stored["strength"].items()}
        calibration = {str(name): [float(v) for v in values] for name, values in stored.get("calibration", {}).items()}
        residual = float(stored.get("residual", 1.0))
        threshold = {str(name): float(value) for name, value in stored.get("threshold", {}).items()}
        mask = float(stored.get("mask", 1.0))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{path} is not a policy file: {error!r}") from error
    check_effect_names(calibration, str(path))
    for name, values in calibration.items():
        if len(values) not in ((2, 3) if name in EVIDENCE else (2,)):
            allowed = "[a, b] or [a, b, c]" if name in EVIDENCE else "[a, b]"
            raise ValueError(f"{path}: calibration of {name} must be {allowed}, got {len(values)} values")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{path}: calibration values must be finite")
    for name, value in (("residual", residual), ("mask", mask)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{path}: {name} must lie in [0, 1], got {value}")
    return Policy(check_strength(strength, str(path)), calibration, residual,
                  check_strength(threshold, str(path), "threshold"), mask)


def save_policy(path: str | Path, policy: Policy, description: str) -> None:
    """Write what :func:`load_policy` reads, atomically.

    Args:
        path: the JSON file.
        policy: what to write.
        description: how it was fitted, for whoever reads the file.
    """
    write_json_atomic(path, {**policy._asdict(), "description": description})


def check_effect_names(names: Iterable[str], source: str) -> None:
    """Raise ``ValueError`` naming ``source`` and the first of ``names`` that is not an effect of the chain."""
    effects = [spec.name for spec in SPECS]
    for name in names:
        if name not in effects:
            raise ValueError(f"{source}: unknown effect {name!r}; effects are {', '.join(effects)}")


def check_strength(strength: dict[str, float], source: str, what: str = "strength") -> dict[str, float]:
    """``strength`` after checking that it names effects of the chain with values in [0, 1]; ``ValueError``
    names ``source`` and ``what`` the values are otherwise."""
    check_effect_names(strength, source)
    for name, value in strength.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{source}: {what} of {name} must lie in [0, 1], got {value}")
    return strength
