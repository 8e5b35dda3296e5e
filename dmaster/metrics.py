"""Evaluation metrics on ``(batch, channels, samples)`` tensors; each returns ``(batch,)``.

>>> reference = torch.randn(2, 2, 4096, generator=torch.Generator().manual_seed(0))
>>> mrstft_distance(reference, reference).tolist()                  # lower is better
[0.0, 0.0]
>>> bool((mrstft_distance(0.5 * reference, reference) > 0).all())
True
>>> noisy = reference + 0.1 * torch.randn(2, 2, 4096, generator=torch.Generator().manual_seed(1))
>>> [round(v) for v in si_sdr(noisy, reference).tolist()]            # dB, higher is better
[20, 20]
>>> torch.allclose(si_sdr(3 * noisy, reference), si_sdr(noisy, reference))   # blind to scale
True
"""

from __future__ import annotations

import math

import torch

from .loudness import integrated_loudness

Tensor = torch.Tensor

__all__ = ["CleanTarget", "MRSTFT_RESOLUTIONS", "level_matched", "log_spectral_distance", "mrstft_distance", "si_sdr",
           "stft_magnitude"]

MRSTFT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512))
"""``(n_fft, hop)`` in samples of each resolution of :func:`mrstft_distance`."""


def stft_magnitude(x: Tensor, n_fft: int, hop: int, eps: float = 1e-7) -> Tensor:
    """Magnitude STFT of ``x`` ``(batch, channels, samples)`` with a Hann window, ``n_fft`` and ``hop`` in
    samples, ``eps`` added to the power: ``(batch, channels, n_fft // 2 + 1, frames)``."""
    batch, channels, samples = x.shape
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    spectrum = torch.stft(x.reshape(batch * channels, samples), n_fft, hop, window=window, return_complex=True)
    magnitude = (spectrum.real.square() + spectrum.imag.square() + eps).sqrt()
    return magnitude.reshape(batch, channels, *magnitude.shape[-2:])


def mrstft_distance(estimate: Tensor, reference: Tensor,
                    resolutions: tuple[tuple[int, int], ...] = MRSTFT_RESOLUTIONS) -> Tensor:
    """Multi-resolution STFT distance (spectral convergence + log-magnitude L1, averaged
    over resolutions), as in Yamamoto et al. 2020 and auraloss. Lower is better; 0 for identical audio.

    Args:
        estimate: ``(batch, channels, samples)``.
        reference: the same shape.
        resolutions: ``(n_fft, hop)`` pairs in samples.

    Returns:
        ``(batch,)``.
    """
    _check_pair(estimate, reference)
    total = estimate.new_zeros(estimate.shape[0])
    for n_fft, hop in resolutions:
        est, ref = stft_magnitude(estimate, n_fft, hop), stft_magnitude(reference, n_fft, hop)
        convergence = (est - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)
        log_distance = (est.log() - ref.log()).abs().flatten(1).mean(1)
        total = total + convergence + log_distance
    return total / len(resolutions)


def level_matched(estimate: Tensor, reference: Tensor) -> Tensor:
    """``estimate`` scaled to ``reference``'s RMS (over all its samples): to score a restoration apart from
    its level, which is the user's loudness target. Silence is returned as it is.

    >>> level_matched(torch.ones(2, 4), 3 * torch.ones(2, 4))[0, 0].item()
    3.0
    """
    return estimate * _level_match_scale(estimate, reference)


def _level_match_scale(estimate: Tensor, reference: Tensor) -> float:
    rms = float(estimate.square().mean().sqrt())
    return 1.0 if rms == 0.0 else float(reference.square().mean().sqrt()) / rms


