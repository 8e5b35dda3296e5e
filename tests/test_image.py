"""The stereo image as the features hear it (:func:`dmaster.features.stereo_image`): what a width, a low-end width
and a channel offset change, and what dual mono reads as; and reference mode's image correction
(:mod:`dmaster.mastering.image`)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmaster.features import IMAGE_BAND_EDGES_HZ, IMAGE_FLOOR_DB, stereo_image
from dmaster.mastering.image import IMAGE_TRUST, MIN_SIDE_DB, apply_image, image_correction, image_of
from dmaster.synth import music_like

SR = 44100
BANDS = len(IMAGE_BAND_EDGES_HZ) - 1
CLIP = music_like(4.0, SR, 2, seed=3)[None]


def _mid_side(x):
    return (x[:, 0] + x[:, 1]) / 2, (x[:, 0] - x[:, 1]) / 2


@settings(max_examples=10, deadline=None)
@given(width_db=st.floats(-12.0, 12.0))
def test_a_side_gain_moves_every_bands_ratio_by_itself(width_db):
    mid, side = _mid_side(CLIP)
    side = side * 10 ** (width_db / 20)
    changed = stereo_image(torch.stack([mid + side, mid - side], 1), SR)
    before = stereo_image(CLIP, SR)
    clear = before[0, :BANDS] > IMAGE_FLOOR_DB + 20 + abs(width_db)  # bands whose side stays far from the floor
    shift = (changed - before)[0, :BANDS][clear]
    assert clear.sum() >= 5 and torch.allclose(shift, torch.full_like(shift, width_db), atol=0.1)
    wide = before[0, :BANDS] > -20.0  # bands clearly stereo in every frame: their spread is the image's own
    spreads = changed[0, BANDS : 2 * BANDS][wide], before[0, BANDS : 2 * BANDS][wide]
    assert torch.allclose(*spreads, atol=0.2)  # the same image over time, only wider or narrower


def test_dual_mono_and_mono_read_as_no_side_and_full_correlation():
    for audio in (CLIP[:, :1], CLIP[:, :1].expand(1, 2, -1)):
        image = stereo_image(audio, SR)[0]
        assert float(image[:BANDS].max()) == IMAGE_FLOOR_DB
        assert torch.allclose(image[2 * BANDS : 3 * BANDS], torch.ones(BANDS), atol=1e-3)
        assert float(image[-1]) == 0.0


def test_a_channel_offset_reads_as_the_balance():
    louder_left = CLIP * torch.tensor([10 ** (3 / 20), 1.0])[None, :, None]
    before, after = stereo_image(CLIP, SR)[0, -1], stereo_image(louder_left, SR)[0, -1]
    assert math.isclose(float(after - before), 3.0, abs_tol=0.01)


def _side_below(audio: torch.Tensor, hz: float) -> float:
    """Energy (dB) of the front pair's side below ``hz``."""
    side = torch.fft.rfft(((audio[0] - audio[1]) / 2).double())
    frequencies = torch.fft.rfftfreq(audio.shape[-1], 1 / SR)
    return 10 * math.log10(float(side[frequencies < hz].abs().square().sum()) + 1e-30)


def _widened(audio: torch.Tensor, width_db: float) -> torch.Tensor:
    mid, side = (audio[0] + audio[1]) / 2, (audio[0] - audio[1]) / 2
    side = side * 10 ** (width_db / 20)
    return torch.stack([mid + side, mid - side])


@pytest.mark.parametrize("width_db", [-6.0, 6.0])
def test_reference_mode_moves_the_image_towards_the_references_and_never_widens_a_mono_low_end(width_db):
    clip = CLIP[0]
    reference = _widened(clip, width_db)
    before, target = image_of(clip[None], SR), image_of(reference[None], SR)
    side_db, balance_db = image_correction(before, target)
    out = apply_image(clip, SR, side_db, balance_db)
    after = image_of(out[None], SR)
    clear = before[:BANDS] > MIN_SIDE_DB  # the stereo bands: moved by the trusted share of the difference
    moved = (after - before)[:BANDS][clear]
    assert torch.allclose(moved, torch.full_like(moved, IMAGE_TRUST * width_db), atol=0.2)
    assert balance_db == 0.0  # a wider side moves the measured balance a little; that is not an offset
    assert abs(_side_below(out, 100.0) - _side_below(clip, 100.0)) < 0.1  # the near-mono low end left alone
    assert torch.allclose((out[0] + out[1]) / 2, (clip[0] + clip[1]) / 2, atol=1e-6)  # the mid untouched


def test_the_image_correction_leaves_mono_alone_and_only_the_front_pair_of_more_channels():
    mono = CLIP[0, :1]
    assert torch.equal(apply_image(mono, SR, torch.full((BANDS,), 6.0), 3.0), mono)
    six = torch.cat([CLIP[0], CLIP[0], CLIP[0]])
    out = apply_image(six, SR, torch.full((BANDS,), 6.0), 0.0)
    assert torch.equal(out[2:], six[2:]) and not torch.allclose(out[:2], six[:2])
