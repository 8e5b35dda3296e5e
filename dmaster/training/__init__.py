"""Training the parameter estimator or the U-Net baseline, in one process or several (``torchrun``).

``train(TrainConfig(...))`` is the whole of it; the modules, from the top down:

* :mod:`.solver`: the loop of one run (steps, validation, checkpoints, resuming);
* :mod:`.batches`: the training and validation batches of the configured data source;
* :mod:`.objective`: the loss of one step; :mod:`.schedule`: learning rate and end-to-end weight over the run;
* :mod:`.validation`: the validation metrics; :mod:`.logs`: CSV, TensorBoard and progress lines;
* :mod:`.distrib`: the process group of a ``torchrun`` job;
* :mod:`.config`: :class:`TrainConfig`, its checks and config files.

The ``dmaster train`` command (flags → :class:`TrainConfig`) is :mod:`dmaster.apps.train`.
"""

from .config import TrainConfig
from .solver import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
