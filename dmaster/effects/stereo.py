"""Stereo image: the width, the low-end width and the balance, by mid/side processing of the front pair.

With mid ``M = (L + R) / 2`` and side ``S = (L − R) / 2`` of the front pair (channels 1–2):

    ``S' = S · 10^(width_db / 20) · H(ω)``, ``H`` an RBJ low shelf at :data:`CROSSOVER_HZ` of gain
    ``low_width_db − width_db``;
    ``L' = g · (M + S')``, ``R' = (M − S') / g`` with ``g = 10^(balance_db / 40)``.

The side level against the mid moves by ``width_db`` above the crossover and by ``low_width_db`` below it, and the
left channel ends ``balance_db`` louder than the right. The inverse undoes the steps in reverse order: exact, since
the shelf is minimum phase (its reciprocal, the shelf of negated gain, is stable and causal) and the ranges are
finite dB, so the side is never zeroed.

The ranges and priors are how an unmastered mix's image differs from its master's: too narrow (a mix that collapsed
towards mono) or too wide (an over-wide, phasey one), a low end wider than the master's, channels out of balance.
``low_width_db`` is never negative: folding the bass towards mono is what mastering does, not what it undoes, so the
forward never narrows the low end and the inverse never widens it (a mono low end stays mono; so does a mono
track: the effect is the identity on one channel). Of more than two channels, the front pair is processed and the
others pass through.

Why it joins the chain's linear stage: it is linear and time-invariant on the channel pair, one 2×2 response per
frequency bin, ``diag(g, 1/g) · [[1 + h, 1 − h], [1 − h, 1 + h]] / 2`` with ``h`` the side's response
(:func:`transfer`). :class:`~dmaster.effects.lti.LinearResponse` composes it with the per-channel responses of the
other linear effects, so the stage still filters with one FFT pair each way: a 2×2 product per bin costs far less
than the FFT pair a stage of its own would add. Why right after the EQ: a mastering engineer sets the image after
the tone and before the dynamics, and before the reverb (whose channels have impulse responses of their own, so the
order matters) the inverse's linear stage (EQ, stereo, gain, echo) stays one pass after the reverb's suppression.

>>> import math
>>> from dmaster.synth import music_like
>>> x = music_like(0.5, 44100, 2, seed=0)[None]                 # (batch, channels, samples)
>>> y = forward(x, 44100, width_db=-6.0, low_width_db=4.0, balance_db=1.5)
>>> side = lambda a: float((a[0, 0] - a[0, 1]).square().sum())
>>> round(10 * math.log10(side(y) / side(x)), 1) < 0          # narrower overall
True
>>> restored = inverse(y, 44100, width_db=-6.0, low_width_db=4.0, balance_db=1.5)
>>> bool((restored - x).abs().max() < 1e-5)
True
>>> torch.equal(forward(x[:, :1], 44100, width_db=6.0), x[:, :1])   # mono: the identity
True
"""

from __future__ import annotations

import torch
from dasp_pytorch.signal import biquad

from .lti import angular_frequencies, apply_response, convolution_size, double
from .spec import EffectRole, EffectSpec, Param, Prior, db_to_amplitude

Tensor = torch.Tensor

__all__ = ["CROSSOVER_HZ", "EXACT_INVERSE", "ROLE", "SHELF_Q", "SPEC", "TAIL_SECONDS", "correction_text", "forward",
           "inverse", "side_response", "tail_samples", "transfer"]

EXACT_INVERSE = True
"""Whether :func:`inverse` undoes :func:`forward` exactly."""
CROSSOVER_HZ = 150.0
"""Where the low end's side level (``low_width_db``) gives way to the rest's (``width_db``): the low shelf's
cutoff, Hz."""
SHELF_Q = 0.707
"""The low shelf's quality factor (the steepest shelf without overshoot)."""
TAIL_SECONDS = 0.15
"""The shelf and its reciprocal ring down by far more than 100 dB within this, at every gain in range."""

SPEC = EffectSpec(
    name="stereo",
    params=(
        Param("width_db", "dB", -12.0, 12.0, "linear", Prior("uniform", -9.0, 6.0), 0.0,
              f"side level against the mid above {CROSSOVER_HZ:g} Hz (< 0 narrower, > 0 wider)"),
        Param("low_width_db", "dB", 0.0, 12.0, "linear", Prior("normal", 0.0, 9.0, mean=0.0, std=6.0), 0.0,
              f"side level against the mid below {CROSSOVER_HZ:g} Hz: a low end wider than the master's, never "
              "narrower"),
        Param("balance_db", "dB", -6.0, 6.0, "linear", Prior("normal", -3.0, 3.0, mean=0.0, std=1.5), 0.0,
              "level of the left channel over the right's"),
    ),
    presence_probability=0.4,
    description="stereo image: width, low-end width and balance (mid/side, front pair)",
)
ROLE = EffectRole(position=15, linear="both", reference="image", since=2, mixes_channels=True,
                  forward_text=f"mid/side of the front pair: the side times `10^(width_db/20)` and a low shelf at "
                               f"{CROSSOVER_HZ:g} Hz to `low_width_db` below it; left `+balance_db/2` dB, right "
                               "`−balance_db/2` dB; a 2×2 response per bin in the linear stage; mono: identity",
                  inverse_text="the steps undone in reverse (the shelf's reciprocal): exact")
"""Its place in the chain, reference mode and the docs (:class:`~dmaster.effects.spec.EffectRole`)."""


