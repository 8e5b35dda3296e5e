"""The mastering chain, forward and inverse: every effect of the registry (:mod:`.registry`) in its processing
order (each effect's ``ROLE.position``; docs/chain.md's table).

Parameters of a batch are a :data:`ChainParams` mapping: per effect, a
``"present"`` weight ``(batch,)`` in ``[0, 1]`` (1 = on, 0 = identity; values in
between blend, which keeps the chain differentiable in the estimated presence)
and each parameter ``(batch,)`` in physical units.

Consecutive effects whose forward is linear and time-invariant are one stage:
the chain multiplies their transfer functions (a 2×2 response per bin for an
effect that mixes the front pair) and filters once, with one FFT pair. The
inverse does the same for consecutive effects with an exact linear inverse;
the others (a compressor, a reverb's suppression) are stages of their own.
"""

from __future__ import annotations

import hashlib
import json
from importlib import import_module
from types import ModuleType
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import torch
from torch import nn

from .lti import LinearResponse, apply_response, blend_pair, convolution_size, double, invert_pair
from .registry import EFFECTS, SPEC_VERSION, SPECS, check_effects, in_processing_order
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


class _Effects(tuple):
    """A chain's effect modules: shared, not copied, by ``copy.deepcopy`` (modules cannot be), and pickled by their
    import names, so that a chain, and a model holding one, can be copied and sent to worker processes."""

    def __deepcopy__(self, memo: dict) -> _Effects:
        return self

    def __reduce__(self) -> tuple:
        return _import_effects, (tuple(module.__name__ for module in self),)


def _import_effects(names: tuple[str, ...]) -> _Effects:
    return _Effects(import_module(name) for name in names)


def _own_generator(generator: torch.Generator | None, name: str) -> torch.Generator:
    """A CPU generator for the draws of the effect ``name``, seeded from the SHA-256 of ``generator``'s state (torch's
    global one for ``None``) and the name, leaving ``generator`` as it was."""
    state = (torch.default_generator if generator is None else generator).get_state()
    digest = hashlib.sha256(state.numpy().tobytes() + name.encode("utf-8")).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") >> 1)


Stage = tuple[bool, tuple[ModuleType, ...]]
"""``(linear, effects)``: a linear stage's effects in processing order, or one effect run by its function."""


def _present(params: Mapping[str, Tensor]) -> Tensor:
    return params["present"]


def _values(params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v for k, v in params.items() if k != "present"}


def _stages(order: Sequence[ModuleType], linear: tuple[str, ...]) -> list[Stage]:
    """Consecutive effects of ``order`` whose ``ROLE.linear`` is in ``linear`` as one linear stage (in processing
    order), every other effect a stage of its own."""
    stages: list[Stage] = []
    for module in order:
        if module.ROLE.linear not in linear:
            stages.append((False, (module,)))
        elif stages and stages[-1][0]:
            stages[-1] = (True, (*stages[-1][1], module))
        else:
            stages.append((True, (module,)))
    return [(True, tuple(in_processing_order(modules))) if is_linear else (is_linear, modules)
            for is_linear, modules in stages]


