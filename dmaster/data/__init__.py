"""Audio I/O, the demastering generator (``dmaster demaster``) and the PyTorch datasets."""

from .audio import AudioError, load_audio, read_audio, save_audio, write_json_atomic, write_text_atomic
from .datasets import OnTheFlyBatches, PairedDataset
from .splits import split_of, track_id

__all__ = ["AudioError", "OnTheFlyBatches", "PairedDataset", "load_audio", "read_audio", "save_audio", "split_of",
           "track_id", "write_json_atomic", "write_text_atomic"]
