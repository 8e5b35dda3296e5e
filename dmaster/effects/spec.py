"""Parameter specs: every parameter of the chain is described here once.

A :class:`Param` carries name, unit, range, scale and the prior the generator
draws from. It drives sampling, normalisation to and from ``[0, 1]`` (what the
networks see), validation of user-given values and documentation. An
:class:`EffectSpec` groups the parameters of one effect with the probability
that the generator switches the effect on.

>>> delay = Param("delay_ms", "ms", 20.0, 800.0, "log", Prior("uniform", 40.0, 600.0), 200.0, "echo delay")
>>> delay.range_text
'[20, 800] ms'
>>> x = torch.tensor([20.0, 800.0])
>>> delay.normalise(x).tolist()
[0.0, 1.0]
>>> torch.allclose(delay.denormalise(delay.normalise(x)), x)
True
>>> delay.validate(torch.tensor([900.0]))
Traceback (most recent call last):
    ...
ValueError: delay_ms = 900 is out of range; it must lie in [20, 800] ms
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping

import torch

Scale = Literal["linear", "log"]
Tensor = torch.Tensor

__all__ = ["EffectRole", "EffectSpec", "Param", "Prior", "Scale", "all_finite", "amplitude_to_db", "as_param",
           "check_audio", "check_chain_rate", "db_to_amplitude", "log_uniform_prior", "needs_grad"]


@dataclass(frozen=True)
class Prior:
    """Distribution the generator draws a parameter from, in physical units.

    Args:
        kind: ``"uniform"`` draws uniformly between ``low`` and ``high`` on the parameter's scale (so a
            log-scale parameter is log-uniform); ``"normal"`` draws ``mean ± std`` (on the linear
            scale) clipped to ``[low, high]``.
        low: the lowest value drawn, inside the parameter's range.
        high: the highest value drawn, inside the parameter's range.
        mean: the normal prior's mean.
        std: the normal prior's standard deviation.
    """

    kind: Literal["uniform", "normal"]
    low: float
    high: float
    mean: float = 0.0
    std: float = 1.0


@dataclass(frozen=True)
class Param:
    """One continuous parameter of an effect, described once.

    Args:
        name: the keyword the effect's functions take, e.g. ``"delay_ms"``.
        unit: the physical unit, e.g. ``"ms"`` (``""`` for none).
        minimum: the lowest valid value, in ``unit``.
        maximum: the highest valid value, in ``unit``.
        scale: ``"linear"`` or ``"log"``: the scale of normalisation to ``[0, 1]`` and of uniform priors.
        prior: what the generator draws from.
        neutral: the value at which the parameter changes nothing (or least).
        description: what the parameter means, for documentation.

    Raises:
        ValueError: an empty range, a log scale over non-positive values, or a prior outside the range.
    """

    name: str
    unit: str
    minimum: float
    maximum: float
    scale: Scale
    prior: Prior
    neutral: float
    description: str

    def __post_init__(self) -> None:
        if not self.minimum < self.maximum:
            raise ValueError(f"{self.name}: minimum must be below maximum")
        if self.scale == "log" and self.minimum <= 0:
            raise ValueError(f"{self.name}: a log-scale parameter needs a positive range")
        if not self.minimum <= self.prior.low < self.prior.high <= self.maximum:
            raise ValueError(f"{self.name}: prior must lie inside the range")

    def _warp(self, value: Tensor) -> Tensor:
        return torch.log(value) if self.scale == "log" else value

    def _unwarp(self, value: Tensor) -> Tensor:
        return torch.exp(value) if self.scale == "log" else value

    @property
    def range_text(self) -> str:
        """The range as text, e.g. ``"[20, 800] ms"``, for error messages."""
        return f"[{self.minimum:g}, {self.maximum:g}] {self.unit}".rstrip()

    def normalise(self, value: Tensor) -> Tensor:
        """Physical units → ``[0, 1]`` on the parameter's scale (what the networks see).

        Args:
            value: values of any shape, in the parameter's unit.

        Returns:
            The same shape, 0 at :attr:`minimum` and 1 at :attr:`maximum`.
        """
        low, high = self._bounds(value)
        return (self._warp(value) - low) / (high - low)

    def denormalise(self, unit_value: Tensor) -> Tensor:
        """``[0, 1]`` → physical units (the inverse of :meth:`normalise`).

        Args:
            unit_value: values of any shape in ``[0, 1]``.
        """
        low, high = self._bounds(unit_value)
        return self._unwarp(low + unit_value * (high - low))

    def _bounds(self, like: Tensor) -> tuple[Tensor, Tensor]:
        bounds = torch.tensor([self.minimum, self.maximum], dtype=like.dtype, device=like.device)
        warped = self._warp(bounds)
        return warped[0], warped[1]

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw values from the prior.

        Args:
            batch_size: how many values.
            generator: the random generator (CPU); ``None`` uses torch's global one.

        Returns:
            ``(batch_size,)`` float32 on the CPU, in the parameter's unit.
        """
        prior = self.prior
        if prior.kind == "uniform":
            bounds = self._warp(torch.tensor([prior.low, prior.high], dtype=torch.float64))
            u = torch.rand(batch_size, generator=generator, dtype=torch.float64)
            value = self._unwarp(bounds[0] + u * (bounds[1] - bounds[0]))
        else:
            z = torch.randn(batch_size, generator=generator, dtype=torch.float64)
            value = (prior.mean + prior.std * z).clamp(prior.low, prior.high)
        return value.float()

    def validate(self, value: Tensor, batch_size: int | None = None) -> None:
        """Check a batch of values.

        Args:
            value: ``(batch,)`` tensor in the parameter's unit.
            batch_size: the batch size it must have; ``None`` accepts any.

        Raises:
            TypeError: ``value`` is not a tensor.
            ValueError: naming the parameter and its range, if ``value`` is non-finite, out of range or
                not shaped ``(batch_size,)``.
        """
        if not isinstance(value, Tensor):
            raise TypeError(f"{self.name} must be a torch.Tensor, got {type(value).__name__}")
        if value.ndim != 1 or (batch_size is not None and value.shape[0] != batch_size):
            raise ValueError(
                f"{self.name} must be shaped (batch,) = ({batch_size},), got {tuple(value.shape)}"
            )
        if not torch.isfinite(value).all():
            raise ValueError(f"{self.name} must be finite; its range is {self.range_text}")
        slack = 1e-6 * (self.maximum - self.minimum)
        if (value < self.minimum - slack).any() or (value > self.maximum + slack).any():
            bad = value[(value < self.minimum - slack) | (value > self.maximum + slack)][0]
            raise ValueError(
                f"{self.name} = {float(bad):g} is out of range; it must lie in {self.range_text}"
            )


