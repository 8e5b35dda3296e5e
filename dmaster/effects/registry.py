"""The registry of effects: every effect module, in the order it joined dmaster, and what the rest of dmaster reads
from them. The chain's stages, the report's wording, reference mode's groups, the checks of checkpoints and
generated pairs, and the docs' table of effects come from here; nothing else names effects one by one.

An effect module provides

* ``SPEC`` (:class:`~dmaster.effects.spec.EffectSpec`): its parameters, each described once;
* ``ROLE`` (:class:`~dmaster.effects.spec.EffectRole`): its place in the processing order, whether it is linear
  and whether it mixes channels, its group in reference mode, the spec version its parameters date from, its line
  in the docs;
* ``forward(x, sample_rate, **params)`` and ``inverse(y, sample_rate, **params)`` on ``(batch, channels,
  samples)`` tensors;
* ``transfer(n_fft, sample_rate, channels, **params)`` and ``tail_samples(sample_rate, inverse, **params)`` where
  ``ROLE.linear`` says its forward is linear;
* ``correction_text(estimated)``: what undoing it does, in the report's words.

To add an effect: write its module with ``ROLE.since`` one above the :data:`SPEC_VERSION` before it, append it to
:data:`EFFECTS` (at the end, so that the vectors the networks see, and so the heads of earlier checkpoints, keep
their order), and rewrite docs/chain.md's table with :func:`effects_table`. The chain, the generator (its ``SPEC``
priors; its draws come from a generator of its own, so that every other draw stays as it was:
:meth:`~dmaster.effects.Chain.sample_params`), the report and reference mode need nothing more; a parameter model
trained before it simply does not estimate it.

>>> [module.SPEC.name for module in EFFECTS][:3]               # the order they joined: the vectors' order
['eq', 'gain', 'echo']
>>> effect("echo").ROLE.reference
'ambience'
>>> "eq" in group("tone_and_dynamics") and "echo" not in group("tone_and_dynamics")
True
"""

from __future__ import annotations

from types import ModuleType
from typing import Iterable, Sequence

from . import compressor, echo, eq, gain, reverb, stereo
from .spec import EffectRole, EffectSpec

__all__ = ["EFFECTS", "SPECS", "SPEC_VERSION", "check_carried", "check_effects", "effect", "effects_table",
           "estimated_at", "group", "in_processing_order"]

EFFECTS: tuple[ModuleType, ...] = (eq, gain, echo, reverb, compressor, stereo)
"""Every effect module, in the order it joined dmaster: the order of :data:`~dmaster.effects.ChainParams`, of the
vectors the networks see and of the report. The processing order is the modules' ``ROLE.position``
(:func:`in_processing_order`)."""


def check_effects(effects: Sequence[ModuleType]) -> tuple[ModuleType, ...]:
    """``effects`` as a tuple, after checking that each module provides what the registry asks of it (the module
    docstring) and that no two share a name or a position.

    Raises:
        ValueError: naming the module and what it lacks.
    """
    effects = tuple(effects)
    for module in effects:
        name = getattr(getattr(module, "SPEC", None), "name", module.__name__)
        if not isinstance(getattr(module, "SPEC", None), EffectSpec) or not isinstance(
                getattr(module, "ROLE", None), EffectRole):
            raise ValueError(f"effect {name}: an effect module needs SPEC (an EffectSpec) and ROLE (an EffectRole)")
        needed = ["forward", "inverse", "correction_text"]
        if module.ROLE.linear != "none":
            needed += ["transfer", "tail_samples"]
        missing = [function for function in needed if not callable(getattr(module, function, None))]
        if missing:
            raise ValueError(f"effect {name}: its module lacks {', '.join(missing)}")
    for what, values in (("name", [m.SPEC.name for m in effects]), ("position", [m.ROLE.position for m in effects])):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"effects share a {what}: {', '.join(repeated)}")
    return effects


EFFECTS = check_effects(EFFECTS)
SPECS: tuple[EffectSpec, ...] = tuple(m.SPEC for m in EFFECTS)
"""Every effect's parameter spec, in :data:`EFFECTS`' order."""
SPEC_VERSION = max(m.ROLE.since for m in EFFECTS)
"""The version of the parameters' meaning: the highest ``ROLE.since``. Stored with checkpoints and generated pairs;
one of an earlier version is refused only for an effect it carries whose parameters changed since
(:func:`check_carried`)."""


