"""The user-facing commands ``dmaster master``, ``dmaster demo`` and ``dmaster evaluate``."""
