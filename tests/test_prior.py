"""The training prior: presence probabilities, a share of clean items, presence labelled by audibility."""

import math

import pytest
import torch

from dmaster.data.datasets import SyntheticBatches
from dmaster.data.prior import DrawPrior, contributions_db, parse_presence
from dmaster.effects import Chain
from dmaster.synth import music_like
from dmaster.training import TrainConfig

SR = 44100
CHAIN = Chain(SR)


def presence_of(params):
    return torch.stack([effect["present"] for effect in params.values()], dim=1)


def test_the_default_prior_draws_what_the_chain_draws():
    drawn = DrawPrior().sample(CHAIN, 16, torch.Generator().manual_seed(3))
    expected = CHAIN.sample_params(16, torch.Generator().manual_seed(3))
    for name in expected:
        for key in expected[name]:
            torch.testing.assert_close(drawn[name][key], expected[name][key])


def test_presence_probabilities_and_the_clean_share_are_followed():
    generator = torch.Generator().manual_seed(0)
    never = presence_of(DrawPrior({"eq": 0.0, "echo": 1.0}).sample(CHAIN, 500, generator))
    assert never[:, 0].sum() == 0 and never[:, 2].sum() == 500
    clean = presence_of(DrawPrior(clean_share=0.3).sample(CHAIN, 4000, generator)).sum(1) == 0
    everything_off_anyway = math.prod(1 - spec.presence_probability for spec in CHAIN.specs)
    expected = 0.3 + 0.7 * everything_off_anyway
    assert float(clean.float().mean()) == pytest.approx(expected, abs=0.03)


def test_bad_priors_are_named():
    with pytest.raises(ValueError, match="clean_share must lie in"):
        DrawPrior(clean_share=1.5)
    with pytest.raises(ValueError, match="unknown effects \\['flanger'\\]"):
        DrawPrior({"flanger": 0.5}).sample(CHAIN, 2)
    with pytest.raises(ValueError, match="not EFFECT=PROBABILITY"):
        parse_presence("eq:0.5")
    with pytest.raises(ValueError, match="unknown effects"):
        TrainConfig(data="synthetic", presence="flanger=0.5").validate()
    with pytest.raises(ValueError, match="audible_db"):
        TrainConfig(data="synthetic", audible_db=math.nan).validate()


def gain_only(gains_db):
    params = CHAIN.neutral_params(len(gains_db))
    params["gain"] = {"present": torch.ones(len(gains_db)), "gain_db": torch.tensor(gains_db)}
    return params


def test_contributions_measure_what_each_effect_adds():
    clean = music_like(1.0, SR, 2, seed=1).expand(3, -1, -1).contiguous()
    contribution = contributions_db(CHAIN, clean, gain_only([0.1, 3.0, -12.0]))
    gain = contribution[:, CHAIN.effect_names.index("gain")]
    # a gain g leaves |1 - 10^(-g/20)|² of the output as its contribution
    expected = [10 * math.log10((1 - 10 ** (-g / 20)) ** 2) for g in (0.1, 3.0, -12.0)]
    torch.testing.assert_close(gain, torch.tensor(expected), atol=1e-3, rtol=0)
    others = [i for i, name in enumerate(CHAIN.effect_names) if name != "gain"]
    assert torch.isinf(contribution[:, others]).all()


def test_inaudible_effects_are_switched_off_in_the_audio_and_the_label(monkeypatch):
    clean = music_like(1.0, SR, 2, seed=2).expand(2, -1, -1).contiguous()
    monkeypatch.setattr(DrawPrior, "sample", lambda self, chain, batch, generator=None: gain_only([0.1, 6.0]))
    degraded, params = DrawPrior(audible_db=-20.0).degrade(CHAIN, clean)
    assert params["gain"]["present"].tolist() == [0.0, 1.0]
    torch.testing.assert_close(degraded[0], clean[0])
    torch.testing.assert_close(degraded[1], clean[1] * 10 ** (6 / 20), rtol=1e-4, atol=1e-5)


def test_training_batches_follow_the_configured_prior():
    config = TrainConfig(data="synthetic", clean_share=1.0, window_seconds=0.5, batch_size=4, synthetic_clips=2)
    batch = SyntheticBatches(0.5, 4, "train", SR, clips=2, prior=config.prior).batch(0)
    assert batch["presence"].sum() == 0
    torch.testing.assert_close(batch["degraded"], batch["clean"])
