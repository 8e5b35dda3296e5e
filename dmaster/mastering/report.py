"""The JSON report of ``master()``: written here (the estimate in physical units, the correction applied to
each effect, the residual correction) and read back here (``master(report=…)`` applies an earlier one)."""

from __future__ import annotations

import json
import math
import reprlib
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..effects import SPECS, Chain, ChainParams
from ..effects.registry import effect
from ..effects.spec import EffectSpec, all_finite
from ..models import ParamEstimator
from ..residual import MAX_BAND_DB, MAX_LEVEL_DB, band_centres_hz
from .pretrained import check_effect_names, check_strength
from .restoration import Correction, correction_strengths

__all__ = ["correction_text", "describe_correction", "describe_estimate", "read_report"]

NOT_ESTIMATED = "not estimated by this model"
"""The correction of an effect the model does not estimate (one that joined the chain after it was trained): it is
left alone."""


def describe_estimate(chain: Chain, params: ChainParams, inverse_strength: dict[str, float]) -> dict[str, Any]:
    """The report's ``effects``: per effect, the presence probability, the estimated degradation in physical
    units, its inverse strength, the correction strength applied (0 = untouched, 1 = fully undone) and the
    correction in words. An effect the model does not estimate (not in its chain's
    :attr:`~dmaster.effects.Chain.estimated`) is reported absent, at its neutral settings, and its correction says
    :data:`NOT_ESTIMATED`.

    Args:
        chain: the model's chain.
        params: the estimate ``(1,)``, presence as a probability.
        inverse_strength: per effect, already times the user's amount (missing: 1).
    """
    estimate, applied = chain.to_json(params)[0], correction_strengths(params, inverse_strength)
    effects: dict[str, Any] = {}
    for spec in chain.specs:
        values = estimate[spec.name]
        strength = float(applied[spec.name]["present"][0])
        estimated = {p.name: values[p.name] for p in spec.params}
        effects[spec.name] = {
            "presence_probability": round(float(params[spec.name]["present"][0]), 4),
            "applied": strength > 0,
            "inverse_strength": inverse_strength.get(spec.name, 1.0),
            "correction_strength": round(strength, 4),
            "estimated": {name: {"value": value, "unit": spec.param(name).unit} for name, value in estimated.items()},
            "correction": (NOT_ESTIMATED if spec.name not in chain.estimated else
                           correction_text(spec, estimated) if strength > 0 else "none"),
        }
    return effects


def correction_text(spec: EffectSpec, estimated: dict[str, float]) -> str:
    """What undoing ``estimated`` (one effect's parameters, physical units) does, in words: the effect module's
    ``correction_text`` (:mod:`dmaster.effects.registry`); for an effect the registry does not know, its
    parameters as they are.

    >>> from dmaster.effects import EffectSpec, Param, Prior
    >>> tape = EffectSpec("tape", (Param("wow_hz", "Hz", 0.1, 5.0, "log", Prior("uniform", 0.5, 2.0), 1.0, ""),), 0.1,
    ...                   "tape wow")
    >>> correction_text(tape, {"wow_hz": 1.5})
    'tape undone: wow_hz 1.5 Hz'
    """
    try:
        module = effect(spec.name)
    except KeyError:
        values = ", ".join(f"{p.name} {estimated[p.name]:g}" + (f" {p.unit}" if p.unit else "") for p in spec.params)
        return f"{spec.name} undone: {values}"
    return module.correction_text(estimated)


def describe_correction(correction: Correction) -> dict[str, Any]:
    """The report's ``residual_correction``: the level and each band's correction (dB, by centre frequency)."""
    return {"level_db": round(correction.level_db, 2),
            "bands_db": {f"{hz:.0f} Hz": round(float(db), 2) for hz, db in zip(band_centres_hz(), correction.bands_db)}}


