"""Reference mode's stereo image: the input's side-to-mid ratio per octave band moved towards the reference's,
and its left-right balance, with the caution the tone gets.

Two passages of one song differ in width too, so the correction takes :data:`IMAGE_TRUST` of the difference in
each band, limited to :data:`IMAGE_LIMIT_DB`, and leaves alone every band where either track is close to mono
(:data:`MIN_SIDE_DB`): a mono low end is what mastering makes, and widening it would undo that. The side signal
is filtered by the correction (zero phase, interpolated in log frequency between band centres), the mid left as
it is; the balance is a gain on each channel of the front pair. A mono input is left alone; of more than two
channels, the front pair (channels 1–2) is corrected.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..effects.lti import apply_response, convolution_size
from ..features import IMAGE_BAND_EDGES_HZ, stereo_image
from .chunks import in_chunks

__all__ = ["IMAGE_LIMIT_DB", "IMAGE_TRUST", "MIN_SIDE_DB", "apply_image", "describe_image", "image_correction",
           "image_of"]

Tensor = torch.Tensor
BANDS = len(IMAGE_BAND_EDGES_HZ) - 1
IMAGE_TRUST = 0.7
"""The share of the difference between the reference's and the input's side-to-mid ratios (and balances) applied."""
IMAGE_LIMIT_DB = 9.0
"""The most the side is moved in any band (dB, either way)."""
MIN_SIDE_DB = -30.0
"""Bands where either track's side is this far (dB) under its mid are left alone: near mono on purpose."""
TRANSITION_OCTAVES = 0.25
"""The width of the side gain's change from one band to the next."""
BALANCE_DEAD_ZONE_DB = 1.0
"""Balance differences smaller than this are left alone: a wider or narrower side moves the measured balance a
little by itself."""
TAIL_SAMPLES = 8192
"""Samples of padding either side of the side signal's filtering (the zero-phase response's reach)."""


def image_of(windows: Tensor, sample_rate: int) -> Tensor:
    """The image of a track heard in ``windows`` ``(n, channels, samples)``: :func:`dmaster.features.stereo_image`
    averaged over the windows, ``(3 · bands + 1,)``."""
    return stereo_image(windows, sample_rate).mean(0)


def image_correction(input_image: Tensor, reference_image: Tensor, amount: float = 1.0) -> tuple[Tensor, float]:
    """The side gain per band (dB, ``(bands,)``) and the balance change (dB) that move the input's image towards the
    reference's (module docstring), times ``amount``."""
    side_in, side_ref = input_image[:BANDS], reference_image[:BANDS]
    stereo = (side_in > MIN_SIDE_DB) & (side_ref > MIN_SIDE_DB)
    side_db = torch.where(stereo, (side_ref - side_in).clamp(-IMAGE_LIMIT_DB, IMAGE_LIMIT_DB), torch.zeros(BANDS))
    balance_db = float(reference_image[-1] - input_image[-1])
    if abs(balance_db) < BALANCE_DEAD_ZONE_DB:
        balance_db = 0.0
    balance_db = max(-IMAGE_LIMIT_DB, min(IMAGE_LIMIT_DB, balance_db))
    return side_db * IMAGE_TRUST * amount, balance_db * IMAGE_TRUST * amount


def _side_response(side_db: Tensor, n_fft: int, sample_rate: int) -> Tensor:
    """``side_db`` as a zero-phase gain on an rFFT grid ``(n_fft // 2 + 1,)``: each band's gain across the band,
    changing linearly in dB over :data:`TRANSITION_OCTAVES` at each inner edge — inside the band that moves when
    its neighbour is left alone, so that a band left alone is left wholly alone."""
    values = side_db.double().numpy()
    octaves = np.log2(np.asarray(IMAGE_BAND_EDGES_HZ))
    points, gains = [octaves[0]], [values[0]]
    for edge, below, above in zip(octaves[1:-1], values[:-1], values[1:]):
        start = edge - TRANSITION_OCTAVES / 2 if (below == 0) == (above == 0) else (
            edge if below == 0 else edge - TRANSITION_OCTAVES)
        points += [start, start + TRANSITION_OCTAVES]
        gains += [below, above]
    hz = np.log2(np.maximum(np.fft.rfftfreq(n_fft, 1.0 / sample_rate), 1.0))
    gain_db = np.interp(hz, points, gains)  # held flat beyond the outer points
    return torch.from_numpy(gain_db).mul_(math.log(10) / 20).exp_()


def apply_image(audio: Tensor, sample_rate: int, side_db: Tensor, balance_db: float) -> Tensor:
    """``audio`` ``(channels, samples)`` with its front pair's side filtered by ``side_db`` (per band of
    :data:`dmaster.features.IMAGE_BAND_EDGES_HZ`) and its balance moved by ``balance_db`` (left up, right down by
    half each); mono audio comes back as it is.

    >>> x = torch.randn(2, 44100, generator=torch.Generator().manual_seed(0))
    >>> wider = apply_image(x, 44100, torch.full((10,), 6.0), 0.0)
    >>> side = lambda a: float((a[0] - a[1]).square().mean() / (a[0] + a[1]).square().mean())
    >>> round(10 * math.log10(side(wider) / side(x)), 1)
    6.0
    """
    if audio.shape[0] < 2 or (not bool(side_db.any()) and balance_db == 0.0):
        return audio

    def process(piece: Tensor) -> Tensor:
        left, right = piece[0].double(), piece[1].double()
        mid, side = (left + right) / 2, (left - right) / 2
        padded = torch.nn.functional.pad(side[None, None], (TAIL_SAMPLES, TAIL_SAMPLES))
        n_fft = convolution_size(padded.shape[-1])
        side = apply_response(padded, _side_response(side_db, n_fft, sample_rate), n_fft, double_precision=True)
        side = side[0, 0, TAIL_SAMPLES : TAIL_SAMPLES + piece.shape[-1]]
        gain = 10 ** (balance_db / 40)
        out = piece.clone()
        out[0], out[1] = ((mid + side) * gain).to(piece.dtype), ((mid - side) / gain).to(piece.dtype)
        return out

    return in_chunks(audio, process, sample_rate)


def describe_image(side_db: Tensor, balance_db: float) -> dict[str, Any]:
    """The image correction for the report: the side gain per band (dB, by the band's edges) and the balance."""
    edges = IMAGE_BAND_EDGES_HZ
    bands = {f"{low:g}-{high:g} Hz": round(float(db), 2) for low, high, db in zip(edges, edges[1:], side_db)}
    return {"side_db": bands, "balance_db": round(balance_db, 2)}
