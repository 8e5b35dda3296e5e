"""A small deterministic music synthesiser: test signals and the offline demo clip.

Bass, chords of harmonic tones with attack/decay envelopes, kick and hi-hat,
mixed to a mastered-sounding level (peak −1 dBFS). Not art, but it has what
the effects act on: transients, sustained tones, a full spectrum and rhythm.

>>> clip = music_like(0.5, 44100, channels=2, seed=0)
>>> clip.shape, clip.dtype
(torch.Size([2, 22050]), torch.float32)
>>> round(20 * math.log10(float(clip.abs().max())), 2)                # peak, dBFS
-1.0
>>> torch.equal(clip, music_like(0.5, 44100, channels=2, seed=0))     # deterministic
True
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

Tensor = torch.Tensor

__all__ = ["music_like"]


class Note(NamedTuple):
    """A harmonic tone with a 5 ms attack and an exponential decay."""

    frequency: float
    """Hz, of the fundamental."""
    start: float
    """Seconds."""
    length: float
    """Seconds."""
    harmonics: int
    decay: float
    """Seconds, the decay's time constant."""


def _add_note(out: Tensor, sample_rate: int, note: Note, gain: Tensor) -> None:
    """Add ``note`` to ``out`` ``(channels, samples)`` in place; ``gain`` ``(channels, 1)`` pans it."""
    first = int(note.start * sample_rate)
    last = min(out.shape[-1], int((note.start + note.length) * sample_rate))
    if last <= first:
        return
    local = torch.arange(last - first, dtype=torch.float64) / sample_rate
    envelope = (1 - torch.exp(-local / 0.005)) * torch.exp(-local / note.decay)
    tone = sum(torch.sin(2 * math.pi * note.frequency * k * local) / k**1.3 for k in range(1, note.harmonics + 1))
    out[:, first:last] += gain * (envelope * tone)


def music_like(seconds: float = 4.0, sample_rate: int = 44100, channels: int = 2, seed: int = 0,
               tempo_bpm: float = 120.0) -> Tensor:
    """A clip of synthetic music, peak −1 dBFS.

    Args:
        seconds: length, seconds.
        sample_rate: Hz.
        channels: channels (panned differently).
        seed: the same seed gives the same clip.
        tempo_bpm: beats per minute.

    Returns:
        ``(channels, int(seconds · sample_rate))`` float32.
    """
    generator = torch.Generator().manual_seed(seed)
    samples = int(seconds * sample_rate)
    beat = 60.0 / tempo_bpm
    roots = [110.0 * 2 ** (int(s) / 12) for s in torch.randint(0, 12, (8,), generator=generator)]
    out = torch.zeros(channels, samples, dtype=torch.float64)
    pan = torch.tensor([0.5 + 0.3 * math.sin(c * math.pi / max(channels - 1, 1) - math.pi / 2)
                        for c in range(channels)], dtype=torch.float64)[:, None]
    centre = torch.ones(channels, 1, dtype=torch.float64)
    for bar, bar_start in enumerate(torch.arange(0, seconds, 4 * beat).tolist()):
        root = roots[bar % len(roots)]
        for ratio in (1, 1.26, 1.5):
            _add_note(out, sample_rate, Note(root * 2 * ratio, bar_start, 4 * beat, 6, 1.5), 0.12 * pan)
        for i in range(4):
            _add_note(out, sample_rate, Note(root / 2, bar_start + i * beat, beat, 4, 0.25), 0.3 * centre)
    hit_length = int(0.4 * sample_rate)
    local = torch.arange(hit_length, dtype=torch.float64) / sample_rate
    kick = 0.5 * torch.sin(2 * math.pi * 55 * local * (1 + 2 * torch.exp(-local / 0.03))) * torch.exp(-local / 0.12)
    hat_envelope = 0.08 * torch.exp(-local / 0.02)
    noise = torch.randn(channels, samples, generator=generator, dtype=torch.float64)
    for hit in torch.arange(0, seconds, beat / 2).tolist():
        first = int(hit * sample_rate)
        last = min(samples, first + hit_length)
        if round(hit / beat, 3) % 1 == 0:
            out[:, first:last] += kick[: last - first]
        out[:, first:last] += noise[:, first:last] * hat_envelope[: last - first]
    return (out * (10 ** (-1 / 20) / out.abs().max())).float()
