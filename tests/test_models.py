"""Features, models, losses and checkpoints (tiny models, short clips)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmaster import features, losses
from dmaster.checkpoint import load_checkpoint, load_model, save_checkpoint
from dmaster.effects import SPEC_VERSION, Chain, compressor, echo
from dmaster.models import ParamEstimator, SpectrogramUNet, build_model, count_parameters
from dmaster.synth import music_like

SR = 22050
CLIPS = torch.stack([music_like(2.0, SR, 2, seed=11), music_like(2.0, SR, 2, seed=12)])  # (2, 2, 44100)
TINY_ESTIMATOR = dict(sample_rate=SR, width=4, hidden=32, n_mels=32, n_bands=64, n_lag_bins=32)
TINY_UNET = dict(sample_rate=SR, width=4, depth=2, n_fft=256, hop=128, frequency_patch=2)


def degraded_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    chain = Chain(SR)
    params = chain.sample_params(len(CLIPS), torch.Generator().manual_seed(seed))
    presence, normalised = chain.to_vectors(params)
    return {"degraded": chain(CLIPS, params), "clean": CLIPS, "presence": presence, "params": normalised}


# -- features ------------------------------------------------------------------------------------

def test_filterbanks_have_no_empty_band_and_rows_sum_to_one():
    for bank in (features.mel_filterbank(512, SR, 40),
                 features.log_frequency_filterbank(1024, SR, 96, 30.0, 16000.0)):
        assert (bank > 0).any(1).all()
        torch.testing.assert_close(bank.sum(1), torch.ones(len(bank)))


@pytest.mark.parametrize("delay_ms, level_db", [(23.7, -20.0), (141.3, -12.0), (612.9, -24.0)])
def test_cepstrum_finds_echo_delay_to_a_fraction_of_a_sample(delay_ms, level_db):
    echoed = echo.forward(CLIPS, SR, delay_ms, level_db)
    lag_range = (int(0.02 * SR), int(0.8 * SR) + 1)
    true_lag = torch.tensor(delay_ms * SR / 1000).expand(len(CLIPS))
    cepstrum = features.power_cepstrum(echoed.double())
    for coarse_error in (0.96, 1.04):  # about one lag bin of the estimator either way
        lag = features.refine_echo_delay(cepstrum, true_lag * coarse_error, lag_range)
        assert (lag - true_lag).abs().max() < 0.5


@settings(max_examples=15, deadline=None)
@given(delay_ms=st.floats(20.0, 800.0), level_db=st.floats(-30.0, -6.0), seed=st.integers(0, 1000))
def test_echo_level_reads_the_echo_amplitude_off_the_cepstrum(delay_ms, level_db, seed):
    noise = torch.randn(1, 2, 3 * SR, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    lag = torch.tensor([delay_ms * SR / 1000], dtype=torch.float64)
    amplitude = 10 ** (level_db / 20)
    samples = noise.shape[-1]
    echoed = features.power_cepstrum(echo.forward(noise, SR, delay_ms, level_db))
    assert abs(float(features.echo_level(echoed, lag, samples)[0]) - amplitude) < 0.1 * amplitude + 0.03
    assert abs(float(features.echo_level(features.power_cepstrum(noise), lag, samples)[0])) < 0.03  # ±0.01 noise


def test_lag_evidence_peaks_in_the_bin_of_the_echo():
    delay_samples = 5000.3
    echoed = echo.forward(CLIPS, SR, delay_samples * 1000 / SR, -15.0)
    lag_range = (441, 17641)
    edges = features.log_lag_bin_edges(441, 17640, 64)
    prominence = features.cepstral_prominence(features.power_cepstrum(echoed), lag_range)
    evidence = features.echo_lag_evidence(prominence, lag_range, edges)
    expected = int(torch.bucketize(torch.tensor(delay_samples, dtype=torch.float64), edges)) - 1
    assert (evidence.argmax(1) == expected).all()


# -- models --------------------------------------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(gain_db=st.floats(-30.0, 10.0), seed=st.integers(0, 1000))
def test_level_distribution_moves_with_the_gain_and_keeps_the_crest(gain_db, seed):
    audio = music_like(1.0, SR, 2, seed=seed)[None]
    distribution = features.level_distribution(audio, SR)
    louder = features.level_distribution(audio * 10 ** (gain_db / 20), SR)
    levels = len(features.LEVEL_SCALES_S) * len(features.LEVEL_QUANTILES)
    assert distribution.shape == (1, levels + features.CREST_GROUPS)
    torch.testing.assert_close(louder[:, :levels], distribution[:, :levels] + gain_db, atol=1e-3, rtol=0)
    torch.testing.assert_close(louder[:, levels:], distribution[:, levels:], atol=1e-3, rtol=0)
    quantiles = distribution[0, :levels].reshape(len(features.LEVEL_SCALES_S), -1)
    assert (quantiles.diff(dim=1) >= 0).all()  # quantiles rise
    with pytest.raises(ValueError, match="at least"):
        features.level_distribution(audio[..., : SR // 4], SR)


def test_compression_narrows_the_level_distribution():
    audio = music_like(2.0, SR, 2, seed=3)[None]
    squashed = compressor.forward(audio, SR, threshold_db=-30.0, ratio=8.0, attack_ms=1.0, release_ms=50.0,
                                  knee_db=0.0, makeup_db=0.0)
    quantiles = len(features.LEVEL_QUANTILES)  # of the 1 ms levels come first
    before, after = (features.level_distribution(x, SR)[0, :quantiles] for x in (audio, squashed))
    assert after[-2] - after[1] < before[-2] - before[1] - 3  # the 99 % minus the 5 % quantile, dB


def test_a_model_grown_by_the_dynamics_branch_starts_as_the_model_it_grew_from():
    small = ParamEstimator(**TINY_ESTIMATOR).eval()
    grown = ParamEstimator(**TINY_ESTIMATOR, dynamics=True).eval()
    assert "dynamics" not in small.hyperparameters and grown.hyperparameters["dynamics"] is True
    assert grown.grown_from(small.hyperparameters) == ("dynamics_projection.",)
    assert grown.grown_from(grown.hyperparameters) == () and small.grown_from(grown.hyperparameters) is None
    assert grown.grown_from({**small.hyperparameters, "width": 8}) is None
    missing, unexpected = grown.load_state_dict(small.state_dict(), strict=False)
    assert not unexpected and all(key.startswith("dynamics_projection.") for key in missing)
    with torch.no_grad():
        before, after = small(CLIPS), grown(CLIPS)
    torch.testing.assert_close(after.params, before.params)
    torch.testing.assert_close(after.presence_logits, before.presence_logits)
    output = ParamEstimator(**TINY_ESTIMATOR, dynamics=True)(CLIPS)
    output.params.sum().backward()  # the branch is trained with the rest


def test_param_estimator_shapes_ranges_and_chain_params():
    model = ParamEstimator(**TINY_ESTIMATOR)
    chain = Chain(SR)
    output = model(CLIPS)
    assert output.presence_logits.shape == (2, len(chain.specs))
    assert output.params.shape == (2, len(chain.flat_params))
    assert output.delay_logits.shape == (2, 32)
    assert ((output.params >= 0) & (output.params <= 1)).all()
    params = model.estimate(CLIPS)
    chain.validate(params, 2)
    restored = chain.inverse(CLIPS, params)
    assert restored.shape == CLIPS.shape and torch.isfinite(restored).all()


def test_refined_delay_passes_gradient_to_the_coarse_estimate():
    model = ParamEstimator(**TINY_ESTIMATOR)
    coarse = torch.full((2, len(model.chain.flat_params)), 0.5, requires_grad=True)
    model.refine_delay(CLIPS, coarse)[:, model.delay_column].sum().backward()
    expected = torch.zeros_like(coarse)
    expected[:, model.delay_column] = 1
    torch.testing.assert_close(coarse.grad, expected)


def test_models_reject_clips_that_are_too_short():
    with pytest.raises(ValueError, match="at least"):
        ParamEstimator(**TINY_ESTIMATOR)(CLIPS[..., :SR])
    with pytest.raises(ValueError, match="at least"):
        SpectrogramUNet(**TINY_UNET)(CLIPS[..., :100])


def test_unet_keeps_shape_of_odd_length_input_and_is_differentiable():
    model = SpectrogramUNet(**TINY_UNET)
    audio = CLIPS[..., :10001].clone().requires_grad_(True)
    restored = model(audio)
    assert restored.shape == audio.shape
    restored.square().mean().backward()
    assert torch.isfinite(audio.grad).all() and all(p.grad is not None for p in model.parameters())


def test_default_models_are_within_the_parameter_budget():
    assert 300_000 < count_parameters(ParamEstimator()) < 3_000_000
    assert 200_000 < count_parameters(SpectrogramUNet()) < 3_000_000


def test_bad_hyperparameters_give_clear_errors():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("transformer")
    with pytest.raises(ValueError, match="bad hyper-parameters"):
        build_model("unet", colour="blue")
    with pytest.raises(ValueError, match="divisible"):
        SpectrogramUNet(n_fft=1000)
    with pytest.raises(ValueError, match="width"):
        ParamEstimator(width=0)


# -- losses --------------------------------------------------------------------------------------

def test_reconstruction_losses_vanish_for_identical_audio_and_grow_with_error():
    assert float(losses.reconstruction_loss(CLIPS, CLIPS)) < 1e-3
    assert float(losses.reconstruction_loss(0.5 * CLIPS, CLIPS)) > 0.1
    robust = losses.reconstruction_loss(1000 * CLIPS, CLIPS, robust=True)
    assert float(robust) < 0.1 * float(losses.reconstruction_loss(1000 * CLIPS, CLIPS))


def test_match_peak_removes_the_level_but_nothing_else():
    quieter = (0.25 * CLIPS).requires_grad_()
    matched = losses.match_peak(quieter, CLIPS)
    torch.testing.assert_close(matched, CLIPS)  # per item: every clip has its own peak
    torch.testing.assert_close(matched.flatten(1).abs().amax(1), CLIPS.flatten(1).abs().amax(1))
    losses.reconstruction_loss(matched, CLIPS).backward()
    assert quieter.grad is not None and torch.isfinite(quieter.grad).all()
    distorted = losses.match_peak(torch.tanh(3 * CLIPS), CLIPS)
    assert float(losses.reconstruction_loss(distorted, CLIPS)) > 0.05


def test_parameter_weights_ignore_absent_effects_and_inaudible_eq_bands():
    chain = Chain(SR)
    params = chain.sample_params(2, torch.Generator().manual_seed(0))
    params["eq"]["present"] = torch.tensor([1.0, 0.0])
    params["eq"]["bell_2_gain_db"] = torch.tensor([0.0, 6.0])
    params["eq"]["bell_3_gain_db"] = torch.tensor([6.0, 6.0])
    presence, normalised = chain.to_vectors(params)
    weights = losses.parameter_weights(chain, normalised, presence)
    column = {(e, p.name): i for i, (e, p) in enumerate(chain.flat_params)}
    assert weights[0, column[("eq", "bell_2_hz")]] == 0 and weights[0, column[("eq", "bell_2_gain_db")]] == 1
    assert weights[0, column[("eq", "bell_3_q")]] == 1
    assert weights[1, : len(chain.specs[0].params)].abs().sum() == 0
    assert losses.parameter_loss(normalised, normalised, weights) == 0


def test_delay_bin_loss_is_lowest_at_the_true_bin():
    target = torch.tensor([0.3])
    logits = torch.zeros(1, 10)
    right, wrong = logits.clone(), logits.clone()
    right[0, 2] = 10.0  # bin 2 spans [0.2, 0.3)
    wrong[0, 7] = 10.0
    present = torch.ones(1)
    assert losses.delay_bin_loss(right, target, present) < losses.delay_bin_loss(wrong, target, present)
    assert losses.delay_bin_loss(wrong, target, torch.zeros(1)) == 0


# -- learning --------------------------------------------------------------------------------------

def test_a_few_steps_lower_the_param_model_loss():
    torch.manual_seed(0)
    model, chain, batch = ParamEstimator(**TINY_ESTIMATOR), Chain(SR), degraded_batch(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:  # the end-to-end term is exercised in test_train.py
        output = model(batch["degraded"])
        supervised = losses.parameter_loss(output.params, batch["params"],
                                           losses.parameter_weights(chain, batch["params"], batch["presence"]))
        return supervised + losses.presence_loss(output.presence_logits, batch["presence"])

    first = float(loss().detach())
    for _ in range(8):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert float(loss().detach()) < 0.8 * first


def test_a_few_steps_lower_the_unet_loss():
    torch.manual_seed(0)
    model, batch = SpectrogramUNet(**TINY_UNET), degraded_batch(2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        return losses.reconstruction_loss(model(batch["degraded"]), batch["clean"])

    first = float(loss().detach())
    for _ in range(8):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert float(loss().detach()) < 0.9 * first


# -- checkpoints ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, args", [("param", TINY_ESTIMATOR), ("unet", TINY_UNET)])
def test_save_then_load_gives_identical_outputs(tmp_path, kind, args):
    model = build_model(kind, **args).eval()
    optimizer = torch.optim.Adam(model.parameters())
    path = tmp_path / "run" / "best.pt"
    save_checkpoint(path, model, kind, {"model": kind, "steps": 3}, step=3, optimizer=optimizer, best_metric=math.inf)
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]  # no temporary file left behind
    raw = torch.load(path, weights_only=True)
    assert raw["spec_version"] == SPEC_VERSION and raw["step"] == 3 and raw["model_kind"] == kind
    loaded, config = load_model(path)
    assert config == {"model": kind, "steps": 3} and not loaded.training
    with torch.no_grad():
        expected, actual = model(CLIPS), loaded(CLIPS)
    for a, b in zip(expected if kind == "param" else [expected], actual if kind == "param" else [actual]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_checkpoints_are_refused_only_for_effects_whose_parameters_changed(tmp_path):
    path = tmp_path / "model.pt"

    def saved(kind: str, args: dict, **changes) -> None:
        save_checkpoint(path, build_model(kind, **args), kind, {}, step=1)
        checkpoint = torch.load(path, weights_only=True)
        checkpoint.update(changes)
        torch.save(checkpoint, path)

    saved("unet", TINY_UNET, spec_version=SPEC_VERSION + 1)  # the U-Net does not depend on the effects
    assert isinstance(load_model(path)[0], SpectrogramUNet)
    saved("param", TINY_ESTIMATOR, spec_version=SPEC_VERSION + 1)
    with pytest.raises(ValueError, match="parameter spec version .* newer"):
        load_model(path)
    newest = max(Chain(SR).effects, key=lambda m: m.ROLE.since)
    if newest.ROLE.since > 1:  # a checkpoint from before the newest effect's parameters meant what they mean now
        saved("param", TINY_ESTIMATOR, spec_version=newest.ROLE.since - 1)
        with pytest.raises(ValueError, match=f"parameters of {newest.SPEC.name} changed meaning"):
            load_model(path)
        older = [name for name in Chain(SR).effect_names if name != newest.SPEC.name]
        saved("param", {**TINY_ESTIMATOR, "effects": older}, spec_version=newest.ROLE.since - 1)
        model, _ = load_model(path)  # one that does not estimate it: loaded, the effect absent in its estimates
        assert model.chain.estimated == tuple(older)
        with torch.no_grad():
            assert float(model.estimate(CLIPS)[newest.SPEC.name]["present"].abs().max()) == 0.0
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_unet_output_has_no_spike_at_the_end():
    """The last samples of a clip whose length is not a multiple of the hop lie under the tail of
    one window; the output there must stay within the U-Net's gain bound, not blow up."""
    torch.manual_seed(0)
    unet = SpectrogramUNet(**TINY_UNET).eval()
    with torch.no_grad():
        for parameter in unet.output.parameters():
            parameter.mul_(50.0)  # large gains that change from frame to frame
        for samples in (SR + 1, SR + 77, SR + 127):
            audio = CLIPS[:1, :, :samples]
            restored = unet(audio)
            bound = 10 ** (unet.hyperparameters["max_gain_db"] / 20) * float(audio.abs().max())
            assert float(restored.abs().max()) <= bound


@pytest.mark.parametrize("strength", [0.0, 0.25, 1.0])
def test_unet_strength_scales_the_log_gain_of_its_mask(strength):
    unet = SpectrogramUNet(**TINY_UNET).eval()
    unet.log_gains = lambda log_magnitude: torch.full_like(log_magnitude, math.log(2.0))  # +6 dB everywhere
    with torch.no_grad():
        restored = unet(CLIPS, strength)
    ratio = restored.square().mean().sqrt() / CLIPS.square().mean().sqrt()
    assert float(ratio) == pytest.approx(2.0 ** strength, rel=1e-3)  # all but the Nyquist bin, passed through
