"""dmaster: automatic music mastering by differentiable parameter prediction.

>>> import dmaster
>>> result = dmaster.master(audio, sample_rate)   # audio: (channels, samples) or (samples,)
>>> result.audio, result.to_json()
"""

from .effects import SPEC_VERSION, Chain, ChainParams
from .mastering import MasterResult, master

__version__ = "0.1.0"
__all__ = ["Chain", "ChainParams", "MasterResult", "SPEC_VERSION", "__version__", "master"]
