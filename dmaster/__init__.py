"""dmaster: automatic music mastering by differentiable parameter prediction.

:func:`master` estimates what degraded a track and undoes it; :class:`Chain` is the differentiable
effect chain it inverts. See ``README.md`` and ``docs/``.

>>> import numpy as np
>>> import dmaster
>>> audio = 0.1 * np.random.default_rng(0).standard_normal((2, 44100), dtype=np.float32)  # (channels, samples)
>>> result = dmaster.master(audio, 44100)                   # the shipped parameter model
>>> result.audio.shape, result.audio.dtype, result.sample_rate      # as it came in
((2, 44100), dtype('float32'), 44100)
>>> result.report["effects"]["echo"]["correction"]          # the report: per effect, what it heard and undid
'none'
>>> set(result.report["effects"]) == set(dmaster.Chain().effect_names)
True
"""

from .effects import SPEC_VERSION, Chain, ChainParams
from .mastering import MasterResult, master

__version__ = "0.1.0"
__all__ = ["Chain", "ChainParams", "MasterResult", "SPEC_VERSION", "__version__", "master"]
