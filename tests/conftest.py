import pytest
import torch

from dmaster.checkpoint import save_checkpoint
from dmaster.models import ParamEstimator, SpectrogramUNet
from dmaster.synth import music_like

SAMPLE_RATE = 44100


@pytest.fixture(scope="session")
def music() -> torch.Tensor:
    """(2, 2, 1.5 s) of synthetic music at 44.1 kHz, two different clips."""
    return torch.stack([music_like(1.5, SAMPLE_RATE, 2, seed=1), music_like(1.5, SAMPLE_RATE, 2, seed=2)])


@pytest.fixture(scope="module")
def estimator() -> ParamEstimator:
    """An untrained parameter estimator small enough for fast tests."""
    torch.manual_seed(0)
    return ParamEstimator(SAMPLE_RATE, width=4, hidden=16, n_mels=32, n_bands=32, n_lag_bins=16).eval()


@pytest.fixture(scope="module")
def unet() -> SpectrogramUNet:
    """An untrained U-Net small enough for fast tests."""
    torch.manual_seed(0)
    return SpectrogramUNet(SAMPLE_RATE, width=4, depth=2).eval()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, estimator, unet):
    """A folder holding the two test models saved as checkpoints, ``param.pt`` and ``unet.pt``."""
    folder = tmp_path_factory.mktemp("models")
    save_checkpoint(folder / "param.pt", estimator, "param", {}, step=0)
    save_checkpoint(folder / "unet.pt", unet, "unet", {}, step=0)
    return folder
