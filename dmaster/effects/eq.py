"""Parametric EQ: low shelf, four peaking bells, high shelf (RBJ biquads).

Each bell lives in its own fixed, non-overlapping log-frequency range, so every
band has an identity and estimators face no permutation problem. The biquads
come from ``dasp_pytorch.signal.biquad`` and are applied by frequency sampling.
RBJ bells and shelves with negated gain are the exact reciprocals of the
originals (and minimum phase), so the inverse is exact.

>>> x = 0.1 * torch.randn(1, 2, 4410, generator=torch.Generator().manual_seed(0))  # (batch, channels, samples)
>>> y = forward(x, 44100, bell_3_hz=2000.0, bell_3_q=1.0, bell_3_gain_db=6.0)  # other bands flat
>>> (inverse(y, 44100, bell_3_hz=2000.0, bell_3_q=1.0, bell_3_gain_db=6.0) - x).abs().max() < 1e-5
tensor(True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from dasp_pytorch.signal import biquad

from .lti import angular_frequencies, filter_lti
from .spec import EffectRole, EffectSpec, Param, Prior

Tensor = torch.Tensor

__all__ = ["BANDS", "Band", "EXACT_INVERSE", "MAX_GAIN_DB", "QUIET_BAND_DB", "ROLE", "SPEC", "correction_text",
           "forward", "inverse", "power_response", "tail_samples", "transfer"]


@dataclass(frozen=True)
class Band:
    """One band of the EQ and the ranges of its frequency (Hz) and quality factor."""

    name: str
    kind: str  # "low_shelf" | "peaking" | "high_shelf", as dasp_pytorch names them
    min_hz: float
    max_hz: float
    min_q: float
    max_q: float


BANDS: tuple[Band, ...] = (
    Band("low_shelf", "low_shelf", 30.0, 300.0, 0.5, 1.0),
    Band("bell_1", "peaking", 60.0, 250.0, 0.3, 4.0),
    Band("bell_2", "peaking", 250.0, 1000.0, 0.3, 4.0),
    Band("bell_3", "peaking", 1000.0, 4000.0, 0.3, 4.0),
    Band("bell_4", "peaking", 4000.0, 14000.0, 0.3, 4.0),
    Band("high_shelf", "high_shelf", 2000.0, 16000.0, 0.5, 1.0),
)
MAX_GAIN_DB = 15.0
"""The largest boost or cut of a band, dB."""
# RBJ bells and shelves in these ranges (and their inverses) ring down by far more than 100 dB within this.
TAIL_SECONDS = 0.75


def _band_params(band: Band) -> tuple[Param, ...]:
    centre = (band.min_hz * band.max_hz) ** 0.5
    what = "cutoff" if "shelf" in band.kind else "centre"
    return (
        Param(f"{band.name}_hz", "Hz", band.min_hz, band.max_hz, "log",
              Prior("uniform", band.min_hz, band.max_hz), centre, f"{band.name.replace('_', ' ')} {what} frequency"),
        Param(f"{band.name}_q", "", band.min_q, band.max_q, "log",
              Prior("uniform", band.min_q, band.max_q), (band.min_q * band.max_q) ** 0.5,
              f"{band.name.replace('_', ' ')} quality factor"),
        Param(f"{band.name}_gain_db", "dB", -MAX_GAIN_DB, MAX_GAIN_DB, "linear",
              Prior("normal", -12.0, 12.0, mean=0.0, std=6.0), 0.0,
              f"{band.name.replace('_', ' ')} gain"),
    )


EXACT_INVERSE = True
"""Whether :func:`inverse` undoes :func:`forward` exactly."""

SPEC = EffectSpec(
    name="eq",
    params=tuple(p for band in BANDS for p in _band_params(band)),
    presence_probability=0.8,
    description="tonal colouring: low shelf, four bells in fixed ranges, high shelf",
)
ROLE = EffectRole(position=10, linear="both", reference="tone_and_dynamics", since=1,
                  parameters_text="low shelf, four bells in fixed non-overlapping ranges (60–250 Hz, 250–1000 Hz, "
                                  "1–4 kHz, 4–14 kHz), high shelf; each Hz, Q, gain dB",
                  forward_text="RBJ biquads (dasp-pytorch's design), frequency sampling",
                  inverse_text="the same biquads with negated gains: exact")
"""Its place in the chain, reference mode and the docs (:class:`~dmaster.effects.spec.EffectRole`)."""
QUIET_BAND_DB = 0.5
"""Bands whose correction is smaller than this are not spelled out in :func:`correction_text`."""


def correction_text(estimated: dict[str, float]) -> str:
    """What undoing ``estimated`` (:data:`SPEC`'s parameters, physical units) does, in the report's words: each band
    whose gain is at least :data:`QUIET_BAND_DB`.

    >>> flat = {p.name: p.neutral for p in SPEC.params}
    >>> correction_text(flat)
    'all bands within ±0.5 dB'
    >>> correction_text({**flat, "bell_3_gain_db": 6.0, "bell_3_hz": 2500.0, "bell_3_q": 1.5})
    'bell 3 -6.0 dB at 2500 Hz (Q 1.50)'
    """
    spelled = [f"{band.name.replace('_', ' ')} {-estimated[band.name + '_gain_db']:+.1f} dB at "
               f"{estimated[band.name + '_hz']:.0f} Hz (Q {estimated[band.name + '_q']:.2f})"
               for band in BANDS if abs(estimated[band.name + "_gain_db"]) >= QUIET_BAND_DB]
    return "; ".join(spelled) or f"all bands within ±{QUIET_BAND_DB} dB"


def _response_on_grid(n_fft: int, sample_rate: float, params: dict[str, Tensor]) -> Tensor:
    """Complex response ``(batch, n_fft // 2 + 1)`` of the cascade of all bands."""
    any_param = next(iter(params.values()))
    z_inv = torch.exp(-1j * angular_frequencies(n_fft, any_param))  # e^{-jω}
    powers = torch.stack([torch.ones_like(z_inv), z_inv, z_inv * z_inv])  # (3, bins)
    response = None
    for band in BANDS:
        # Bands above 0.45 × the sample rate (only at low rates) sit just below Nyquist.
        frequency = params[f"{band.name}_hz"].clamp(max=0.45 * sample_rate)
        b, a = biquad(params[f"{band.name}_gain_db"], frequency, params[f"{band.name}_q"], sample_rate, band.kind)
        band_response = (b.to(powers.dtype) @ powers) / (a.to(powers.dtype) @ powers)  # (batch, bins)
        response = band_response if response is None else response * band_response
    return response


def transfer(n_fft: int, sample_rate: float, channels: int, **params: Tensor) -> Tensor:
    """The cascade's complex response on an rFFT grid.

    On long grids the biquads are evaluated on a short grid (twice the tail), turned
    into an impulse response and transformed onto the long grid: the same response
    to within the tail's decay, for a fraction of the cost.

    Args:
        n_fft: the FFT length.
        sample_rate: Hz.
        channels: unused (the EQ is the same on every channel).
        **params: every parameter of :data:`SPEC`, each ``(batch,)``.

    Returns:
        ``(batch, 1, n_fft // 2 + 1)`` complex.
    """
    short = 1 << math.ceil(math.log2(2 * tail_samples(sample_rate)))
    if n_fft <= short:
        return _response_on_grid(n_fft, sample_rate, params)[:, None, :]
    impulse_response = torch.fft.irfft(_response_on_grid(short, sample_rate, params), short)
    return torch.fft.rfft(impulse_response, n_fft)[:, None, :]


_BANDS_BY_KIND = tuple((kind, tuple(band.name for band in BANDS if band.kind == kind))
                       for kind in dict.fromkeys(band.kind for band in BANDS))


def power_response(params: dict[str, Tensor], omega: Tensor, sample_rate: float,
                   weight: Tensor | float = 1.0) -> Tensor:
    """The cascade's power response ``|H(e^{jω})|²`` at any angular frequencies, blended by ``weight`` as the chain
    blends presence (``1 + w·(H − 1)``): what reference mode and the report draw, without an FFT grid.

    Args:
        params: every parameter of :data:`SPEC` (physical units), each ``(n,)``.
        omega: ``(points,)`` float64 angular frequencies, radians per sample.
        sample_rate: Hz.
        weight: the blend weight, a number or a ``(1,)`` tensor. At 1.0 (a number) the response is evaluated in
            real arithmetic, cheaper, and ``n`` may exceed 1.

    Returns:
        ``(n, points)`` float64 at full weight, else ``(points,)`` (a batch of one).

    >>> flat = {p.name: torch.tensor([p.neutral]) for p in SPEC.params}
    >>> omega = torch.linspace(0.01, 3.0, 5, dtype=torch.float64)
    >>> power_response(flat, omega, 44100).allclose(torch.ones(1, 5, dtype=torch.float64))
    True
    """
    cosines = torch.stack([torch.ones_like(omega), torch.cos(omega), torch.cos(2 * omega)])
    powers = torch.polar(torch.ones(3, len(omega), dtype=torch.float64), -torch.arange(3.0)[:, None] * omega)
    full = not isinstance(weight, Tensor) and weight == 1.0
    count = len(params[f"{BANDS[0].name}_gain_db"])
    response = torch.ones_like(omega if full else powers[0])
    for kind, bands in _BANDS_BY_KIND:  # one biquad design per filter type, its bands (and EQs) batched
        gain_db, frequency, q = (torch.cat([params[f"{band}_{name}"].double() for band in bands])
                                 for name in ("gain_db", "hz", "q"))
        b, a = biquad(gain_db, frequency.clamp(max=0.45 * sample_rate), q, sample_rate, kind)  # (bands · n, 3)
        if full:  # |c0 + c1·e^{−jω} + c2·e^{−2jω}|² = Σc² + 2(c0c1 + c1c2)·cos ω + 2c0c2·cos 2ω
            ratio = (_power_coefficients(b) @ cosines) / (_power_coefficients(a) @ cosines)
            response = response * ratio.reshape(len(bands), count, -1).prod(0)
        else:
            response = response * ((b.to(powers.dtype) @ powers) / (a.to(powers.dtype) @ powers)).prod(0)
    if full:
        return response
    response = 1.0 + weight * (response - 1.0)
    return response.real.square() + response.imag.square()


def _power_coefficients(c: Tensor) -> Tensor:
    """Biquad coefficients ``(filters, 3)`` → the cosine-series coefficients ``(filters, 3)`` of their power."""
    c0, c1, c2 = c.unbind(1)
    return torch.stack([c0 * c0 + c1 * c1 + c2 * c2, 2 * (c0 * c1 + c1 * c2), 2 * c0 * c2], 1)


def forward(x: Tensor, sample_rate: float, **params: Tensor | float) -> Tensor:
    """Equalise audio.

    Args:
        x: ``(batch, channels, samples)`` float audio.
        sample_rate: Hz.
        **params: named as in :data:`SPEC` (``bell_2_hz`` in Hz, ``bell_2_q``, ``bell_2_gain_db`` in dB …),
            each ``(batch,)`` or a scalar; bands not given are flat.

    Returns:
        The equalised audio, same shape and dtype.
    """
    full = SPEC.prepare(x, params, fill_neutral=True)
    return filter_lti(x, sample_rate, transfer, full, tail_samples(sample_rate))


def inverse(y: Tensor, sample_rate: float, **params: Tensor | float) -> Tensor:
    """Undo :func:`forward` exactly (the same bands with negated gains), filtering in float64.

    Args:
        y: ``(batch, channels, samples)`` float audio.
        sample_rate: Hz.
        **params: as for :func:`forward`.
    """
    full = SPEC.prepare(y, params, fill_neutral=True)
    negated = {k: -v if k.endswith("_gain_db") else v for k, v in full.items()}
    return filter_lti(y, sample_rate, transfer, negated, tail_samples(sample_rate), double_precision=True)


def tail_samples(sample_rate: float, inverse: bool = False, **params: Tensor) -> int:
    """Samples of response after the end that the FFT grid must hold (the same either way)."""
    return int(TAIL_SECONDS * sample_rate)
