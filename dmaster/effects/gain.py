"""Broadband gain in dB. The inverse is the negated gain: exact."""

from __future__ import annotations

import torch

from .spec import EffectSpec, Param, Prior, as_param, db_to_amplitude

Tensor = torch.Tensor

EXACT_INVERSE = True
"""Whether :func:`inverse` undoes :func:`forward` exactly."""

SPEC = EffectSpec(
    name="gain",
    params=(
        Param("gain_db", "dB", -24.0, 24.0, "linear", Prior("uniform", -18.0, 9.0), 0.0,
              "broadband level change"),
    ),
    presence_probability=0.7,
    description="level change",
)


def transfer(n_fft: int, sample_rate: float, channels: int, gain_db: Tensor) -> Tensor:
    """Flat real response ``(batch, 1, 1)``; broadcasts over channels and bins."""
    return db_to_amplitude(gain_db)[:, None, None]


def forward(x: Tensor, sample_rate: float, gain_db: Tensor | float) -> Tensor:
    """Scale ``x`` ``(batch, channels, samples)`` by ``gain_db`` dB ``(batch,)``."""
    gain_db = SPEC.prepare(x, {"gain_db": gain_db})["gain_db"]
    return x * db_to_amplitude(gain_db)[:, None, None]


def inverse(y: Tensor, sample_rate: float, gain_db: Tensor | float) -> Tensor:
    """Undo :func:`forward`."""
    return forward(y, sample_rate, -as_param(gain_db, y))


def tail_samples(sample_rate: float, inverse: bool, gain_db: Tensor) -> int:
    return 0