def effect(name: str, effects: Sequence[ModuleType] = EFFECTS) -> ModuleType:
    """The module of the effect called ``name``; ``KeyError`` lists the effects if there is none."""
    for module in effects:
        if module.SPEC.name == name:
            return module
    raise KeyError(f"no effect {name!r}; effects are {', '.join(m.SPEC.name for m in effects)}")


def in_processing_order(effects: Sequence[ModuleType] = EFFECTS) -> tuple[ModuleType, ...]:
    """``effects`` in the order the chain runs them forward (by ``ROLE.position``)."""
    return tuple(sorted(effects, key=lambda m: m.ROLE.position))


def group(reference: str, effects: Sequence[ModuleType] = EFFECTS) -> tuple[str, ...]:
    """The names of the effects of a reference-mode group (``ROLE.reference``), in :data:`EFFECTS`' order."""
    return tuple(m.SPEC.name for m in effects if m.ROLE.reference == reference)


def estimated_at(spec_version: int, effects: Sequence[ModuleType] = EFFECTS) -> tuple[str, ...]:
    """The effects a parameter model of ``spec_version`` estimates when its checkpoint does not list them (those
    from before checkpoints did): the effects of that version, in :data:`EFFECTS`' order."""
    return tuple(m.SPEC.name for m in effects if m.ROLE.since <= spec_version)


def check_carried(names: Iterable[str], spec_version: int, source: str,
                  effects: Sequence[ModuleType] = EFFECTS) -> None:
    """Raise ``ValueError`` naming ``source`` unless something made at ``spec_version`` (a checkpoint, a generated
    pair) can carry the parameters of the effects ``names`` as this dmaster reads them: every effect known here
    and its parameters' meaning unchanged since (``ROLE.since`` ≤ ``spec_version``). Effects added since are no
    reason to refuse: it does not carry them.

    >>> check_carried(["eq", "echo"], 1, "old.pt")
    >>> check_carried(["eq", "tape"], 1, "odd.pt")
    Traceback (most recent call last):
        ...
    ValueError: odd.pt carries the effect 'tape', which this dmaster does not know: it was made by another version
    """
    version = max(m.ROLE.since for m in effects)
    if spec_version > version:
        raise ValueError(f"{source} was made with parameter spec version {spec_version}, newer than this dmaster's "
                         f"({version}): update dmaster to read it")
    for name in names:
        try:
            module = effect(name, effects)
        except KeyError:
            raise ValueError(f"{source} carries the effect {name!r}, which this dmaster does not know: it was made "
                             "by another version") from None
        if module.ROLE.since > spec_version:
            raise ValueError(f"{source} was made with parameter spec version {spec_version}, and the parameters of "
                             f"{name} changed meaning in version {module.ROLE.since}: its {name} would be misread. "
                             "Retrain (or regenerate) it, or use the dmaster release it was made with.")


_LINEAR_TEXT = {"both": "linear stage", "forward": "linear stage forward; its own stage inverse",
                "none": "its own stage"}


def effects_table(effects: Sequence[ModuleType] = EFFECTS) -> str:
    """The docs' table of effects (docs/chain.md), in processing order: each effect's parameters, stage, forward and
    inverse as its ``SPEC`` and ``ROLE`` say."""
    rows = ["| effect | parameters | stage | forward | inverse | reference mode |", "|---|---|---|---|---|---|"]
    for module in in_processing_order(effects):
        spec, role = module.SPEC, module.ROLE
        parameters = role.parameters_text or ", ".join(
            f"`{p.name}` {p.minimum:g}…{p.maximum:g}" + (f" {p.unit}" if p.unit else "") for p in spec.params)
        stage = _LINEAR_TEXT[role.linear] + ("; mixes the front pair" if role.mixes_channels else "")
        rows.append(f"| `{spec.name}` | {parameters} | {stage} | {role.forward_text} | {role.inverse_text} "
                    f"| {role.reference.replace('_', ' ')} |")
    return "\n".join(rows)
