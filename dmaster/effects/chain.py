"""The mastering chain EQ → gain → echo → reverb → compressor, forward and inverse.

Parameters of a batch are a :data:`ChainParams` mapping: per effect, a
``"present"`` weight ``(batch,)`` in ``[0, 1]`` (1 = on, 0 = identity; values in
between blend, which keeps the chain differentiable in the estimated presence)
and each parameter ``(batch,)`` in physical units.

EQ, gain, echo and reverb are linear and time-invariant, so the chain
multiplies their transfer functions and filters once (one FFT pair for four
effects); the inverse does the same for EQ, gain and echo.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import torch
from torch import nn

from . import compressor, echo, eq, gain, reverb
from .lti import apply_response, convolution_size, double
from .spec import EffectSpec, Param, check_audio, check_chain_rate, needs_grad

Tensor = torch.Tensor
ChainParams = dict[str, dict[str, Tensor]]
"""Parameters of a batch: ``{effect: {"present": (batch,), parameter: (batch,) ...}}``, physical units."""

__all__ = ["EFFECTS", "SPECS", "SPEC_VERSION", "Chain", "ChainParams", "ExtraResponse"]


class ExtraResponse(NamedTuple):
    """An LTI response to multiply into the chain's linear stage (:meth:`Chain.inverse`'s ``extra``).

    Args:
        response: ``n_fft`` → complex or real response on that rFFT grid.
        tail_samples: padding it needs.
    """

    response: Callable[[int], Tensor]
    """``n_fft`` → response ``(batch or 1, 1 or channels, n_fft // 2 + 1)``."""
    tail_samples: int
    """Samples of padding it needs (either side, for a zero-phase response)."""


EFFECTS: tuple[ModuleType, ...] = (eq, gain, echo, reverb, compressor)
"""Effect modules in processing order; each has ``SPEC``, ``forward`` and ``inverse``."""
SPECS: tuple[EffectSpec, ...] = tuple(m.SPEC for m in EFFECTS)
SPEC_VERSION = 1
"""Bumped whenever a parameter, range or the order changes; stored with checkpoints."""


def _present(params: Mapping[str, Tensor]) -> Tensor:
    return params["present"]


def _values(params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v for k, v in params.items() if k != "present"}


class Chain(nn.Module):
    """EQ → gain → echo → reverb → compressor at a fixed sample rate: forward (degrade) and inverse.

    Args:
        sample_rate: Hz, at least 8000; the audio's rate.
        compressor_inverse_steps: fixed-point passes of the compressor's inverse.

    >>> chain = Chain(44100)
    >>> clean = 0.1 * torch.randn(2, 2, 22050, generator=torch.Generator().manual_seed(0))  # (batch, channels, samples)
    >>> params = chain.sample_params(2, torch.Generator().manual_seed(0))  # presence and settings per item
    >>> degraded = chain(clean, params)
    >>> restored = chain.inverse(degraded, params)
    >>> restored.shape
    torch.Size([2, 2, 22050])
    >>> chain.to_json(params)[0]["echo"]
    {'present': True, 'delay_ms': 44.7504, 'level_db': -17.8484}

    With only the exactly invertible effects on, the round trip is exact to float32 rounding:

    >>> for name in ("reverb", "compressor"):
    ...     params[name]["present"] = torch.zeros(2)
    >>> (chain.inverse(chain(clean, params), params) - clean).abs().max() < 1e-4
    tensor(True)
    """

    def __init__(self, sample_rate: int = 44100, compressor_inverse_steps: int = 8):
        super().__init__()
        check_chain_rate(sample_rate)
        self.sample_rate = sample_rate
        self.compressor_inverse_steps = compressor_inverse_steps

    # -- parameters ---------------------------------------------------------------------------

    @property
    def specs(self) -> tuple[EffectSpec, ...]:
        """Every effect's parameter spec, in processing order."""
        return SPECS

    @property
    def effect_names(self) -> tuple[str, ...]:
        """``("eq", "gain", "echo", "reverb", "compressor")``."""
        return tuple(s.name for s in SPECS)

    @property
    def flat_params(self) -> tuple[tuple[str, Param], ...]:
        """Every continuous parameter as ``(effect name, Param)``, in vector order."""
        return tuple((s.name, p) for s in SPECS for p in s.params)

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None,
                      presence: Mapping[str, float] | None = None) -> ChainParams:
        """Draw presence flags and parameters from the priors.

        Args:
            batch_size: parameter sets to draw.
            generator: the random generator (CPU); ``None`` uses torch's global one.
            presence: how often an effect is on, per effect name, where not its spec's
                ``presence_probability``. The draws are the same either way; only the thresholds move.

        Returns:
            :data:`ChainParams` on the CPU, float32: presence 0 or 1, parameters in physical units.
        """
        presence = presence or {}
        unknown = sorted(set(presence) - set(self.effect_names))
        if unknown:
            raise ValueError(f"presence: unknown effects {unknown}; effects are {', '.join(self.effect_names)}")
        params: ChainParams = {}
        for spec in SPECS:
            present = torch.rand(batch_size, generator=generator) < presence.get(spec.name, spec.presence_probability)
            params[spec.name] = {"present": present.float(), **spec.sample(batch_size, generator)}
        return params

    def neutral_params(self, batch_size: int, present: bool = False) -> ChainParams:
        """Every effect at its neutral parameters.

        Args:
            batch_size: parameter sets.
            present: every effect's presence; ``False`` (0) makes the chain the identity.
        """
        return {s.name: {"present": torch.full((batch_size,), float(present)), **s.neutral(batch_size)}
                for s in SPECS}

    def validate(self, params: Mapping[str, Mapping[str, Tensor]], batch_size: int) -> None:
        """Check parameters.

        Args:
            params: :data:`ChainParams`, one entry per effect.
            batch_size: the batch size every tensor must have.

        Raises:
            ValueError: naming the first effect or parameter that is missing, unknown or invalid.
        """
        missing = [n for n in self.effect_names if n not in params]
        unknown = [n for n in params if n not in self.effect_names]
        if missing or unknown:
            raise ValueError(f"chain parameters: missing effects {missing}, unknown effects {unknown}")
        for spec in SPECS:
            effect = params[spec.name]
            if "present" not in effect:
                raise ValueError(f"{spec.name}: 'present' weight (batch,) in [0, 1] is missing")
            present = effect["present"]
            if present.shape != (batch_size,) or not torch.isfinite(present).all() \
                    or (present < 0).any() or (present > 1).any():
                raise ValueError(f"{spec.name}.present must be shaped ({batch_size},) with values in [0, 1]")
            spec.validate(_values(effect), batch_size)

    def _prepared(self, params: Mapping[str, Mapping[str, Tensor]], like: Tensor) -> ChainParams:
        check_audio(like)
        self.validate(params, like.shape[0])
        return {name: {k: v.to(device=like.device, dtype=like.dtype) for k, v in effect.items()}
                for name, effect in params.items()}

    # -- processing ---------------------------------------------------------------------------

    def _linear(self, x: Tensor, params: ChainParams, modules: Sequence[ModuleType], invert: bool,
                extra: ExtraResponse | None = None, exact: bool = True) -> Tensor:
        """Apply (or undo) consecutive LTI effects with one FFT pair, blending by presence,
        times an ``extra`` response when given.

        Responses of effects with an exact inverse are computed in float64, so that the
        inverse cancels them; the reverb's (the costliest, with no exact inverse) in the
        audio's precision. The inverse's responses (all float64) are inverted and blended
        in place when no gradient is needed."""
        active = [m for m in modules if bool((_present(params[m.SPEC.name]) > 0).any())]
        if not active and extra is None:
            return x
        tail = sum(m.tail_samples(self.sample_rate, invert, **_values(params[m.SPEC.name])) for m in active)
        n_fft = convolution_size(x.shape[-1] + tail + (extra.tail_samples if extra else 0))
        in_place = invert and not needs_grad(x, *(v for m in active for v in params[m.SPEC.name].values()))
        response: Tensor | None = None if extra is None else extra.response(n_fft)
        for m in active:
            effect = params[m.SPEC.name]
            values = double(_values(effect)) if invert or m.EXACT_INVERSE else _values(effect)
            h = m.transfer(n_fft, self.sample_rate, x.shape[1], **values)
            if invert:
                h = h.reciprocal_() if in_place else 1.0 / h
            present = _present(effect)
            if not bool((present == 1).all()):
                weight = present.double()[:, None, None]
                h = h.sub_(1.0).mul_(weight).add_(1.0) if in_place else 1.0 + weight * (h - 1.0)
            response = h if response is None else response * h
        return apply_response(x, response, n_fft, double_precision=invert and exact)

    def _blend(self, x: Tensor, processed: Tensor, present: Tensor) -> Tensor:
        return torch.lerp(x, processed, present[:, None, None])  # x + present·(processed − x), one pass

    def forward(self, x: Tensor, params: Mapping[str, Mapping[str, Tensor]]) -> Tensor:
        """Degrade audio (the "unmastering" direction).

        Args:
            x: ``(batch, channels, samples)`` float audio at :attr:`sample_rate`.
            params: :data:`ChainParams` for the batch; presence between 0 and 1 blends.

        Returns:
            The degraded audio, same shape, dtype and device (it may exceed ±1; nothing is clipped).

        Raises:
            ValueError: bad audio or parameters (named).
        """
        params = self._prepared(params, x)
        y = self._linear(x, params, (eq, gain, echo, reverb), invert=False)
        comp = params["compressor"]
        if bool((_present(comp) > 0).any()):
            y = self._blend(y, compressor.forward(y, self.sample_rate, **_values(comp)), _present(comp))
        return y

    def inverse(self, y: Tensor, params: Mapping[str, Mapping[str, Tensor]],
                extra: ExtraResponse | None = None, exact: bool = True) -> Tensor:
        """Undo :meth:`forward`: compressor, reverb, then echo, gain and EQ; absent effects are skipped.

        Args:
            y: ``(batch, channels, samples)`` float audio at :attr:`sample_rate`.
            params: :data:`ChainParams`; each effect's inverse is blended with the identity by its
                presence (``master()`` passes its correction strengths here).
            extra: an LTI response (e.g. a residual correction) applied with the EQ, gain and echo.
            exact: filter with them in float64, so that a round trip of the exact inverses is exact to
                float32 rounding; ``False`` filters in the audio's precision, for less time (the
                responses stay float64).

        Returns:
            The restored audio, same shape, dtype and device.
        """
        params = self._prepared(params, y)
        x = y
        for m, kwargs in ((compressor, {"steps": self.compressor_inverse_steps}), (reverb, {})):
            effect = params[m.SPEC.name]
            if bool((_present(effect) > 0).any()):
                x = self._blend(x, m.inverse(x, self.sample_rate, **_values(effect), **kwargs), _present(effect))
        return self._linear(x, params, (eq, gain, echo), invert=True, extra=extra, exact=exact)

    # -- conversions --------------------------------------------------------------------------

    def to_vectors(self, params: Mapping[str, Mapping[str, Tensor]]) -> tuple[Tensor, Tensor]:
        """Parameters as the networks see them.

        Args:
            params: :data:`ChainParams`.

        Returns:
            ``(presence (batch, effects), normalised parameters (batch, n_params) in [0, 1])``, in
            :attr:`effect_names` and :attr:`flat_params` order.
        """
        presence = torch.stack([_present(params[s.name]) for s in SPECS], dim=1)
        normalised = torch.stack([p.normalise(params[e][p.name]) for e, p in self.flat_params], dim=1)
        return presence, normalised

    def from_vectors(self, presence: Tensor, normalised: Tensor) -> ChainParams:
        """Inverse of :meth:`to_vectors`.

        Args:
            presence: ``(batch, effects)`` in ``[0, 1]``.
            normalised: ``(batch, n_params)``, clamped to ``[0, 1]``.

        Returns:
            :data:`ChainParams` in physical units.
        """
        normalised = normalised.clamp(0.0, 1.0)
        params: ChainParams = {s.name: {"present": presence[:, i]} for i, s in enumerate(SPECS)}
        for column, (effect, p) in enumerate(self.flat_params):
            params[effect][p.name] = p.denormalise(normalised[:, column])
        return params

    def to_json(self, params: Mapping[str, Mapping[str, Tensor]]) -> list[dict[str, Any]]:
        """One JSON-ready dict per batch item, in physical units rounded to 4 decimals; ``present`` is a
        bool when 0 or 1, else a probability."""
        batch_size = len(_present(params[SPECS[0].name]))
        items = []
        for i in range(batch_size):
            item = {}
            for spec in SPECS:
                effect = params[spec.name]
                present = float(_present(effect)[i])
                item[spec.name] = {"present": bool(present) if present in (0.0, 1.0) else round(present, 4),
                                   **{p.name: round(float(effect[p.name][i]), 4) for p in spec.params}}
            items.append(item)
        return items

    def from_json(self, items: Sequence[Mapping[str, Mapping[str, Any]]] | str) -> ChainParams:
        """Inverse of :meth:`to_json`.

        Args:
            items: the list of per-item dicts, or its JSON text.

        Returns:
            :data:`ChainParams`, validated.

        Raises:
            ValueError: no items, or a missing or invalid value (named).
        """
        if isinstance(items, str):
            items = json.loads(items)
        if not items:
            raise ValueError("no parameter sets given")
        params: ChainParams = {}
        for spec in SPECS:
            try:
                params[spec.name] = {key: torch.tensor([float(item[spec.name][key]) for item in items])
                                     for key in ("present", *spec.names)}
            except KeyError as error:
                raise ValueError(f"{spec.name}: missing {error} in the JSON parameters") from None
        self.validate(params, len(items))
        return params