@dataclass(frozen=True)
class EffectSpec:
    """The parameters of one effect and how often the generator switches it on.

    Args:
        name: the effect's name in :data:`dmaster.effects.ChainParams`, e.g. ``"echo"``.
        params: its parameters, in vector order.
        presence_probability: how often the generator switches the effect on, in ``[0, 1]``.
        description: what the effect does, for documentation.
    """

    name: str
    params: tuple[Param, ...]
    presence_probability: float
    description: str

    @property
    def names(self) -> tuple[str, ...]:
        """The parameters' names, in vector order."""
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> Param:
        """The parameter called ``name``; ``KeyError`` lists the effect's parameters if there is none."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"{self.name} has no parameter {name!r}; it has {', '.join(self.names)}")

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Draw every parameter from its prior (see :meth:`Param.sample`): ``{name: (batch_size,)}``."""
        return {p.name: p.sample(batch_size, generator) for p in self.params}

    def neutral(self, batch_size: int) -> dict[str, Tensor]:
        """Parameters at which the effect is the identity (or closest to it): ``{name: (batch_size,)}``."""
        return {p.name: torch.full((batch_size,), p.neutral) for p in self.params}

    def validate(self, values: Mapping[str, Tensor], batch_size: int) -> None:
        """Check that exactly this effect's parameters are given and each is valid.

        Args:
            values: ``{name: (batch_size,)}`` in physical units.
            batch_size: the batch size every value must have.

        Raises:
            ValueError: naming missing or unknown parameters, or the first invalid one and its range.
        """
        missing = [n for n in self.names if n not in values]
        unknown = [n for n in values if n not in self.names]
        if missing or unknown:
            raise ValueError(
                f"{self.name}: missing parameters {missing}, unknown parameters {unknown}; "
                f"expected {list(self.names)}"
            )
        for p in self.params:
            p.validate(values[p.name], batch_size)

    def prepare(self, audio: Tensor, values: Mapping[str, Tensor | float],
                fill_neutral: bool = False) -> dict[str, Tensor]:
        """Check ``audio`` and an effect function's parameters, and make them tensors.

        Args:
            audio: ``(batch, channels, samples)`` float tensor (:func:`check_audio`).
            values: ``{name: (batch,) tensor or scalar}`` in physical units.
            fill_neutral: parameters not given take their neutral values (else all are required).

        Returns:
            ``{name: (batch,)}`` of the audio's dtype and device.

        Raises:
            ValueError: bad audio, or missing, unknown or invalid parameters (named).
        """
        check_audio(audio)
        if fill_neutral:
            unknown = [n for n in values if n not in self.names]
            if unknown:
                raise ValueError(f"{self.name}: unknown parameters {unknown}; expected some of {list(self.names)}")
            values = {p.name: values.get(p.name, p.neutral) for p in self.params}
        prepared = {name: as_param(value, audio) for name, value in values.items()}
        self.validate(prepared, audio.shape[0])
        return prepared

    def describe(self) -> str:
        """A Markdown table of the parameters, for documentation."""
        rows = [f"**{self.name}** — {self.description} (on with p = {self.presence_probability:g})\n",
                "| parameter | unit | range | scale | prior | meaning |",
                "|---|---|---|---|---|---|"]
        for p in self.params:
            prior = (f"uniform {p.prior.low:g}…{p.prior.high:g}" if p.prior.kind == "uniform"
                     else f"normal {p.prior.mean:g} ± {p.prior.std:g}, clipped {p.prior.low:g}…{p.prior.high:g}")
            rows.append(f"| `{p.name}` | {p.unit} | {p.minimum:g} … {p.maximum:g} | {p.scale} | {prior} "
                        f"| {p.description} |")
        return "\n".join(rows)


