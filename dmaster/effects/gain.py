"""Broadband gain in dB. The inverse is the negated gain: exact.

>>> x = torch.ones(1, 2, 4)                                  # (batch, channels, samples)
>>> forward(x, 44100, gain_db=-20.0)[0, 0].tolist()
[0.10000000149011612, 0.10000000149011612, 0.10000000149011612, 0.10000000149011612]
>>> torch.equal(inverse(forward(x, 44100, gain_db=6.0), 44100, gain_db=6.0), x)
True
"""

from __future__ import annotations

import torch

from .spec import EffectRole, EffectSpec, Param, Prior, as_param, db_to_amplitude

Tensor = torch.Tensor

__all__ = ["EXACT_INVERSE", "ROLE", "SPEC", "correction_text", "forward", "inverse", "tail_samples", "transfer"]

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
ROLE = EffectRole(position=20, linear="both", reference="tone_and_dynamics", since=1,
                  forward_text="multiply", inverse_text="exact")
"""Its place in the chain, reference mode and the docs (:class:`~dmaster.effects.spec.EffectRole`)."""


def correction_text(estimated: dict[str, float]) -> str:
    """What undoing ``estimated`` (:data:`SPEC`'s parameters, physical units) does, in the report's words.

    >>> correction_text({"gain_db": -6.0})
    '+6.0 dB'
    """
    return f"{-estimated['gain_db']:+.1f} dB"


def transfer(n_fft: int, sample_rate: float, channels: int, gain_db: Tensor) -> Tensor:
    """Flat real response ``(batch, 1, 1)`` of ``gain_db`` ``(batch,)`` dB; broadcasts over channels and bins."""
    return db_to_amplitude(gain_db)[:, None, None]


def forward(x: Tensor, sample_rate: float, gain_db: Tensor | float) -> Tensor:
    """Scale audio.

    Args:
        x: ``(batch, channels, samples)`` float audio.
        sample_rate: Hz (unused: the gain is the same at every rate).
        gain_db: ``(batch,)`` or a scalar, dB.
    """
    gain_db = SPEC.prepare(x, {"gain_db": gain_db})["gain_db"]
    return x * db_to_amplitude(gain_db)[:, None, None]


def inverse(y: Tensor, sample_rate: float, gain_db: Tensor | float) -> Tensor:
    """Undo :func:`forward`: the same gain negated. Arguments as for :func:`forward`."""
    return forward(y, sample_rate, -as_param(gain_db, y))


def tail_samples(sample_rate: float, inverse: bool, gain_db: Tensor) -> int:
    """0: a gain has no tail."""
    return 0
