"""The demastering run behind ``dmaster demaster`` (:mod:`.generate`, :mod:`.pairs`) and the training data
sources (:mod:`.datasets`); audio I/O is :mod:`dmaster.audio`."""

from .datasets import OnTheFlyBatches, PairedDataset, SyntheticBatches
from .splits import split_of, track_id

__all__ = ["OnTheFlyBatches", "PairedDataset", "SyntheticBatches", "split_of", "track_id"]