def correction_text(estimated: dict[str, float]) -> str:
    """What undoing ``estimated`` (:data:`SPEC`'s parameters, physical units) does, in the report's words.

    >>> correction_text({"width_db": -6.0, "low_width_db": 3.0, "balance_db": 1.0})
    'side +6.0 dB above 150 Hz and -3.0 dB below; balance -1.0 dB (left against right)'
    """
    return (f"side {-estimated['width_db']:+.1f} dB above {CROSSOVER_HZ:g} Hz and {-estimated['low_width_db']:+.1f} "
            f"dB below; balance {-estimated['balance_db']:+.1f} dB (left against right)")


def side_response(n_fft: int, sample_rate: float, width_db: Tensor, low_width_db: Tensor) -> Tensor:
    """The side's response ``10^(width_db / 20) · H(ω)`` on an rFFT grid, ``H`` the low shelf to ``low_width_db``.

    Args:
        n_fft: the FFT length.
        sample_rate: Hz (a crossover above 0.45 × the rate sits just below it).
        width_db: ``(batch,)`` dB.
        low_width_db: ``(batch,)`` dB.

    Returns:
        ``(batch, n_fft // 2 + 1)`` complex, of ``width_db``'s precision.
    """
    z_inv = torch.exp(-1j * angular_frequencies(n_fft, width_db))  # e^{-jω}
    powers = torch.stack([torch.ones_like(z_inv), z_inv, z_inv * z_inv])  # (3, bins)
    cutoff = torch.full_like(width_db, min(CROSSOVER_HZ, 0.45 * sample_rate))
    b, a = biquad(low_width_db - width_db, cutoff, torch.full_like(width_db, SHELF_Q), sample_rate, "low_shelf")
    shelf = (b.to(powers.dtype) @ powers) / (a.to(powers.dtype) @ powers)
    return db_to_amplitude(width_db)[:, None] * shelf


def transfer(n_fft: int, sample_rate: float, channels: int, width_db: Tensor, low_width_db: Tensor,
             balance_db: Tensor) -> Tensor:
    """The front pair's 2×2 response per bin, ``diag(g, 1/g) · [[1 + h, 1 − h], [1 − h, 1 + h]] / 2`` with ``h``
    the :func:`side_response` and ``g = 10^(balance_db / 40)``.

    Args:
        n_fft: the FFT length.
        sample_rate: Hz.
        channels: unused (the response acts on the front pair; the chain leaves the other channels alone).
        width_db, low_width_db, balance_db: ``(batch,)`` dB.

    Returns:
        ``(batch, 2, 2, n_fft // 2 + 1)`` complex: output channel ``i`` is ``Σ_j response[:, i, j] · x_j``.
    """
    h = side_response(n_fft, sample_rate, width_db, low_width_db)
    g = db_to_amplitude(balance_db / 2)[:, None]
    same, cross = (1 + h) / 2, (1 - h) / 2
    return torch.stack([torch.stack([g * same, g * cross], 1), torch.stack([cross / g, same / g], 1)], 1)


def tail_samples(sample_rate: float, inverse: bool = False, **params: Tensor) -> int:
    """Samples of response after the end that the FFT grid must hold (the same either way)."""
    return int(TAIL_SECONDS * sample_rate)


def forward(x: Tensor, sample_rate: float, **params: Tensor | float) -> Tensor:
    """Change the stereo image.

    Args:
        x: ``(batch, channels, samples)`` float audio; one channel: returned as it is; more than two: the front
            pair (channels 1–2) is processed, the others pass through.
        sample_rate: Hz.
        **params: ``width_db``, ``low_width_db`` and ``balance_db`` (dB, see :data:`SPEC`), each ``(batch,)`` or a
            scalar; those not given are neutral (0 dB).

    Returns:
        The audio with its image changed, same shape and dtype.

    Raises:
        ValueError: bad audio, or a parameter out of its range (named).
    """
    p = SPEC.prepare(x, params, fill_neutral=True)
    if x.shape[1] < 2:
        return x
    n_fft = convolution_size(x.shape[-1] + tail_samples(sample_rate))
    h = side_response(n_fft, sample_rate, *double({k: p[k] for k in ("width_db", "low_width_db")}).values())
    left, right = x[:, 0], x[:, 1]
    mid, side = (left + right) / 2, (left - right) / 2
    side = apply_response(side[:, None], h[:, None], n_fft)[:, 0]
    g = db_to_amplitude(p["balance_db"] / 2)[:, None]
    return torch.cat([torch.stack([(mid + side) * g, (mid - side) / g], 1), x[:, 2:]], 1)


def inverse(y: Tensor, sample_rate: float, **params: Tensor | float) -> Tensor:
    """Undo :func:`forward` exactly, in float64. Arguments as for :func:`forward`."""
    p = SPEC.prepare(y, params, fill_neutral=True)
    if y.shape[1] < 2:
        return y
    n_fft = convolution_size(y.shape[-1] + tail_samples(sample_rate))
    p = double(p)
    h = side_response(n_fft, sample_rate, p["width_db"], p["low_width_db"])
    g = db_to_amplitude(p["balance_db"] / 2)[:, None]
    left, right = y[:, 0].double() / g, y[:, 1].double() * g
    mid, side = (left + right) / 2, (left - right) / 2
    side = apply_response(side[:, None], 1.0 / h[:, None], n_fft, double_precision=True)[:, 0]
    return torch.cat([torch.stack([mid + side, mid - side], 1).to(y.dtype), y[:, 2:]], 1)
