"""Single echo ``y(t) = x(t) + a·x(t − d)`` with a fractional delay ``d``.

Forward and inverse act in the frequency domain: ``Y = X·(1 + a·e^{-jωd})`` and
``X = Y / (1 + a·e^{-jωd})``. The inverse is an IIR comb whose impulse response
``(−a)^k`` at lags ``k·d`` decays geometrically; the FFT grid is padded until
that response has fallen below :data:`INVERSE_TOLERANCE`, so nothing wraps
around and the round trip is exact for ``a < 1``. Both directions are
differentiable in ``a`` and ``d``.

>>> x = torch.zeros(1, 1, 400)                               # (batch, channels, samples)
>>> x[0, 0, 0] = 1.0                                         # an impulse
>>> y = forward(x, 8000, delay_ms=25.0, level_db=-6.0)        # at 8 kHz, 25 ms = 200 samples
>>> [round(float(y[0, 0, t]), 3) for t in (0, 200)]
[1.0, 0.501]
>>> (inverse(y, 8000, delay_ms=25.0, level_db=-6.0) - x).abs().max() < 1e-5
tensor(True)
"""

from __future__ import annotations

import math

import torch

from .lti import delay_response, filter_lti
from .spec import EffectRole, EffectSpec, Param, Prior, db_to_amplitude

Tensor = torch.Tensor

__all__ = ["EXACT_INVERSE", "INVERSE_TOLERANCE", "ROLE", "SPEC", "correction_text", "forward", "inverse",
           "tail_samples", "transfer"]

EXACT_INVERSE = True
"""Whether :func:`inverse` undoes :func:`forward` exactly."""

SPEC = EffectSpec(
    name="echo",
    params=(
        Param("delay_ms", "ms", 20.0, 800.0, "log", Prior("uniform", 40.0, 600.0), 200.0,
              "time between the sound and its echo"),
        Param("level_db", "dB", -40.0, -3.0, "linear", Prior("uniform", -24.0, -6.0), -40.0,
              "echo level relative to the sound"),
    ),
    presence_probability=0.4,
    description="one discrete echo (slap-back or delay)",
)
ROLE = EffectRole(position=30, linear="both", reference="ambience", since=1,
                  forward_text="`y = x + a·x(t−d)`, fractional delay",
                  inverse_text="`Y / (1 + a·e^{−jωd})` on a grid padded until `a^k` < 1e-5: exact")
"""Its place in the chain, reference mode and the docs (:class:`~dmaster.effects.spec.EffectRole`)."""
INVERSE_TOLERANCE = 1e-5
"""The inverse's grid holds its comb response until it has decayed below this."""


def correction_text(estimated: dict[str, float]) -> str:
    """What undoing ``estimated`` (:data:`SPEC`'s parameters, physical units) does, in the report's words.

    >>> correction_text({"delay_ms": 180.0, "level_db": -9.0})
    'echo at 180.0 ms, -9.0 dB removed by its inverse comb'
    """
    return f"echo at {estimated['delay_ms']:.1f} ms, {estimated['level_db']:.1f} dB removed by its inverse comb"


def transfer(n_fft: int, sample_rate: float, channels: int, delay_ms: Tensor, level_db: Tensor) -> Tensor:
    """``1 + a·e^{-jωd}`` on an rFFT grid: ``(batch, 1, n_fft // 2 + 1)`` complex, from ``delay_ms``
    (ms) and ``level_db`` (dB), each ``(batch,)``."""
    delay = delay_ms * (sample_rate / 1000.0)
    return 1.0 + db_to_amplitude(level_db)[:, None, None] * delay_response(delay, n_fft)


def tail_samples(sample_rate: float, inverse: bool, delay_ms: Tensor, level_db: Tensor) -> int:
    """Samples of response after the end: one delay forward; inverse, until ``a^k`` < tolerance."""
    delay = float(delay_ms.detach().max()) * sample_rate / 1000.0
    if not inverse:
        return math.ceil(delay) + 64
    repeats = math.ceil(math.log(INVERSE_TOLERANCE) / math.log(float(db_to_amplitude(level_db.detach().max()))))
    return math.ceil(delay * repeats) + 64


def forward(x: Tensor, sample_rate: float, delay_ms: Tensor | float, level_db: Tensor | float) -> Tensor:
    """Add an echo.

    Args:
        x: ``(batch, channels, samples)`` float audio.
        sample_rate: Hz.
        delay_ms: ``(batch,)`` or a scalar: the time between the sound and its echo, ms (fractional
            delays are exact).
        level_db: ``(batch,)`` or a scalar: the echo's level relative to the sound, dB.

    Returns:
        ``x + a·x(t − d)``, same shape and dtype (the echo past the end is cut off).
    """
    params = SPEC.prepare(x, {"delay_ms": delay_ms, "level_db": level_db})
    return filter_lti(x, sample_rate, transfer, params, tail_samples(sample_rate, False, **params))


def inverse(y: Tensor, sample_rate: float, delay_ms: Tensor | float, level_db: Tensor | float) -> Tensor:
    """Remove the echo that :func:`forward` added (exact up to :data:`INVERSE_TOLERANCE`), filtering in
    float64. Arguments as for :func:`forward`."""
    params = SPEC.prepare(y, {"delay_ms": delay_ms, "level_db": level_db})
    return filter_lti(y, sample_rate, transfer, params, tail_samples(sample_rate, True, **params), invert=True)
