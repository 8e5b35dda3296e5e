"""Audio I/O, the demastering run behind ``dmaster demaster`` (:mod:`.generate`, :mod:`.pairs`) and the
training data sources (:mod:`.datasets`)."""

from .audio import AudioError, load_audio, read_audio, save_audio, write_json_atomic, write_text_atomic
from .datasets import OnTheFlyBatches, PairedDataset, SyntheticBatches
from .splits import split_of, track_id

__all__ = ["AudioError", "OnTheFlyBatches", "PairedDataset", "SyntheticBatches", "load_audio", "read_audio",
           "save_audio", "split_of", "track_id", "write_json_atomic", "write_text_atomic"]
