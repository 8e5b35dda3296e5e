"""Long tracks processed in chunks, each with margins of audio either side that are cut off again, so
that memory stays bounded and the chunks join without seams."""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..effects import reverb

__all__ = ["CHUNK_MARGIN_SECONDS", "CHUNK_SECONDS", "ONE_PASS_SECONDS", "in_chunks"]

ONE_PASS_SECONDS = 480.0
"""Tracks up to this long are processed in one pass; longer ones in chunks of at most :data:`CHUNK_SECONDS`."""
CHUNK_SECONDS = 360.0
CHUNK_MARGIN_SECONDS = 30.0
"""Audio each chunk is processed with on either side and then cut off: more than the longest echo-inverse
tail (at 800 ms and −3 dB), reverb, compressor release or limiter ramp, so the chunks join without seams."""


def in_chunks(audio: torch.Tensor, process: Callable[[torch.Tensor], torch.Tensor], sample_rate: int) -> torch.Tensor:
    """``process`` over ``audio``, in one pass up to :data:`ONE_PASS_SECONDS`, else in equal chunks.

    Args:
        audio: ``(channels, samples)``.
        process: time-invariant and length-preserving, its memory growing with the length.
        sample_rate: Hz.

    >>> in_chunks(torch.ones(2, 8), lambda piece: 2 * piece, 44100).sum().item()
    32.0
    """
    samples = audio.shape[-1]
    if samples <= ONE_PASS_SECONDS * sample_rate:
        return process(audio)
    # in multiples of the reverb suppression's hop: every chunk's STFT frames are the whole track's
    hop = reverb.STFT_HOP
    core = math.ceil(samples / math.ceil(samples / (CHUNK_SECONDS * sample_rate)) / hop) * hop
    margin = math.ceil(CHUNK_MARGIN_SECONDS * sample_rate / hop) * hop
    out = torch.empty_like(audio)
    for start in range(0, samples, core):
        first = max(0, start - margin)
        piece = process(audio[:, first : start + core + margin])
        out[:, start : start + core] = piece[:, start - first : start - first + core]
    return out
