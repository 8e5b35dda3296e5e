"""dmaster: automatic music mastering by differentiable parameter prediction."""

from .effects import SPEC_VERSION, Chain, ChainParams

__version__ = "0.1.0"
__all__ = ["Chain", "ChainParams", "SPEC_VERSION", "__version__"]