@dataclass(frozen=True)
class EffectRole:
    """What the rest of dmaster asks of an effect, declared by its module beside its ``SPEC`` and read through
    the registry (:mod:`dmaster.effects.registry`): nothing else names effects one by one.

    Args:
        position: its place in the processing order: the chain runs effects forward by increasing position and
            inverts them in reverse.
        linear: ``"both"``: linear and time-invariant with an exact inverse: the chain multiplies its ``transfer``
            response into a linear stage forward and divides by it inverse (computed in float64, so that the
            division cancels it). ``"forward"``: its forward is such a response, its inverse a function
            (``inverse``). ``"none"``: forward and inverse are functions.
        reference: its group in reference mode: ``"tone_and_dynamics"`` (swapped by default), ``"ambience"``
            (swapped with ``ambience=True``) or ``"image"`` (matched by measurement, :mod:`dmaster.mastering.image`).
        since: the spec version (:data:`dmaster.effects.SPEC_VERSION`) at which its parameters took their present
            meaning: when it joined the chain, or when a parameter, range or scale of it last changed. A checkpoint
            or generated pair of an earlier version cannot carry it. The effects of version 1 draw from the caller's
            generator, the others each from one of its own (:meth:`dmaster.effects.Chain.sample_params`).
        mixes_channels: its response mixes the front pair (channels 1–2), a 2×2 response per frequency bin
            ``(batch, 2, 2, bins)``, instead of filtering every channel on its own; on mono audio it is the
            identity, and channels after the front pair pass through it untouched.
        iterative_inverse: its ``inverse`` takes ``steps``, the chain's fixed-point passes.
        forward_text: how its forward works, one line for the docs' table of effects.
        inverse_text: how its inverse works, likewise.
        parameters_text: the docs' summary of its parameters (``""``: each parameter with its range).

    >>> EffectRole(10, "sideways", "tone_and_dynamics", 1)
    Traceback (most recent call last):
        ...
    ValueError: linear must be one of ('both', 'forward', 'none'), got 'sideways'
    """

    position: float
    linear: Literal["both", "forward", "none"]
    reference: Literal["tone_and_dynamics", "ambience", "image"]
    since: int
    mixes_channels: bool = False
    iterative_inverse: bool = False
    forward_text: str = ""
    inverse_text: str = ""
    parameters_text: str = ""

    def __post_init__(self) -> None:
        for name, value, allowed in (("linear", self.linear, ("both", "forward", "none")),
                                     ("reference", self.reference, ("tone_and_dynamics", "ambience", "image"))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if self.mixes_channels and self.linear != "both":
            raise ValueError("an effect that mixes channels must be linear both ways (a 2×2 response per bin)")
        if not (isinstance(self.since, int) and self.since >= 1):
            raise ValueError(f"since must be a spec version ≥ 1, got {self.since!r}")


def all_finite(x: Tensor) -> bool:
    """Whether ``x`` (any shape) holds no NaN or ±inf, judged by its extremes (NaN propagates to
    them), without a mask as large as ``x``."""
    if x.numel() == 0:
        return True
    low, high = torch.aminmax(x.detach())
    return bool(torch.isfinite(low) & torch.isfinite(high))


def needs_grad(*tensors: Tensor) -> bool:
    """Whether autograd records operations on any of ``tensors`` (else in-place fast paths are safe)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def db_to_amplitude(db: Tensor) -> Tensor:
    """``10^(dB / 20)``: decibels to a linear amplitude factor, element-wise."""
    return torch.pow(10.0, db / 20.0)


def amplitude_to_db(amplitude: Tensor, floor: float = 1e-12) -> Tensor:
    """``20·log10(max(amplitude, floor))``: a linear amplitude to decibels, element-wise."""
    return 20.0 * torch.log10(amplitude.clamp_min(floor))


def log_uniform_prior(low: float, high: float) -> Prior:
    """A uniform prior (log-uniform on a log-scale parameter) between ``low`` and ``high``."""
    return Prior("uniform", low, high)


def check_audio(x: Tensor, name: str = "audio") -> None:
    """Raise a clear error unless ``x`` is a finite, non-empty float tensor
    shaped ``(batch, channels, samples)``.

    Args:
        x: the audio to check.
        name: how the error messages call it.

    Raises:
        TypeError: not a float tensor.
        ValueError: the wrong number of dimensions, empty, or NaN or inf inside.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 3:
        raise ValueError(f"{name} must be shaped (batch, channels, samples), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if not all_finite(x):
        raise ValueError(f"{name} contains NaN or inf")


def check_chain_rate(sample_rate: float) -> None:
    """Raise ``ValueError`` unless ``sample_rate`` is a finite number of Hz of at least 8000."""
    if not (isinstance(sample_rate, (int, float)) and math.isfinite(sample_rate) and sample_rate >= 8000):
        raise ValueError(f"sample_rate must be a finite number of Hz ≥ 8000, got {sample_rate!r}")


def as_param(value: Tensor | float, like: Tensor) -> Tensor:
    """A ``(batch,)`` parameter as a tensor of ``like``'s dtype and device; a scalar is expanded to
    ``like``'s batch size (``like.shape[0]``)."""
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return value.expand(like.shape[0]) if value.ndim == 0 else value
