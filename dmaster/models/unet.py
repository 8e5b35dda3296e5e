"""``SpectrogramUNet``: the direct restoration baseline.

Log-magnitude STFT of each channel → a stem that folds ``frequency_patch`` bins into channels
(keeps the U-Net affordable on a CPU) → 2-D U-Net (strided-conv encoder, transposed-conv decoder,
skip connections) → unfolded back to every bin and merged with the input → a gain per
time–frequency bin, bounded to ±``max_gain_db`` → applied to the input spectrum (so the input
phase is kept) → inverse STFT to the input's length (the STFT runs over the input plus
``n_fft`` zeros, so that every output sample lies under full window overlap). The input is not
loudness-normalised: the absolute level is what the network needs to undo a gain change.

>>> model = SpectrogramUNet().eval()                 # untrained; dmaster.checkpoint.load_model loads weights
>>> audio = 0.1 * torch.randn(1, 2, 8192, generator=torch.Generator().manual_seed(0))
>>> with torch.no_grad():
...     restored = model(audio)
>>> restored.shape
torch.Size([1, 2, 8192])
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

Tensor = torch.Tensor

__all__ = ["SpectrogramUNet"]

# fixed affine scaling of natural-log magnitudes of music at typical levels
LOG_MAGNITUDE_OFFSET, LOG_MAGNITUDE_SCALE = -4.0, 3.0
MAGNITUDE_FLOOR = 1e-5


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.GroupNorm(math.gcd(8, out_channels), out_channels),
        nn.GELU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.GroupNorm(math.gcd(8, out_channels), out_channels),
        nn.GELU())


class _Up(nn.Module):
    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.upsample = nn.ConvTranspose2d(in_channels, skip_channels, 2, stride=2)
        self.merge = _double_conv(2 * skip_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.merge(torch.cat([self.upsample(x), skip], dim=1))


class SpectrogramUNet(nn.Module):
    """Degraded audio ``(batch, channels, samples)`` → restored audio of the same shape.

    Clips must be at least :attr:`min_samples` (``n_fft``) long.

    Args:
        sample_rate: Hz of the audio (stored; the network itself works on STFT bins).
        channels: audio channels in and out.
        width: channels after the stem, doubled at each of ``depth`` levels (capped at ``8 · width``).
        depth: levels of the U-Net.
        n_fft: STFT size, samples; ``n_fft / 2`` must be divisible by ``frequency_patch · 2 ** depth``.
        hop: STFT hop, samples, in ``(0, n_fft]``.
        frequency_patch: frequency bins folded into channels by the stem.
        max_gain_db: bound of the gain per time–frequency bin, dB (positive).

    Raises:
        ValueError: a size out of range or not divisible as required.
    """

    def __init__(self, sample_rate: int = 44100, channels: int = 2, width: int = 16, depth: int = 3,
                 n_fft: int = 1024, hop: int = 512, frequency_patch: int = 4, max_gain_db: float = 40.0):
        super().__init__()
        for name, value in (("channels", channels), ("width", width), ("depth", depth), ("n_fft", n_fft),
                            ("hop", hop), ("frequency_patch", frequency_patch)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SpectrogramUNet: {name} must be a positive integer, got {value!r}")
        if (n_fft // 2) % (frequency_patch * 2 ** depth):
            raise ValueError(f"SpectrogramUNet: n_fft / 2 = {n_fft // 2} must be divisible by "
                             f"frequency_patch · 2 ** depth = {frequency_patch * 2 ** depth}")
        if not 0 < hop <= n_fft:
            raise ValueError(f"SpectrogramUNet: hop must lie in (0, n_fft], got {hop}")
        if not max_gain_db > 0:
            raise ValueError(f"SpectrogramUNet: max_gain_db must be positive, got {max_gain_db}")
        self.hyperparameters: dict[str, Any] = dict(sample_rate=sample_rate, channels=channels, width=width,
                                                    depth=depth, n_fft=n_fft, hop=hop,
                                                    frequency_patch=frequency_patch, max_gain_db=max_gain_db)
        self.sample_rate, self.channels, self.depth, self.n_fft, self.hop = sample_rate, channels, depth, n_fft, hop
        self.max_log_gain = max_gain_db * math.log(10) / 20
        self.min_samples = n_fft
        """Shortest clip the STFT accepts."""
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

        sizes = [min(width * 2 ** level, 8 * width) for level in range(depth + 1)]
        patch = (frequency_patch, 1)
        self.stem = nn.Sequential(nn.Conv2d(channels, sizes[0], patch, stride=patch), _double_conv(sizes[0], sizes[0]))
        self.downs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, stride=2, padding=1), nn.GroupNorm(math.gcd(8, b), b), nn.GELU(),
                          _double_conv(b, b))
            for a, b in zip(sizes, sizes[1:]))
        self.ups = nn.ModuleList(_Up(sizes[level + 1], sizes[level], sizes[level]) for level in reversed(range(depth)))
        self.unpatch = nn.ConvTranspose2d(sizes[0], sizes[0], patch, stride=patch)
        self.output = nn.Conv2d(sizes[0] + channels, channels, 3, padding=1)

    def check_input(self, audio: Tensor) -> None:
        """Raise ``ValueError``, saying what is needed, unless ``audio`` is float
        ``(batch, channels, ≥ min_samples)``."""
        if not (audio.ndim == 3 and audio.is_floating_point() and audio.shape[1] == self.channels):
            raise ValueError(f"SpectrogramUNet expects float audio (batch, {self.channels}, samples), "
                             f"got {tuple(audio.shape)} {audio.dtype}")
        if audio.shape[-1] < self.min_samples:
            raise ValueError(f"SpectrogramUNet needs clips of at least {self.min_samples} samples, "
                             f"got {audio.shape[-1]}")

    def log_gains(self, log_magnitude: Tensor) -> Tensor:
        """The U-Net proper.

        Args:
            log_magnitude: ``(batch, channels, bins, frames)`` normalised log magnitudes.

        Returns:
            ``(batch, channels, bins, frames)`` natural-log gains, bounded to ±``max_gain_db``.
        """
        frames = log_magnitude.shape[-1]
        multiple = 2 ** self.depth
        padded = nn.functional.pad(log_magnitude, (0, -frames % multiple))
        skips = [self.stem(padded)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        x = self.output(torch.cat([self.unpatch(x), padded], dim=1))[..., :frames]
        return self.max_log_gain * torch.tanh(x / self.max_log_gain)

    def forward(self, audio: Tensor, strength: float = 1.0) -> Tensor:
        """Restore audio.

        Args:
            audio: ``(batch, channels, samples)`` float audio at :attr:`sample_rate`, at least
                :attr:`min_samples` long; not level-normalised (its level matters).
            strength: how much of the change to apply: the log gain of every bin times it (1: as trained,
                0: the audio back as it came).

        Returns:
            The restored audio, same shape.
        """
        self.check_input(audio)
        batch, channels, samples = audio.shape
        # n_fft zeros past the end: without them the last samples lie under the far tail of a single
        # window, where the inverse STFT divides by a window sum near zero and turns any gain change
        # of that frame into a spike (up to 40 dB over the music)
        padded = nn.functional.pad(audio.reshape(batch * channels, samples), (0, self.n_fft))
        spectrum = torch.stft(padded, self.n_fft, self.hop, window=self.window, return_complex=True)
        spectrum = spectrum.reshape(batch, channels, *spectrum.shape[-2:])
        bins = self.n_fft // 2  # the Nyquist bin is passed through unchanged
        log_magnitude = torch.log(spectrum[:, :, :bins].abs() + MAGNITUDE_FLOOR)
        gains = torch.exp(strength * self.log_gains((log_magnitude - LOG_MAGNITUDE_OFFSET) / LOG_MAGNITUDE_SCALE))
        gains = torch.cat([gains, torch.ones_like(gains[:, :, :1])], dim=2)
        restored = (spectrum * gains).reshape(batch * channels, bins + 1, -1)
        restored = torch.istft(restored, self.n_fft, self.hop, window=self.window, length=samples + self.n_fft)
        return restored[:, :samples].reshape(batch, channels, samples)
