"""The ``dmaster`` commands: ``demo``, ``master``, ``demaster``, ``train`` and ``evaluate``, one module each."""
