"""Tonal balance as reference mode compares it: long-term spectra in 40 log-frequency bands (those of
:mod:`dmaster.residual`), EQ curves on the same bands, and the EQ whose curve fits a target in shape.

The band levels are compared with their mean over :data:`MATCH_RANGE_HZ` removed (:func:`centred`): the shape
of the tonal balance, not its level. An EQ's curve is its power response averaged over :data:`CURVE_POINTS`
frequencies inside each band (:func:`eq_curve_db`), which needs no pass over the audio.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from ..effects import eq
from ..residual import BAND_EDGES_HZ, STFT_SIZE, band_centres_hz, band_matrix

__all__ = ["MATCH_RANGE_HZ", "REFINE_STEPS", "band_levels_db", "centred", "describe_bands", "eq_curve_db",
           "long_term_power", "refine_eq", "spectrum_loss"]

Tensor = torch.Tensor

REFINE_STEPS = 6
"""Levenberg–Marquardt steps of :func:`refine_eq`."""
REFINE_DAMPING = 0.01
"""The Levenberg–Marquardt damping the refinement starts from (relative to the normal matrix's diagonal)."""
JACOBIAN_STEP = 1e-6
"""Forward-difference step of the refinement's Jacobian, normalised parameter units."""
PRIOR_WEIGHT = 0.01
"""Weight of the squared distance (normalised units, summed over parameters) from the starting EQ."""
MATCH_RANGE_HZ = (40.0, 16000.0)
"""Bands (by centre) whose levels are compared: the top band holds little but codec cut-offs."""
CURVE_POINTS = 8
"""Frequencies per band at which EQ curves are evaluated (and averaged in power)."""


def long_term_power(windows: Tensor) -> Tensor:
    """Long-term power spectrum ``(STFT_SIZE // 2 + 1,)`` float64 of ``windows`` ``(n, channels, samples)``:
    channels mixed, Hann-windowed frames of :data:`dmaster.residual.STFT_SIZE` averaged."""
    mono = windows.mean(1).float()
    if mono.shape[-1] < STFT_SIZE:
        mono = torch.nn.functional.pad(mono, (0, STFT_SIZE - mono.shape[-1]))
    spectrum = torch.stft(mono, STFT_SIZE, STFT_SIZE // 2, window=torch.hann_window(STFT_SIZE), center=False,
                          return_complex=True)
    return (spectrum.real.square() + spectrum.imag.square()).mean((0, -1)).double()


def band_levels_db(power: Tensor, sample_rate: int) -> Tensor:
    """Bin powers ``(bins,)`` → 40 band levels in dB; bands above Nyquist repeat the last one below."""
    matrix = band_matrix(sample_rate).double()
    db = 10 * torch.log10(power @ matrix + 1e-20)
    filled = int((matrix.sum(0) > 0).sum())
    return torch.cat([db[:filled], db[filled - 1 :].narrow(0, 0, 1).expand(len(db) - filled)])


def spectrum_loss(output_db: Tensor, reference_db: Tensor) -> Tensor:
    """Mean squared difference (dB²) of two band spectra ``(40,)`` (:data:`MATCH_RANGE_HZ`) after removing
    the mean difference: the shape of the tonal balance, not its level.

    >>> flat = torch.zeros(40, dtype=torch.float64)
    >>> bump = flat.index_fill(0, torch.tensor([20]), 1.0)
    >>> round(float(spectrum_loss(flat + 6.0, flat)), 6), float(spectrum_loss(bump, flat))
    (0.0, 0.0249...)
    """
    return (match_weights() * centred(output_db - reference_db).square()).sum()


def match_weights() -> Tensor:
    """``(40,)`` float64: equal weights summing to 1 on the bands inside :data:`MATCH_RANGE_HZ`, 0 outside."""
    centres = band_centres_hz()
    weights = torch.from_numpy(((centres >= MATCH_RANGE_HZ[0]) & (centres <= MATCH_RANGE_HZ[1])).astype(np.float64))
    return weights / weights.sum()


def centred(db: Tensor) -> Tensor:
    """Band levels ``(..., 40)`` less their mean over :data:`MATCH_RANGE_HZ`: the shape, not the level."""
    return db - (match_weights() * db).sum(-1, keepdim=True)


def describe_bands(values: Tensor) -> dict[str, float]:
    """Band values ``(40,)`` as ``{"<centre> Hz": value}``, rounded to 0.01, for the report."""
    return {f"{hz:.0f} Hz": round(float(db), 2) for hz, db in zip(band_centres_hz(), values)}


@lru_cache(maxsize=4)
def _curve_grid(sample_rate: int) -> tuple[Tensor, Tensor]:
    """Where EQ curves are evaluated: angular frequencies spread log-evenly inside the 40 bands
    (:data:`CURVE_POINTS` each, under Nyquist), and the ``(points, 40)`` matrix that averages them per band."""
    edges = np.asarray(BAND_EDGES_HZ)
    hz = np.concatenate([np.geomspace(low, high, CURVE_POINTS + 2)[1:-1] for low, high in zip(edges[:-1], edges[1:])])
    omega = torch.from_numpy(2 * np.pi * np.minimum(hz, 0.499 * sample_rate) / sample_rate)
    averaging = np.kron(np.eye(len(edges) - 1), np.full((CURVE_POINTS, 1), 1.0 / CURVE_POINTS))
    return omega, torch.from_numpy(averaging)


def eq_power(values: dict[str, Tensor], weight: Tensor | float, sample_rate: int) -> Tensor:
    """The EQ's power response on the band curves' frequencies (:func:`dmaster.effects.eq.power_response`)."""
    return eq.power_response(values, _curve_grid(sample_rate)[0], sample_rate, weight)


def curve_db(power: Tensor, sample_rate: int) -> Tensor:
    """A power response from :func:`eq_power` (``(points,)`` or ``(n, points)``) → its 40 band levels in dB."""
    return 10 * torch.log10(power @ _curve_grid(sample_rate)[1])


def eq_curve_db(values: dict[str, Tensor], weight: Tensor | float, sample_rate: int) -> Tensor:
    """The EQ's curve: its band levels in dB (:func:`eq_power`, then :func:`curve_db`)."""
    return curve_db(eq_power(values, weight, sample_rate), sample_rate)


def refine_eq(start: dict[str, Tensor], target_db: Tensor, inverse_db: Tensor, sample_rate: int,
              steps: int = REFINE_STEPS) -> tuple[dict[str, Tensor], list[float]]:
    """The EQ (physical units, batch of one, at full weight) whose correction curve (its band response in dB
    plus ``inverse_db``) fits ``target_db`` ``(40,)``: Levenberg–Marquardt steps on :func:`spectrum_loss` plus
    :data:`PRIOR_WEIGHT` times the squared distance from ``start`` in normalised units (a least-squares problem
    in 18 parameters: each step solves it linearised, the Jacobian by forward differences in one batched
    evaluation). Returns the EQ and the loss before and after."""
    params = eq.SPEC.params
    start_vector = torch.stack([p.normalise(start[p.name].double()) for p in params], 1)[0]
    # Param.denormalise for all parameters at once: linear between the bounds, on a log scale where asked
    logarithmic = torch.tensor([p.scale == "log" for p in params])
    bounds = torch.tensor([[p.minimum, p.maximum] for p in params], dtype=torch.float64)
    bounds = torch.where(logarithmic[:, None], bounds.log(), bounds)
    weights = match_weights()

    def values(offsets: Tensor) -> dict[str, Tensor]:
        """Physical values, each ``(n,)``, of offsets ``(n, parameters)``."""
        warped = torch.lerp(bounds[:, 0], bounds[:, 1], (start_vector + offsets).clamp(0.0, 1.0))
        physical = torch.where(logarithmic, warped.exp(), warped)
        return {p.name: physical[:, i] for i, p in enumerate(params)}

    def residuals(offsets: Tensor) -> Tensor:
        """``(n, 40 + parameters)``, each row's sum of squares the loss: the weighted misfit, then the prior."""
        difference = centred(inverse_db + eq_curve_db(values(offsets), 1.0, sample_rate) - target_db)
        return torch.cat([weights.sqrt() * difference, math.sqrt(PRIOR_WEIGHT) * offsets], 1)

    def fit(offset: Tensor) -> float:
        """:func:`spectrum_loss` alone: the misfit part of the residuals."""
        return float(residuals(offset[None])[0, : len(target_db)].square().sum())

    # the Jacobian by forward differences, all of them in one batched evaluation
    probes = torch.cat([torch.zeros(1, len(params), dtype=torch.float64),
                        JACOBIAN_STEP * torch.eye(len(params), dtype=torch.float64)])
    offset = torch.zeros(len(params), dtype=torch.float64)
    before, damping = fit(offset), REFINE_DAMPING
    for _ in range(steps):
        evaluated = residuals(offset + probes)
        current = evaluated[0]
        jacobian = (evaluated[1:] - current).T / JACOBIAN_STEP
        normal = jacobian.T @ jacobian
        scaled = damping * (torch.diag(normal.diagonal()) + torch.eye(len(params), dtype=torch.float64))
        step = torch.linalg.solve(normal + scaled, -jacobian.T @ current)
        if residuals((offset + step)[None])[0].square().sum() < current.square().sum():
            offset, damping = offset + step, damping / 3
        else:
            damping *= 3
    return {k: v.float() for k, v in values(offset[None]).items()}, [before, fit(offset)]