def si_sdr(estimate: Tensor, reference: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019), channels pooled; higher is
    better. ``estimate`` and ``reference`` ``(batch, channels, samples)`` → ``(batch,)``."""
    _check_pair(estimate, reference)
    est, ref = estimate.flatten(1), reference.flatten(1)
    est, ref = est - est.mean(1, keepdim=True), ref - ref.mean(1, keepdim=True)
    scale = (est * ref).sum(1, keepdim=True) / (ref.square().sum(1, keepdim=True) + eps)
    target = scale * ref
    return 10 * torch.log10((target.square().sum(1) + eps) / ((est - target).square().sum(1) + eps))


def log_spectral_distance(estimate: Tensor, reference: Tensor, n_fft: int = 2048, hop: int = 512) -> Tensor:
    """Root-mean-square difference of log power spectra in dB (STFT of ``n_fft``, ``hop`` samples),
    averaged over frames and channels; lower is better. ``estimate`` and ``reference``
    ``(batch, channels, samples)`` → ``(batch,)``."""
    _check_pair(estimate, reference)
    est = 10 * torch.log10(stft_magnitude(estimate, n_fft, hop).square())
    ref = 10 * torch.log10(stft_magnitude(reference, n_fft, hop).square())
    return (est - ref).square().mean(2).sqrt().flatten(1).mean(1)


def _check_pair(estimate: Tensor, reference: Tensor) -> None:
    if estimate.shape != reference.shape or estimate.ndim != 3:
        raise ValueError(f"estimate and reference must share a (batch, channels, samples) shape, "
                         f"got {tuple(estimate.shape)} and {tuple(reference.shape)}")


_EPS = 1e-7  # stft_magnitude's, added to the power


class CleanTarget:
    """A clean excerpt with its spectra, computed once for every system scored against it.

    :meth:`scores` gives what :func:`dmaster.metrics.mrstft_distance`, ``si_sdr`` and
    ``log_spectral_distance`` give, with the estimate's spectra computed once for both the raw and the
    level-matched MR-STFT (a scale multiplies the power; the ``eps`` is added back):

    >>> x = torch.randn(2, 8192, generator=torch.Generator().manual_seed(0))
    >>> y = 0.3 * x + 0.05 * torch.randn(2, 8192, generator=torch.Generator().manual_seed(1))
    >>> got = CleanTarget(x, 44100).scores(y)
    >>> abs(got["mrstft"] - float(mrstft_distance(y[None], x[None]))) < 1e-4
    True
    >>> abs(got["mrstft_level_matched"] - float(mrstft_distance(level_matched(y, x)[None], x[None]))) < 1e-4
    True
    >>> abs(got["lsd_db"] - float(log_spectral_distance(y[None], x[None]))) < 1e-3
    True
    >>> abs(CleanTarget(x, 44100).level_matched_mrstft(y) - got["mrstft_level_matched"]) < 1e-6
    True
    """

    def __init__(self, clean: Tensor, sample_rate: int):
        self.clean, self.sample_rate = clean, sample_rate
        self.power = [stft_magnitude(clean[None], n_fft, hop).square() for n_fft, hop in MRSTFT_RESOLUTIONS]
        self.magnitude = [power.sqrt() for power in self.power]
        self.log_power = [power.log() for power in self.power]
        self.loudness = integrated_loudness(clean, sample_rate)

    def _distance(self, index: int, power: Tensor) -> float:
        """The MR-STFT terms at resolution ``index`` of an estimate's ``power`` spectrum."""
        ref = self.magnitude[index]
        convergence = (power.sqrt() - ref).norm() / ref.norm()
        return float(convergence + 0.5 * (power.log() - self.log_power[index]).abs().mean())

    def level_matched_mrstft(self, estimate: Tensor) -> float:
        """The level-matched MR-STFT distance of ``estimate`` ``(channels, samples)`` alone (cheaper than
        :meth:`scores`)."""
        scale = _level_match_scale(estimate, self.clean) ** 2
        total = 0.0
        for i, (n_fft, hop) in enumerate(MRSTFT_RESOLUTIONS):
            power = stft_magnitude(estimate[None], n_fft, hop).square()
            total += self._distance(i, (power - _EPS).clamp_min(0) * scale + _EPS)
        return total / len(MRSTFT_RESOLUTIONS)

    def scores(self, estimate: Tensor) -> dict[str, float]:
        """Every metric of ``estimate`` ``(channels, samples)`` against the clean excerpt."""
        scale = _level_match_scale(estimate, self.clean) ** 2
        raw, matched, lsd = 0.0, 0.0, None
        for i, (n_fft, hop) in enumerate(MRSTFT_RESOLUTIONS):
            power = stft_magnitude(estimate[None], n_fft, hop).square()
            raw += self._distance(i, power)
            matched += self._distance(i, (power - _EPS).clamp_min(0) * scale + _EPS)
            if (n_fft, hop) == (2048, 512):
                lsd = float((10 * (power.log10() - self.power[i].log10())).square().mean(2).sqrt().mean())
        if lsd is None:
            lsd = float(log_spectral_distance(estimate[None], self.clean[None]))
        error = abs(integrated_loudness(estimate, self.sample_rate) - self.loudness)
        return {"mrstft": raw / len(MRSTFT_RESOLUTIONS), "mrstft_level_matched": matched / len(MRSTFT_RESOLUTIONS),
                "si_sdr_db": float(si_sdr(estimate[None], self.clean[None])), "lsd_db": lsd,
                "lufs_error_db": error if math.isfinite(error) else math.nan}
