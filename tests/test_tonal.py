"""Tonal balance: identity at strength 0, moves the long-term spectrum toward the reference, bounded."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmaster.synth import music_like
from dmaster.tonal import MAX_CORRECTION_DB, balance, long_term_spectrum, reference_spectrum

SR = 44100
CLIP = music_like(3.0, SR, 2, seed=4)


def test_strength_zero_is_the_identity():
    out, correction = balance(CLIP, SR, 0.0)
    assert out is CLIP and not any(correction.values())


@settings(max_examples=8, deadline=None)
@given(st.floats(0.1, 1.0))
def test_it_moves_the_long_term_spectrum_toward_the_reference(strength):
    reference = reference_spectrum()
    before = np.abs(long_term_spectrum(CLIP, SR) - reference).mean()
    out, correction = balance(CLIP, SR, strength)
    after = np.abs(long_term_spectrum(out, SR) - reference).mean()
    assert after < before
    assert max(abs(c) for c in correction.values()) <= MAX_CORRECTION_DB
    assert out.shape == CLIP.shape and torch.isfinite(out).all()


def test_a_track_with_the_reference_spectrum_is_left_almost_alone():
    _, correction = balance(CLIP, SR, 0.5, reference_db=long_term_spectrum(CLIP, SR))
    assert max(abs(c) for c in correction.values()) < 1e-6


def test_bad_strength_is_refused():
    with pytest.raises(ValueError, match="strength"):
        balance(CLIP, SR, 1.5)
