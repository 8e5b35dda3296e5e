"""The chain, the limiter and training on CUDA agree with the CPU (run where a GPU is present)."""

import pytest
import torch

from dmaster import Chain
from dmaster.limiter import limit_peaks
from dmaster.synth import music_like
from dmaster.training import TrainConfig, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
SR = 44100


@pytest.fixture(scope="module")
def batch():
    chain = Chain(SR)
    clean = torch.stack([music_like(3.0, SR, 2, seed=s) for s in range(4)])
    params = chain.sample_params(4, torch.Generator().manual_seed(3))
    for effect in params.values():
        effect["present"] = torch.ones(4)
    return chain, clean, params


def test_forward_and_inverse_on_cuda_match_the_cpu(batch):
    chain, clean, params = batch
    with torch.no_grad():
        degraded = chain(clean, params)
        assert torch.allclose(chain(clean.cuda(), params).cpu(), degraded, atol=1e-4)
        assert torch.allclose(chain.inverse(degraded.cuda(), params).cpu(), chain.inverse(degraded, params),
                              atol=1e-3)


def test_gradients_through_the_inverse_on_cuda_are_finite(batch):
    chain, clean, params = batch
    degraded = chain(clean, params).cuda()
    leaves = {effect: {name: value.cuda().requires_grad_(name != "present") for name, value in values.items()}
              for effect, values in params.items()}
    chain.inverse(degraded, leaves).square().mean().backward()
    for values in leaves.values():
        for name, value in values.items():
            if name != "present":
                assert value.grad is not None and torch.isfinite(value.grad).all(), name


def test_training_runs_on_cuda(tmp_path):
    result = train(TrainConfig(data="synthetic", model="param", device="cuda", steps=3, val_every=3, batch_size=2,
                               val_batches=1, synthetic_clips=2, e2e_weight=0.5, e2e_start=0.0, e2e_items=1,
                               models_dir=str(tmp_path / "models"), logs_dir=str(tmp_path / "logs")))
    assert next(result.model.parameters()).is_cuda
    assert torch.isfinite(torch.tensor(result.metrics["mrstft"]))


@pytest.mark.parametrize("true_peak", [False, True])
def test_the_limiter_on_cuda_matches_the_cpu(batch, true_peak):
    _, clean, _ = batch
    loud = 4 * clean
    on_cpu = limit_peaks(loud, SR, -1.0, true_peak=true_peak)
    on_cuda = limit_peaks(loud.cuda(), SR, -1.0, true_peak=true_peak)
    assert on_cuda.device.type == "cuda" and torch.allclose(on_cuda.cpu(), on_cpu, atol=1e-5)
