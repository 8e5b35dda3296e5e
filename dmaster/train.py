"""``python -m dmaster.train`` / ``torchrun -m dmaster.train``: the ``dmaster train`` command as a module.

``torchrun`` starts a module, not a console script, so the command keeps this name. The command
is :mod:`dmaster.apps.train`; training itself is :mod:`dmaster.training`.
"""

import sys

from .apps.train import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
