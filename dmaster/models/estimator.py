"""``ParamEstimator``: listens to degraded audio and estimates the chain's parameters.

Features (all from :mod:`dmaster.features`, computed inside the model from raw audio at the
model's sample rate, after normalising each clip to −20 dBFS RMS; the original level is kept
as an input so that the gain stays observable):

- log-mel spectrogram of mid and side → 2-D CNN → mean and max over time (per frequency row);
- long-term spectrum on 160 log-spaced bands (30 Hz – 16 kHz; band average and movement over time,
  mid and side) → 1-D CNN along log frequency, where an EQ bell looks the same at every centre;
- cepstral echo evidence on log-spaced lag bins covering the echo delay range → 1-D CNN → one
  logit per lag bin; the soft-argmax over the bins *is* the normalised echo delay (the bins
  tile the delay's normalised log scale), so the delay head is translation-equivariant in lag;
- level statistics (RMS, peak, crest factor, side/mid ratio);
- with ``dynamics=True``, the level's distribution in time (:func:`dmaster.features.level_distribution`:
  quantiles of 1, 10 and 100 ms levels in absolute dBFS and the crest factor by level) → a small MLP: what a
  compressor's threshold does to the audio, which the spectrogram of the level-normalised clip shows only
  indirectly. Its last layer starts at zero, so a model grown from one without it
  (:meth:`ParamEstimator.grown_from`) starts as that model.

Each branch is projected to ``hidden`` features and the projections are summed; a residual MLP
trunk with layer norms maps the sum to presence logits ``(batch, effects)`` and normalised
parameters ``(batch, params)`` in ``[0, 1]`` of the effects it estimates (``effects``: all of the chain's
unless its checkpoint dates from before some joined); the delay column comes from the lag head.
:meth:`ParamEstimator.estimate` gives the effects it does not estimate as absent. The
short, normalised paths from every feature to the heads matter: with a plain MLP on the
concatenated features the model was far slower to learn to read the gain off the level.

Sample-accurate echo delays: one lag bin spans ≈ 3 % of the delay (26 samples at 20 ms,
44.1 kHz), so :meth:`ParamEstimator.refine_delay` moves the delay to the strongest cepstral
peak within ±6 % of the estimate and interpolates it to a fraction of a sample; the refined
column passes gradients straight through to the coarse estimate (how close it lands on real
music: ``docs/model_card.md``).

>>> model = ParamEstimator(width=8, hidden=64).eval()   # untrained; dmaster.checkpoint.load_model loads weights
>>> audio = 0.1 * torch.randn(1, 2, model.min_samples, generator=torch.Generator().manual_seed(0))
>>> with torch.no_grad():
...     output = model(audio)
...     params = model.estimate(audio)
>>> output.presence_logits.shape == (1, len(model.chain.estimated))
True
>>> output.params.shape == (1, len(model.chain.flat_params))
True
>>> sorted(params["echo"])
['delay_ms', 'level_db', 'present']
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import torch
from torch import nn

from .. import features
from ..effects import Chain, ChainParams

Tensor = torch.Tensor

__all__ = ["EstimatorOutput", "ParamEstimator"]

LEVEL_TARGET_DB = -20.0
MEL_FFT, MEL_HOP = 2048, 512
BAND_FFT, BAND_HOP = 4096, 1024
BAND_RANGE_HZ = (30.0, 16000.0)
CEPSTRUM_SMOOTHING = 16
# fixed affine input scaling (log10 powers of a −20 dBFS clip), keeps the first layers well conditioned
MEL_OFFSET, MEL_SCALE = -2.0, 3.0
BAND_AVERAGE_SCALE = 2.0
LAG_EVIDENCE_SCALE = 10.0
# RMS dBFS, peak dBFS, crest factor dB, side/mid dB of music at typical levels → about zero mean, unit spread
STATISTICS_CENTRE = (-15.0, -3.0, 12.0, -15.0)
STATISTICS_SCALE = (8.0, 5.0, 4.0, 8.0)
# level_distribution: short-term levels (dBFS) and crest factors (dB) of music → about zero mean, unit spread
DISTRIBUTION_LEVEL = (-18.0, 8.0)
DISTRIBUTION_CREST = (6.0, 2.0)
DISTRIBUTION_CLAMP = 6.0


class EstimatorOutput(NamedTuple):
    """What :meth:`ParamEstimator.forward` returns."""

    presence_logits: Tensor
    """``(batch, estimated effects)``; ``sigmoid`` gives the probability that each effect is on."""
    params: Tensor
    """``(batch, params)`` normalised to ``[0, 1]``, in ``chain.flat_params`` order."""
    delay_logits: Tensor
    """``(batch, lag bins)`` scores of the echo delay bins (log-spaced over the delay range)."""


class _ResidualBlock(nn.Module):
    """``x + MLP(LayerNorm(x))``."""

    def __init__(self, features: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.LayerNorm(features), nn.Linear(features, 2 * features), nn.GELU(),
                                 nn.Linear(2 * features, features))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mlp(x)


def _conv_block(dimensions: int, in_channels: int, out_channels: int, stride: int, kernel: int = 3) -> nn.Sequential:
    conv = nn.Conv2d if dimensions == 2 else nn.Conv1d
    return nn.Sequential(conv(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2),
                         nn.GroupNorm(math.gcd(8, out_channels), out_channels), nn.GELU())


class ParamEstimator(nn.Module):
    """Degraded audio ``(batch, channels, samples)`` at ``sample_rate`` → :class:`EstimatorOutput`.

    Clips must be at least :attr:`min_samples` long (twice the longest echo delay), mono or stereo.

    Args:
        sample_rate: Hz of the audio it hears; its :attr:`chain` runs at the same rate.
        width: channels of the CNNs (the model grows about with its square).
        hidden: size of the trunk and of each branch's projection.
        n_mels: mel bands of the spectrogram branch, a multiple of 16.
        n_bands: log-frequency bands of the long-term-spectrum branch, a multiple of 8.
        n_lag_bins: log-spaced bins of the echo-delay head.
        dynamics: add the branch of the level's distribution in time (see the module's docstring).
        effects: the effects it estimates, by name (``None``: every effect of the chain); its chain's
            :attr:`~dmaster.effects.Chain.estimated`. The echo is needed (the delay head).

    Raises:
        ValueError: a size that is not a positive integer or not the multiple it must be, or effects that are
            unknown or lack the echo.
    """

    def __init__(self, sample_rate: int = 44100, width: int = 24, hidden: int = 256, n_mels: int = 64,
                 n_bands: int = 160, n_lag_bins: int = 128, dynamics: bool = False,
                 effects: Sequence[str] | None = None):
        super().__init__()
        for name, value in (("width", width), ("hidden", hidden), ("n_mels", n_mels), ("n_bands", n_bands),
                            ("n_lag_bins", n_lag_bins)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ParamEstimator: {name} must be a positive integer, got {value!r}")
        if n_mels % 16 or n_bands % 8:
            raise ValueError(f"ParamEstimator: n_mels must be a multiple of 16 and n_bands of 8, "
                             f"got {n_mels} and {n_bands}")
        self.hyperparameters: dict[str, Any] = dict(sample_rate=sample_rate, width=width, hidden=hidden,
                                                    n_mels=n_mels, n_bands=n_bands, n_lag_bins=n_lag_bins)
        if dynamics:  # only when on, so that checkpoints from before the branch keep their hyper-parameters
            self.hyperparameters["dynamics"] = True
        self.sample_rate = sample_rate
        self.chain = Chain(sample_rate, estimated=effects)
        if "echo" not in self.chain.estimated:
            raise ValueError(f"ParamEstimator: the effects it estimates must include the echo (its delay head), "
                             f"got {list(self.chain.estimated)}")
        self.hyperparameters["effects"] = list(self.chain.estimated)  # always: a later dmaster may have more
        n_effects, n_params = len(self.chain.estimated), len(self.chain.flat_params)

        delay_spec = dict(zip(self.chain.effect_names, self.chain.specs))["echo"].param("delay_ms")
        self.delay_column = [(e, p.name) for e, p in self.chain.flat_params].index(("echo", "delay_ms"))
        self.delay_range_ms = (delay_spec.minimum, delay_spec.maximum)
        min_lag, max_lag = (ms * sample_rate / 1000 for ms in self.delay_range_ms)
        self.lag_range = (math.floor(min_lag), math.ceil(max_lag) + 1)
        self.min_samples = 2 * (self.lag_range[1] + CEPSTRUM_SMOOTHING) + 2
        """Shortest clip the cepstrum can find the longest echo delay in (twice the delay)."""

        self.register_buffer("mel_filterbank", features.mel_filterbank(MEL_FFT, sample_rate, n_mels),
                             persistent=False)
        self.register_buffer("band_filterbank", features.log_frequency_filterbank(
            BAND_FFT, sample_rate, n_bands, *BAND_RANGE_HZ), persistent=False)
        self.register_buffer("lag_bin_edges", features.log_lag_bin_edges(min_lag, max_lag, n_lag_bins),
                             persistent=False)
        self.register_buffer("lag_bin_centres", (torch.arange(n_lag_bins) + 0.5) / n_lag_bins, persistent=False)
        self.register_buffer("statistics_centre", torch.tensor(STATISTICS_CENTRE), persistent=False)
        self.register_buffer("statistics_scale", torch.tensor(STATISTICS_SCALE), persistent=False)

        channels = (width, 2 * width, 4 * width, 4 * width, 8 * width)
        self.mel_encoder = nn.Sequential(
            _conv_block(2, 2, channels[0], 1),
            *(_conv_block(2, a, b, 2) for a, b in zip(channels, channels[1:])))
        self.mel_projection = nn.Linear(2 * channels[-1] * (n_mels // 16), hidden)

        band_channels = (width, 2 * width, 4 * width, 4 * width)
        self.band_encoder = nn.Sequential(
            _conv_block(1, 4, band_channels[0], 1, kernel=5),
            *(_conv_block(1, a, b, 2, kernel=5) for a, b in zip(band_channels, band_channels[1:])))
        self.band_projection = nn.Linear(band_channels[-1] * (n_bands // 8), hidden)

        self.lag_scorer = nn.Sequential(
            _conv_block(1, 2, width, 1, kernel=7), _conv_block(1, width, width, 1, kernel=7),
            nn.Conv1d(width, 1, 7, padding=3))

        n_statistics, n_lag_summary = len(STATISTICS_CENTRE), 3
        self.summary_projection = nn.Linear(n_statistics + n_lag_summary, hidden)
        self.dynamics_projection = None
        if dynamics:
            n_distribution = len(features.LEVEL_SCALES_S) * len(features.LEVEL_QUANTILES) + features.CREST_GROUPS
            self.dynamics_projection = nn.Sequential(nn.Linear(n_distribution, hidden), nn.GELU(),
                                                     nn.Linear(hidden, hidden))
            nn.init.zeros_(self.dynamics_projection[-1].weight)
            nn.init.zeros_(self.dynamics_projection[-1].bias)
        self.trunk = nn.Sequential(_ResidualBlock(hidden), _ResidualBlock(hidden), nn.LayerNorm(hidden))
        self.presence_head = nn.Linear(hidden, n_effects)
        self.param_head = nn.Linear(hidden, n_params)

    def check_input(self, audio: Tensor) -> None:
        """Raise ``ValueError``, saying what is needed, unless ``audio`` is float ``(batch, 1 or 2, ≥ min_samples)``."""
        if not (audio.ndim == 3 and audio.is_floating_point() and audio.shape[1] in (1, 2)):
            raise ValueError(f"ParamEstimator expects float audio (batch, 1 or 2 channels, samples), "
                             f"got {tuple(audio.shape)} {audio.dtype}")
        if audio.shape[-1] < self.min_samples:
            raise ValueError(f"ParamEstimator needs clips of at least {self.min_samples} samples "
                             f"({self.min_samples / self.sample_rate:.2f} s at {self.sample_rate} Hz) to find "
                             f"echo delays up to {self.delay_range_ms[1]:g} ms; got {audio.shape[-1]}")

    def forward(self, audio: Tensor) -> EstimatorOutput:
        """Estimate the chain's parameters.

        Args:
            audio: ``(batch, 1 or 2, samples)`` float audio at :attr:`sample_rate`, at least
                :attr:`min_samples` long; its level matters (it tells the gain).

        Returns:
            :class:`EstimatorOutput`: presence logits, normalised parameters (the echo delay from the lag
            head, coarse) and the delay bins' logits.
        """
        self.check_input(audio)
        statistics = (features.level_statistics(audio) - self.statistics_centre) / self.statistics_scale
        normalised, _ = features.normalise_level(audio, LEVEL_TARGET_DB)
        mid_side = features.mid_side(normalised)

        mel = features.log_mel_spectrogram(mid_side, self.mel_filterbank, MEL_FFT, MEL_HOP)
        mel_map = self.mel_encoder((mel - MEL_OFFSET) / MEL_SCALE)  # (batch, ch, n_mels / 16, frames)
        mel_embedding = self.mel_projection(torch.cat([mel_map.mean(-1), mel_map.amax(-1)], 1).flatten(1))

        bands = features.long_term_spectrum(mid_side, self.band_filterbank, BAND_FFT, BAND_HOP)
        bands = torch.cat([bands[:, :2] / BAND_AVERAGE_SCALE, bands[:, 2:]], dim=1)
        band_embedding = self.band_projection(self.band_encoder(bands).flatten(1))

        cepstrum = features.power_cepstrum(normalised)
        prominence = features.cepstral_prominence(cepstrum, self.lag_range, CEPSTRUM_SMOOTHING)
        evidence = features.echo_lag_evidence(prominence, self.lag_range, self.lag_bin_edges) / LAG_EVIDENCE_SCALE
        position = self.lag_bin_centres.expand_as(evidence)
        delay_logits = self.lag_scorer(torch.stack([evidence, position], 1))[:, 0]
        lag_summary = torch.stack([evidence.amax(1), delay_logits.amax(1) / 10,
                                   torch.logsumexp(delay_logits, 1) / 10], dim=1)

        embedding = mel_embedding + band_embedding + self.summary_projection(torch.cat([statistics, lag_summary], 1))
        if self.dynamics_projection is not None:
            embedding = embedding + self.dynamics_projection(self.level_distribution(audio))
        hidden = self.trunk(embedding)
        params = torch.sigmoid(self.param_head(hidden))
        delay = (delay_logits.softmax(1) * self.lag_bin_centres).sum(1, keepdim=True)
        params = torch.cat([params[:, :self.delay_column], delay, params[:, self.delay_column + 1:]], dim=1)
        return EstimatorOutput(self.presence_head(hidden), params, delay_logits)

    def level_distribution(self, audio: Tensor) -> Tensor:
        """The dynamics branch's input: :func:`dmaster.features.level_distribution` of ``audio`` scaled to about
        zero mean and unit spread, ``(batch, features)``."""
        distribution = features.level_distribution(audio, self.sample_rate)
        levels = len(features.LEVEL_SCALES_S) * len(features.LEVEL_QUANTILES)
        scaled = torch.cat([(distribution[:, :levels] - DISTRIBUTION_LEVEL[0]) / DISTRIBUTION_LEVEL[1],
                            (distribution[:, levels:] - DISTRIBUTION_CREST[0]) / DISTRIBUTION_CREST[1]], dim=1)
        return scaled.clamp(-DISTRIBUTION_CLAMP, DISTRIBUTION_CLAMP)

    def grown_from(self, hyperparameters: dict[str, Any]) -> tuple[str, ...] | None:
        """Whether this model is one with ``hyperparameters`` plus branches that start as no change: the
        prefixes of the weights such a checkpoint lacks (``()`` when the same), or ``None`` when it is
        another model."""
        if hyperparameters == self.hyperparameters:
            return ()
        if {**hyperparameters, "dynamics": True} == self.hyperparameters:
            return ("dynamics_projection.",)
        return None

    @torch.no_grad()
    def echo_cepstrum(self, audio: Tensor) -> Tensor:
        """The cepstrum an echo's delay is refined on and its level read off: the float64 power cepstrum
        ``(batch, n_fft)`` of ``audio`` ``(batch, channels, samples)`` brought to the model's level, no gradient."""
        normalised, _ = features.normalise_level(audio, LEVEL_TARGET_DB)
        return features.power_cepstrum(normalised.double())

    def refine_delay(self, audio: Tensor, params: Tensor, cepstrum: Tensor | None = None) -> Tensor:
        """Move the echo delay onto the nearby cepstral peak, to a fraction of a sample.

        Args:
            audio: the ``(batch, channels, samples)`` audio the estimate came from.
            params: ``(batch, params)`` normalised parameters (:attr:`EstimatorOutput.params`).
            cepstrum: :meth:`echo_cepstrum` of ``audio``, when the caller has it already.

        Returns:
            ``params`` with the delay column refined; the gradient passes straight through to the coarse delay.
        """
        delay_param = self.chain.flat_params[self.delay_column][1]
        coarse = params[:, self.delay_column]
        with torch.no_grad():
            cepstrum = self.echo_cepstrum(audio) if cepstrum is None else cepstrum
            coarse_lag = delay_param.denormalise(coarse.double()) * (self.sample_rate / 1000)
            lag = features.refine_echo_delay(cepstrum, coarse_lag, self.lag_range, smoothing=CEPSTRUM_SMOOTHING)
            fine = delay_param.normalise((lag * (1000 / self.sample_rate)).clamp(*self.delay_range_ms))
        refined = coarse + (fine.to(coarse.dtype) - coarse).detach()
        return torch.cat([params[:, :self.delay_column], refined[:, None], params[:, self.delay_column + 1:]], 1)

    def estimate(self, audio: Tensor, refine_delay: bool = True, cepstrum: Tensor | None = None) -> ChainParams:
        """Estimate as chain parameters.

        Args:
            audio: as for :meth:`forward`.
            refine_delay: refine the echo delay (:meth:`refine_delay`).
            cepstrum: :meth:`echo_cepstrum` of ``audio``, when the caller has it already.

        Returns:
            :data:`dmaster.effects.ChainParams` in physical units, with soft presence ``sigmoid(logits)``
            in ``[0, 1]`` (the probability that each effect is on); the effects it does not estimate absent
            (presence 0, neutral settings).
        """
        output = self(audio)
        params = self.refine_delay(audio, output.params, cepstrum) if refine_delay else output.params
        return self.chain.from_vectors(torch.sigmoid(output.presence_logits), params)
