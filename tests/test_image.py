"""The stereo image as the features hear it (:func:`dmaster.features.stereo_image`): what a width, a low-end width
and a channel offset change, and what dual mono reads as."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmaster.features import IMAGE_BAND_EDGES_HZ, IMAGE_FLOOR_DB, stereo_image
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
