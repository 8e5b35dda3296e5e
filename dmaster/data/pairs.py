"""The OUTPUT folder of ``dmaster demaster``: where each file of a pair lives, and writing one pair.

Output under OUTPUT, per track id ``ID`` (e.g. ``000_000002``)::

    output_audio/ID_original.wav   loaded, resampled, stereo source (float WAV)
    output_audio/ID_degraded.wav   degraded (float WAV: values beyond ±1 do not clip)
    output_spectrograms/ID.png     both spectrograms, annotated with the parameters
    output_txt/ID.txt              the parameters in words, with units
    output_txt/ID.json             the manifest record of the pair (written last)
    manifest.jsonl                 one record per pair, for PairedDataset
    errors.jsonl                   inputs that could not be used, with the reason
    generation.json                seed, sample rate, clip length and spec version of OUTPUT

Every file is written under a temporary name and renamed (no half-written file, ever); a pair is
done when its JSON exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..audio import remove_stale_temporaries, save_audio, write_json_atomic, write_text_atomic
from ..effects import SPEC_VERSION, Chain
from .describe import describe_params
from .plots import save_spectrograms
from .splits import Track, split_of

__all__ = ["OutputLayout", "write_pair"]

Tensor = torch.Tensor


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class OutputLayout:
    """Where each file of OUTPUT lives (see the module docstring).

    Args:
        root: the OUTPUT folder.
    """

    root: Path

    @property
    def audio_folder(self) -> Path:
        return self.root / "output_audio"

    @property
    def spectrogram_folder(self) -> Path:
        return self.root / "output_spectrograms"

    @property
    def text_folder(self) -> Path:
        return self.root / "output_txt"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.jsonl"

    @property
    def errors(self) -> Path:
        return self.root / "errors.jsonl"

    @property
    def settings(self) -> Path:
        return self.root / "generation.json"

    def original(self, track: str) -> Path:
        return self.audio_folder / f"{track}_original.wav"

    def degraded(self, track: str) -> Path:
        return self.audio_folder / f"{track}_degraded.wav"

    def spectrogram(self, track: str) -> Path:
        return self.spectrogram_folder / f"{track}.png"

    def text(self, track: str) -> Path:
        return self.text_folder / f"{track}.txt"

    def record(self, track: str) -> Path:
        return self.text_folder / f"{track}.json"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def create(self) -> None:
        """Create the folders and remove the temporaries of killed runs."""
        for folder in (self.audio_folder, self.spectrogram_folder, self.text_folder):
            folder.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(folder)

    def read_settings(self) -> dict[str, Any] | None:
        """The settings OUTPUT was generated with (``generation.json``), or ``None`` before the first run."""
        return _read_json(self.settings) if self.settings.exists() else None

    def read_record(self, track: str) -> dict[str, Any]:
        """The manifest record of a done pair (its ``output_txt/ID.json``)."""
        return _read_json(self.record(track))


def write_pair(layout: OutputLayout, chain: Chain, track: Track, original: Tensor, degraded: Tensor,
               item: dict[str, Any], seed: int, spectrograms: bool) -> dict[str, Any]:
    """Write every output of one pair (the JSON record last) and return the record.

    Args:
        layout: the OUTPUT folder.
        chain: the chain that degraded the pair.
        track: the input file and its id.
        original: the loaded source, ``(2, samples)``.
        degraded: the degraded source, ``(2, samples)``.
        item: the parameters, one item of :meth:`~dmaster.effects.Chain.to_json`.
        seed: the run's seed.
        spectrograms: whether to draw the PNG.

    Returns:
        The manifest record (also written to ``output_txt/ID.json``).
    """
    sample_rate = chain.sample_rate
    split = split_of(track.id)
    save_audio(layout.original(track.id), original, sample_rate)
    save_audio(layout.degraded(track.id), degraded, sample_rate)
    seconds = original.shape[-1] / sample_rate
    heading = f"{track.id}: {seconds:.2f} s at {sample_rate} Hz, split {split}, seed {seed} (source {track.path})"
    if spectrograms:
        save_spectrograms(layout.spectrogram(track.id), original, degraded, sample_rate,
                          f"{track.id}: original (top) and degraded (bottom)",
                          describe_params(chain, item, present_only=True) or ["no effect (identity)"])
    write_text_atomic(layout.text(track.id), "\n".join([heading, *describe_params(chain, item)]) + "\n")
    record = {
        "id": track.id,
        "split": split,
        "original": layout.relative(layout.original(track.id)),
        "degraded": layout.relative(layout.degraded(track.id)),
        "spectrogram": layout.relative(layout.spectrogram(track.id)) if spectrograms else None,
        "text": layout.relative(layout.text(track.id)),
        "source": str(track.path),
        "sample_rate": sample_rate,
        "frames": original.shape[-1],
        "duration_s": round(seconds, 6),
        "seed": seed,
        "spec_version": SPEC_VERSION,
        "params": item,
    }
    write_json_atomic(layout.record(track.id), record)
    return record