class Chain(nn.Module):
    """The registry's effects in processing order at a fixed sample rate: forward (degrade) and inverse.

    Args:
        sample_rate: Hz, at least 8000; the audio's rate.
        compressor_inverse_steps: fixed-point passes of iterative inverses (the compressor's).
        estimated: the effects whose presence and parameters :meth:`to_vectors` and :meth:`from_vectors` carry:
            what a parameter model estimates (``None``: every effect). :meth:`from_vectors` gives the others
            absent, at their neutral settings.
        effects: the effect modules (:mod:`.registry`; default: all of them).

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

    >>> for module in chain.effects:
    ...     if module.ROLE.linear != "both":
    ...         params[module.SPEC.name]["present"] = torch.zeros(2)
    >>> (chain.inverse(chain(clean, params), params) - clean).abs().max() < 1e-4
    tensor(True)
    """

    def __init__(self, sample_rate: int = 44100, compressor_inverse_steps: int = 8,
                 estimated: Sequence[str] | None = None, effects: Sequence[ModuleType] = EFFECTS):
        super().__init__()
        check_chain_rate(sample_rate)
        self.sample_rate = sample_rate
        self.compressor_inverse_steps = compressor_inverse_steps
        self.effects = _Effects(check_effects(effects))
        """The effect modules, in the order they joined (:data:`.registry.EFFECTS`)."""
        names = [m.SPEC.name for m in self.effects]
        unknown = [name for name in (names if estimated is None else estimated) if name not in names]
        if unknown or isinstance(estimated, str):
            raise ValueError(f"estimated: unknown effects {unknown or [estimated]}; effects are {', '.join(names)}")
        self.estimated: tuple[str, ...] = tuple(n for n in names if estimated is None or n in estimated)
        """The effects :meth:`to_vectors` and :meth:`from_vectors` carry, in :attr:`effect_names`' order."""

    @property
    def _forward_stages(self) -> list[Stage]:
        """Forward: consecutive effects with a linear forward as one stage, in processing order."""
        return _stages(in_processing_order(self.effects), ("both", "forward"))

    @property
    def _inverse_stages(self) -> list[Stage]:
        """Inverse: consecutive effects with an exact linear inverse as one stage, in reverse processing order; the
        last stage linear (the extra response is applied last)."""
        stages = _stages(in_processing_order(self.effects)[::-1], ("both",))
        return stages if stages and stages[-1][0] else [*stages, (True, ())]

    # -- parameters ---------------------------------------------------------------------------

    @property
    def specs(self) -> tuple[EffectSpec, ...]:
        """Every effect's parameter spec, in the order the effects joined (the order of :data:`ChainParams`)."""
        return tuple(m.SPEC for m in self.effects)

    @property
    def effect_names(self) -> tuple[str, ...]:
        """Every effect's name, in :attr:`specs`' order."""
        return tuple(s.name for s in self.specs)

    @property
    def processing_order(self) -> tuple[str, ...]:
        """Every effect's name, in the order :meth:`forward` runs them."""
        return tuple(m.SPEC.name for m in in_processing_order(self.effects))

    @property
    def flat_params(self) -> tuple[tuple[str, Param], ...]:
        """Every continuous parameter of the :attr:`estimated` effects as ``(effect name, Param)``, in vector
        order."""
        return tuple((s.name, p) for s in self.specs if s.name in self.estimated for p in s.params)

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

        The effects of the first spec version (``ROLE.since == 1``) draw from ``generator`` in turn; every later
        one from a generator of its own, seeded from ``generator``'s state after them and the effect's name, which
        leaves ``generator`` as it was: adding an effect changes no other draw, in the chain or after it (the
        windows, the clean share the caller goes on to draw).
        """
        presence = presence or {}
        unknown = sorted(set(presence) - set(self.effect_names))
        if unknown:
            raise ValueError(f"presence: unknown effects {unknown}; effects are {', '.join(self.effect_names)}")
        params: ChainParams = {}
        for module in sorted(self.effects, key=lambda m: m.ROLE.since > 1):  # stable: the first version's first
            spec = module.SPEC
            draws = generator if module.ROLE.since == 1 else _own_generator(generator, spec.name)
            present = torch.rand(batch_size, generator=draws) < presence.get(spec.name, spec.presence_probability)
            params[spec.name] = {"present": present.float(), **spec.sample(batch_size, draws)}
        return {name: params[name] for name in self.effect_names}

    def neutral_params(self, batch_size: int, present: bool = False) -> ChainParams:
        """Every effect at its neutral parameters.

        Args:
            batch_size: parameter sets.
            present: every effect's presence; ``False`` (0) makes the chain the identity.
        """
        return {s.name: {"present": torch.full((batch_size,), float(present)), **s.neutral(batch_size)}
                for s in self.specs}

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
        for spec in self.specs:
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
        inverse cancels them; the others' (the reverb's, the costliest) in the audio's
        precision. The inverse's per-channel responses (all float64) are inverted and blended
        in place when no gradient is needed. An effect that mixes the front pair is skipped on
        mono audio (where it is the identity)."""
        active = [m for m in modules if bool((_present(params[m.SPEC.name]) > 0).any())
                  and (x.shape[1] >= 2 or not m.ROLE.mixes_channels)]
        if not active and extra is None:
            return x
        tail = sum(m.tail_samples(self.sample_rate, invert, **_values(params[m.SPEC.name])) for m in active)
        n_fft = convolution_size(x.shape[-1] + tail + (extra.tail_samples if extra else 0))
        in_place = invert and not needs_grad(x, *(v for m in active for v in params[m.SPEC.name].values()))
        total = LinearResponse(None if extra is None else extra.response(n_fft))
        for m in active:
            effect = params[m.SPEC.name]
            values = double(_values(effect)) if invert or m.ROLE.linear == "both" else _values(effect)
            h = m.transfer(n_fft, self.sample_rate, x.shape[1], **values)
            present, mixes = _present(effect), m.ROLE.mixes_channels
            if mixes:
                h = invert_pair(h) if invert else h
                if not bool((present == 1).all()):
                    h = blend_pair(h, present.double())
            else:
                if invert:
                    h = h.reciprocal_() if in_place else 1.0 / h
                if not bool((present == 1).all()):
                    weight = present.double()[:, None, None]
                    h = h.sub_(1.0).mul_(weight).add_(1.0) if in_place else 1.0 + weight * (h - 1.0)
            total = total.preceded_by(h, mixes) if invert else total.followed_by(h, mixes)
        return apply_response(x, total.per_channel, n_fft, double_precision=invert and exact, pair=total.pair)

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
        y = x
        for linear, modules in self._forward_stages:
            if linear:
                y = self._linear(y, params, modules, invert=False)
                continue
            effect = params[modules[0].SPEC.name]
            if bool((_present(effect) > 0).any()):
                y = self._blend(y, modules[0].forward(y, self.sample_rate, **_values(effect)), _present(effect))
        return y

    def inverse(self, y: Tensor, params: Mapping[str, Mapping[str, Tensor]],
                extra: ExtraResponse | None = None, exact: bool = True) -> Tensor:
        """Undo :meth:`forward`: the effects in reverse processing order; absent effects are skipped.

        Args:
            y: ``(batch, channels, samples)`` float audio at :attr:`sample_rate`.
            params: :data:`ChainParams`; each effect's inverse is blended with the identity by its
                presence (``master()`` passes its correction strengths here).
            extra: an LTI response (e.g. a residual correction) applied with the last linear stage (the EQ's).
            exact: filter with them in float64, so that a round trip of the exact inverses is exact to
                float32 rounding; ``False`` filters in the audio's precision, for less time (the
                responses stay float64).

        Returns:
            The restored audio, same shape, dtype and device.
        """
        params = self._prepared(params, y)
        x = y
        stages = self._inverse_stages
        for number, (linear, modules) in enumerate(stages):
            if linear:
                last = number == len(stages) - 1
                x = self._linear(x, params, modules, invert=True, extra=extra if last else None, exact=exact)
                continue
            module, effect = modules[0], params[modules[0].SPEC.name]
            steps = {"steps": self.compressor_inverse_steps} if module.ROLE.iterative_inverse else {}
            if bool((_present(effect) > 0).any()):
                x = self._blend(x, module.inverse(x, self.sample_rate, **_values(effect), **steps), _present(effect))
        return x

    # -- conversions --------------------------------------------------------------------------

    def to_vectors(self, params: Mapping[str, Mapping[str, Tensor]]) -> tuple[Tensor, Tensor]:
        """Parameters as the networks see them.

        Args:
            params: :data:`ChainParams`.

        Returns:
            ``(presence (batch, estimated effects), normalised parameters (batch, n_params) in [0, 1])``, in
            :attr:`estimated` and :attr:`flat_params` order.
        """
        presence = torch.stack([_present(params[name]) for name in self.estimated], dim=1)
        normalised = torch.stack([p.normalise(params[e][p.name]) for e, p in self.flat_params], dim=1)
        return presence, normalised

    def from_vectors(self, presence: Tensor, normalised: Tensor) -> ChainParams:
        """Inverse of :meth:`to_vectors`.

        Args:
            presence: ``(batch, estimated effects)`` in ``[0, 1]``.
            normalised: ``(batch, n_params)``, clamped to ``[0, 1]``.

        Returns:
            :data:`ChainParams` in physical units; effects not :attr:`estimated` absent (presence 0) at their
            neutral settings.
        """
        normalised = normalised.clamp(0.0, 1.0)
        batch, like = presence.shape[0], {"dtype": normalised.dtype, "device": normalised.device}
        estimated = {name: {"present": presence[:, i]} for i, name in enumerate(self.estimated)}
        for column, (effect, p) in enumerate(self.flat_params):
            estimated[effect][p.name] = p.denormalise(normalised[:, column])
        return {s.name: estimated[s.name] if s.name in estimated else
                {"present": torch.zeros(batch, dtype=presence.dtype, device=presence.device),
                 **{p.name: torch.full((batch,), p.neutral, **like) for p in s.params}} for s in self.specs}

    def to_json(self, params: Mapping[str, Mapping[str, Tensor]]) -> list[dict[str, Any]]:
        """One JSON-ready dict per batch item, in physical units rounded to 4 decimals; ``present`` is a
        bool when 0 or 1, else a probability."""
        batch_size = len(_present(params[self.specs[0].name]))
        items = []
        for i in range(batch_size):
            item = {}
            for spec in self.specs:
                effect = params[spec.name]
                present = float(_present(effect)[i])
                item[spec.name] = {"present": bool(present) if present in (0.0, 1.0) else round(present, 4),
                                   **{p.name: round(float(effect[p.name][i]), 4) for p in spec.params}}
            items.append(item)
        return items

    def from_json(self, items: Sequence[Mapping[str, Mapping[str, Any]]] | str) -> ChainParams:
        """Inverse of :meth:`to_json`. An effect an item does not name is absent (presence 0, neutral settings):
        parameters written before the effect joined the chain read as they meant.

        Args:
            items: the list of per-item dicts, or its JSON text.

        Returns:
            :data:`ChainParams`, validated.

        Raises:
            ValueError: no items, an unknown effect, or a missing or invalid value (named).
        """
        if isinstance(items, str):
            items = json.loads(items)
        if not items:
            raise ValueError("no parameter sets given")
        unknown = sorted({name for item in items for name in item} - set(self.effect_names))
        if unknown:
            raise ValueError(f"unknown effects {unknown} in the JSON parameters; effects are "
                             f"{', '.join(self.effect_names)}")
        params: ChainParams = {}
        for spec in self.specs:
            absent = {"present": 0.0, **{p.name: p.neutral for p in spec.params}}
            try:
                params[spec.name] = {key: torch.tensor([float(item.get(spec.name, absent)[key]) for item in items])
                                     for key in ("present", *spec.names)}
            except KeyError as error:
                raise ValueError(f"{spec.name}: missing {error} in the JSON parameters") from None
        self.validate(params, len(items))
        return params