def read_report(report: Mapping[str, Any] | str | Path, model: nn.Module
                ) -> tuple[ChainParams, dict[str, float], Correction | None]:
    """The estimate, inverse strengths and residual correction that a ``master()`` report records, to apply
    them again with the parameter ``model``'s chain.

    Args:
        report: ``MasterResult.report``, or the path of its JSON.
        model: the parameter estimator.

    Returns:
        The estimate ``(1,)``, the inverse strengths, and the residual correction (``None`` if none).

    Raises:
        ValueError: saying what is missing, malformed or out of range.
    """
    if not isinstance(model, ParamEstimator):
        raise ValueError("a report needs the parameter model's chain; the U-Net has no parameters")
    source = "report"
    if isinstance(report, (str, Path)):
        source = str(report)
        try:
            report = json.loads(Path(report).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read the report {source}: {error}") from error
    if not isinstance(report, Mapping) or "effects" not in report:
        raise ValueError(f"{source} has no 'effects': it is not the report of the parameter model's master()")
    item, strength = _estimate(report["effects"], source)
    correction = _residual(report.get("residual_correction"), source)
    if correction is not None:
        _check_correction(correction, source)
    try:
        params = model.chain.from_json([item])
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error
    return params, check_strength(strength, source), correction


def _malformed(source: str, text: str) -> ValueError:
    return ValueError(f"{source}: malformed report: {text}")


def _number(value: Any, field: str, source: str) -> float:
    """``value`` as a float; ``ValueError`` naming ``field`` unless it is a JSON number (not a string such as
    ``"0.5"``, not ``true``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _malformed(source, f"{field} must be a number, got {reprlib.repr(value)}")
    return float(value)


def _entry(mapping: Any, key: str, field: str, source: str) -> Any:
    """``mapping[key]``; ``ValueError`` naming ``field`` when ``mapping`` is not an object or has no ``key``."""
    if not isinstance(mapping, Mapping):
        raise _malformed(source, f"{field} must be an object, got {reprlib.repr(mapping)}")
    if key not in mapping:
        raise _malformed(source, f"{field}.{key} is missing")
    return mapping[key]


def _estimate(effects: Any, source: str) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """The report's ``effects`` as one item of :meth:`~dmaster.effects.Chain.from_json` and the inverse strengths,
    every field checked: each effect of the chain, its presence, its estimated parameters (no other, each a
    number in the parameter's unit) and its inverse strength (missing: 1). An effect the report does not name (it
    was written before the effect joined the chain) is absent."""
    if not isinstance(effects, Mapping):
        raise _malformed(source, f"effects must be an object, got {reprlib.repr(effects)}")
    check_effect_names(effects, source)
    item, strength = {}, {}
    for spec in SPECS:
        field = f"effects.{spec.name}"
        if spec.name not in effects:  # written before the effect joined the chain: absent, as from_json reads it
            item[spec.name], strength[spec.name] = {"present": 0.0, **{p.name: p.neutral for p in spec.params}}, 1.0
            continue
        effect = _entry(effects, spec.name, "effects", source)
        present = _number(_entry(effect, "presence_probability", field, source), f"{field}.presence_probability",
                          source)
        estimated = _entry(effect, "estimated", field, source)
        item[spec.name] = {"present": present, **_parameters(spec, estimated, f"{field}.estimated", source)}
        strength[spec.name] = _number(effect.get("inverse_strength", 1.0), f"{field}.inverse_strength", source)
    return item, strength


def _parameters(spec: EffectSpec, estimated: Any, field: str, source: str) -> dict[str, float]:
    """An effect's ``estimated`` parameters (``{name: {"value": number, "unit": its unit}}``) as numbers."""
    if not isinstance(estimated, Mapping):
        raise _malformed(source, f"{field} must be an object, got {reprlib.repr(estimated)}")
    unknown = [name for name in estimated if name not in spec.names]
    if unknown:
        raise _malformed(source, f"{field}.{unknown[0]} is not a parameter of {spec.name} (its parameters are "
                         f"{', '.join(spec.names)})")
    values = {}
    for param in spec.params:
        named = f"{field}.{param.name}"
        entry = _entry(estimated, param.name, field, source)
        if not isinstance(entry, Mapping) or any(key not in ("value", "unit") for key in entry):
            raise _malformed(source, f"{named} must be {{\"value\": a number, \"unit\": {param.unit!r}}}, got "
                             f"{reprlib.repr(entry)}")
        unit = _entry(entry, "unit", named, source)
        if unit != param.unit:
            raise _malformed(source, f"{named}.unit must be {param.unit!r}, got {unit!r}: give the value in "
                             f"{param.unit or 'no unit'}")
        values[param.name] = _number(_entry(entry, "value", named, source), f"{named}.value", source)
    return values


def _residual(residual: Any, source: str) -> Correction | None:
    """The report's ``residual_correction`` (``None``: none), its level and band values numbers."""
    if residual is None:
        return None
    field = "residual_correction"
    level = _number(_entry(residual, "level_db", field, source), f"{field}.level_db", source)
    bands = _entry(residual, "bands_db", field, source)
    if not isinstance(bands, Mapping):
        raise _malformed(source, f"{field}.bands_db must be an object, got {reprlib.repr(bands)}")
    values = [_number(value, f"{field}.bands_db[{band!r}]", source) for band, value in bands.items()]
    return Correction(torch.tensor(values, dtype=torch.float64), level)


def _check_correction(correction: Correction, source: str) -> None:
    bands = len(band_centres_hz())
    if correction.bands_db.shape != (bands,) or not all_finite(correction.bands_db) or not math.isfinite(
            correction.level_db):
        raise ValueError(f"{source}: residual_correction must hold {bands} finite band values and a finite level")
    largest = float(correction.bands_db.abs().max())
    if largest > MAX_BAND_DB:
        raise ValueError(f"{source}: residual_correction bands_db must lie in [-{MAX_BAND_DB:g}, {MAX_BAND_DB:g}] dB, "
                         f"got {largest:g}")
    if abs(correction.level_db) > MAX_LEVEL_DB:
        raise ValueError(f"{source}: residual_correction level_db must lie in [-{MAX_LEVEL_DB:g}, {MAX_LEVEL_DB:g}] "
                         f"dB, got {correction.level_db:g}")
