"""Degradation parameters in words, with units: the ``.txt`` files and spectrogram notes of ``dmaster demaster``."""

from __future__ import annotations

from typing import Any, Mapping

from ..effects import Chain, EffectSpec, Param

__all__ = ["describe_effect", "describe_params"]

EFFECT_TITLES = {"eq": "EQ"}
"""Titles other than the capitalised effect name."""


def _label(param: Param) -> str:
    for suffix in ("_db", "_hz", "_ms", "_s"):
        if param.name.endswith(suffix):
            return param.name[: -len(suffix)].replace("_", " ").replace("t60", "T60")
    return param.name.replace("_", " ")


def _value_text(param: Param, value: float) -> str:
    if param.unit in ("dB", "dBFS"):
        return f"{value:+.1f} {param.unit}" if param.minimum < 0 else f"{value:.1f} {param.unit}"
    if param.unit == "Hz":
        return f"{value:.0f} Hz"
    if param.unit == ":1":
        return f"{value:.1f}:1"
    if param.unit == "ratio":
        return f"{100 * value:.0f} %"
    if not param.unit:
        return f"{value:.2f}"
    return f"{value:.3g} {param.unit}"


def describe_effect(spec: EffectSpec, values: Mapping[str, Any]) -> str:
    """One effect in words, e.g. ``"EQ: bell 2 +5.8 dB at 2100 Hz, Q 1.40; ..."`` or ``"Echo: off"``.

    Parameters named ``<band>_gain_db``, ``<band>_hz``, ``<band>_q`` are told as one band.

    Args:
        spec: the effect's parameter spec.
        values: ``"present"`` and a value per parameter, in the parameter's unit (one effect of a
            :meth:`~dmaster.effects.Chain.to_json` item).

    >>> from dmaster.effects import SPECS
    >>> echo = next(spec for spec in SPECS if spec.name == "echo")
    >>> describe_effect(echo, {"present": True, "delay_ms": 250.0, "level_db": -12.0})
    'Echo: delay 250 ms, level -12.0 dB'
    """
    title = EFFECT_TITLES.get(spec.name, spec.name.capitalize())
    if not values["present"]:
        return f"{title}: off"
    bands = [p.name.removesuffix("_gain_db") for p in spec.params if p.name.endswith("_gain_db")]
    bands = [b for b in bands if {f"{b}_hz", f"{b}_q"} <= set(spec.names)]
    in_bands = {f"{b}_{s}" for b in bands for s in ("gain_db", "hz", "q")}
    parts = [f"{b.replace('_', ' ')} {values[b + '_gain_db']:+.1f} dB at {values[b + '_hz']:.0f} Hz, "
             f"Q {values[b + '_q']:.2f}" for b in bands]
    rest = [p for p in spec.params if p.name not in in_bands]
    if len(spec.params) == 1:
        parts.append(_value_text(rest[0], values[rest[0].name]))
    elif rest:
        parts.append(", ".join(f"{_label(p)} {_value_text(p, values[p.name])}" for p in rest))
    return f"{title}: {'; '.join(parts)}"


def describe_params(chain: Chain, item: Mapping[str, Mapping[str, Any]], present_only: bool = False) -> list[str]:
    """One line per effect, in processing order.

    Args:
        chain: the chain whose parameters ``item`` holds.
        item: one item of :meth:`~dmaster.effects.Chain.to_json`.
        present_only: leave out the effects that are off.
    """
    return [describe_effect(spec, item[spec.name]) for spec in chain.specs
            if item[spec.name]["present"] or not present_only]
