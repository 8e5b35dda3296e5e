"""Differentiable effects, each with ``forward`` (degrade) and ``inverse`` (restore),
as pure functions on ``(batch, channels, samples)`` tensors, and the chain.

>>> [spec.name for spec in SPECS]                      # processing order
['eq', 'gain', 'echo', 'reverb', 'compressor']
>>> print(SPECS[2].describe().splitlines()[0])
**echo** — one discrete echo (slap-back or delay) (on with p = 0.4)
"""

from . import compressor, echo, eq, gain, reverb
from .chain import EFFECTS, SPEC_VERSION, SPECS, Chain, ChainParams, ExtraResponse
from .spec import EffectSpec, Param, Prior

__all__ = ["Chain", "ChainParams", "ExtraResponse", "EFFECTS", "SPECS", "SPEC_VERSION", "EffectSpec", "Param", "Prior",
           "compressor", "echo", "eq", "gain", "reverb"]
