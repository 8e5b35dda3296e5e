"""Differentiable effects, each with ``forward`` (degrade) and ``inverse`` (restore),
as pure functions on ``(batch, channels, samples)`` tensors, the registry of them and the chain.

>>> [spec.name for spec in SPECS][:3]                  # the order they joined (the registry's)
['eq', 'gain', 'echo']
>>> print(SPECS[2].describe().splitlines()[0])
**echo** — one discrete echo (slap-back or delay) (on with p = 0.4)
"""

from . import compressor, echo, eq, gain, registry, reverb, stereo
from .chain import EFFECTS, SPEC_VERSION, SPECS, Chain, ChainParams, ExtraResponse
from .spec import EffectRole, EffectSpec, Param, Prior

__all__ = ["Chain", "ChainParams", "ExtraResponse", "EFFECTS", "SPECS", "SPEC_VERSION", "EffectRole", "EffectSpec",
           "Param", "Prior", "compressor", "echo", "eq", "gain", "registry", "reverb", "stereo"]
