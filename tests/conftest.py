import pytest
import torch

from dmaster.synth import music_like

SAMPLE_RATE = 44100


@pytest.fixture(scope="session")
def music() -> torch.Tensor:
    """(2, 2, 1.5 s) of synthetic music at 44.1 kHz, two different clips."""
    return torch.stack([music_like(1.5, SAMPLE_RATE, 2, seed=1), music_like(1.5, SAMPLE_RATE, 2, seed=2)])
