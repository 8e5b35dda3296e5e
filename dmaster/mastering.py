"""Inference: ``master(audio, sample_rate)`` estimates what degraded a track and undoes it.

The parameter model listens to several windows spread over the track; the
degradations are track-wide, so their estimates are aggregated robustly (mean
presence probability, median of each normalised parameter). The chain's inverse
then runs over the whole track in one pass, each effect's inverse weighted by the
probability that the effect is there (a blend between leaving the audio alone and
undoing the effect fully): that is how the model is trained end to end, and it costs
less than a yes/no decision when the model is unsure. The inverse's LTI stage also applies
the model's residual correction (:mod:`dmaster.residual`: tonal balance and level, fitted
to what the model's restorations leave wrong), when the checkpoint has one next to it; the
U-Net's output is filtered with its own. A checkpoint may also come with per-effect inverse
strengths (``<checkpoint>.strength.json``): each effect's weight is scaled by its strength,
chosen on the train tracks for what the model's estimate of that effect is worth (0 for an
effect the model cannot hear). Last, the level: the restored level
(the model's gain estimate) is kept under a peak ceiling; or the loudness is normalised
(ITU-R BS.1770 via pyloudnorm) with the peaks limited to the ceiling; or the peak is set to it.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Union

import numpy as np
import soxr
import torch
from torch import nn

from .checkpoint import load_model
from .data.audio import fold_to_stereo, to_pcm, write_json_atomic
from .effects import SPECS, Chain, ChainParams, ExtraResponse, reverb
from .effects.lti import apply_response, convolution_size
from .effects.spec import all_finite
from .limiter import limit_peaks, peak_db, peak_envelope
from .loudness import ABSOLUTE_GATE_LUFS, integrated_loudness
from .models import ParamEstimator, SpectrogramUNet
from .residual import MAX_BAND_DB, MAX_LEVEL_DB, ResidualCorrection, band_centres_hz, extra_response

Tensor = torch.Tensor
Audio = Union[np.ndarray, Tensor]
ModelChoice = Union[None, str, Path, nn.Module]

SHIPPED = {"param": "param.pt", "unet": "unet.pt"}
RESIDUAL_SUFFIX = ".residual.json"
"""A checkpoint's residual correction lies next to it: ``param.pt`` → ``param.residual.json``."""
STRENGTH_SUFFIX = ".strength.json"
"""A parameter model's inverse strengths lie next to it: ``param.pt`` → ``param.strength.json``."""
MAX_WINDOWS = 8
ANALYSIS_SECONDS = 5.0
MIN_PRESENCE = 0.05
"""Effects less likely than this are left alone (not inverted at all)."""
UNET_CHUNK_SECONDS = 20.0
UNET_OVERLAP_SECONDS = 1.0
ONE_PASS_SECONDS = 480.0
"""Tracks up to this long are inverted in one pass (peak memory ~0.45 GB per minute of stereo);
longer ones in chunks of at most :data:`CHUNK_SECONDS`, so that an hour-long mix fits in ~5 GB."""
CHUNK_SECONDS = 360.0
CHUNK_MARGIN_SECONDS = 30.0
"""Audio each chunk is inverted (or limited) with on either side and then cut off: more than the
longest echo-inverse tail (27 s at 800 ms and −3 dB), reverb (4 s), compressor release (2 s) or
limiter ramp (at 0.05 dB/ms, 1500 dB), so the chunks join without seams."""
MIN_RATE, MAX_RATE = 8000, 384000
"""Sample rates (Hz) ``master()`` takes."""
MAX_CHANNELS = 64
PCM_DTYPES = (torch.int16, torch.int32)
LOUDNESS_PASSES = 4
LOUDNESS_TOLERANCE_LU = 0.1
MAX_LIMITING_DB = 12.0
"""The most the limiter may take off a peak to reach a loudness target; louder targets are missed."""


@dataclass
class MasterResult:
    """What :func:`master` returns."""

    audio: Audio
    """Mastered audio, same type, dtype and layout as the input."""
    sample_rate: int
    params: dict[str, Any] = field(default_factory=dict)
    """JSON-ready: per effect, the presence probability, the estimated degradation in physical
    units and the correction applied; plus the loudness and peak handling."""

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.params, indent=indent)


@lru_cache(maxsize=4)
def _load(path: str) -> nn.Module:
    try:
        model, _ = load_model(path, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path} is not a dmaster model checkpoint: torch cannot load it "
                         f"({type(error).__name__})") from None
    return model.eval()


def shipped_weights(kind: str) -> Path:
    """Path of a model shipped inside the package (``"param"`` or ``"unet"``)."""
    if kind not in SHIPPED:
        raise ValueError(f"unknown shipped model {kind!r}; choose one of {', '.join(SHIPPED)}")
    return Path(str(resources.files("dmaster") / "weights" / SHIPPED[kind]))


def _checkpoint_path(model: None | str | Path) -> Path:
    path = shipped_weights(model or "param") if model is None or model in SHIPPED else Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"no model checkpoint at {path}")
    return path


def resolve_model(model: ModelChoice) -> nn.Module:
    """``None`` → the shipped parameter model; ``"param"``/``"unet"`` → a shipped model;
    a path → a checkpoint; a module → itself."""
    if isinstance(model, nn.Module):
        return model.eval()
    return _load(str(_checkpoint_path(model)))


def _sidecar(model: ModelChoice, suffix: str) -> Path | None:
    """The file next to ``model``'s checkpoint named with ``suffix``, if there is one; ``None`` for a module."""
    if isinstance(model, nn.Module):
        return None
    path = _checkpoint_path(model)
    sidecar = path.with_name(path.stem + suffix)
    return sidecar if sidecar.is_file() else None


def resolve_residual(model: ModelChoice) -> ResidualCorrection | None:
    """The residual correction fitted for ``model`` (a file next to its checkpoint), or ``None``:
    for a module, or a checkpoint without one."""
    sidecar = _sidecar(model, RESIDUAL_SUFFIX)
    return None if sidecar is None else _load_residual(str(sidecar), sidecar.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _load_residual(path: str, modified_ns: int) -> ResidualCorrection:
    """Cached by modification time too, so that a refitted correction is read again."""
    return ResidualCorrection.load(path)


def resolve_strength(model: ModelChoice) -> dict[str, float]:
    """Per-effect inverse strengths in [0, 1] for ``model`` (a file next to its checkpoint); ``{}``
    (every effect at full strength) for a module, the U-Net or a checkpoint without one."""
    sidecar = _sidecar(model, STRENGTH_SUFFIX)
    return {} if sidecar is None else load_strength(sidecar)


def load_strength(path: Path) -> dict[str, float]:
    """Read ``{"strength": {effect: value in [0, 1]}, "description": ...}``; ``ValueError`` names the
    file and what is wrong."""
    try:
        strength = {str(name): float(value) for name, value in json.loads(Path(path).read_text())["strength"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{path} is not an inverse-strength file: {error!r}") from error
    return _checked_strength(strength, str(path))


def _check_effect_names(names: Iterable[str], source: str) -> None:
    """Raise ``ValueError`` naming ``source`` and the first of ``names`` that is not an effect of the chain."""
    effects = [spec.name for spec in SPECS]
    for name in names:
        if name not in effects:
            raise ValueError(f"{source}: unknown effect {name!r}; effects are {', '.join(effects)}")


def _checked_strength(strength: dict[str, float], source: str) -> dict[str, float]:
    """``strength`` after checking that it names effects of the chain with values in [0, 1]."""
    _check_effect_names(strength, source)
    for name, value in strength.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{source}: strength of {name} must lie in [0, 1], got {value}")
    return strength


def save_strength(path: Path, strength: dict[str, float], description: str) -> None:
    """Write what :func:`load_strength` reads, atomically."""
    write_json_atomic(path, {"strength": strength, "description": description})


def _as_channels_first(audio: Audio) -> tuple[Tensor, bool]:
    """``(channels, samples)`` float32 tensor and whether the input was 1-D."""
    if isinstance(audio, np.ndarray):
        if not (np.issubdtype(audio.dtype, np.floating) or audio.dtype in (np.int16, np.int32)):
            raise TypeError(f"audio must be float (or int16/int32 PCM), got {audio.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32 if audio.dtype == np.float16 else None))
    elif isinstance(audio, Tensor):
        tensor = audio.detach().cpu()
    else:
        raise TypeError(f"audio must be a numpy array or a torch tensor, got {type(audio).__name__}")
    if tensor.ndim not in (1, 2):
        raise ValueError(f"audio must be shaped (samples,) or (channels, samples), got {tuple(tensor.shape)}")
    if not (tensor.is_floating_point() or tensor.dtype in PCM_DTYPES):
        raise TypeError(f"audio must be float (or int16/int32 PCM), got {tensor.dtype}")
    mono = tensor.ndim == 1
    tensor = tensor[None] if mono else tensor
    channels, samples = tensor.shape
    if channels == 0 or samples == 0:
        raise ValueError(f"audio is empty: shape {tuple(tensor.shape)}")
    if channels > MAX_CHANNELS or (channels > 8 and channels > samples):
        raise ValueError(f"audio shaped {tuple(tensor.shape)} reads as {channels} channels of {samples} samples; "
                         "pass (channels, samples), not (samples, channels): audio.T for what soundfile reads")
    if tensor.dtype in PCM_DTYPES:
        tensor = tensor.float() / -float(torch.iinfo(tensor.dtype).min)  # full scale 2^(bits-1), as soundfile
    tensor = tensor.float()
    if not all_finite(tensor):
        raise ValueError("audio contains NaN or inf")
    return tensor, mono


def _like_input(audio: Tensor, template: Audio, mono: bool) -> Audio:
    """``audio`` ``(channels, samples)`` float32 in the type, dtype and layout of ``template``;
    int16/int32 PCM rounded back to integers (int16 with TPDF dither), clipped to their range."""
    out = audio[0] if mono else audio
    if isinstance(template, np.ndarray):
        if template.dtype in (np.int16, np.int32):
            return to_pcm(out.numpy(), template.dtype)
        return out.numpy().astype(template.dtype, copy=False)
    if template.dtype in PCM_DTYPES:
        pcm = to_pcm(out.numpy(), np.int16 if template.dtype == torch.int16 else np.int32)
        return torch.from_numpy(pcm).to(template.device)
    return out.to(device=template.device, dtype=template.dtype)


def _resample(audio: Tensor, from_rate: int, to_rate: int, length: int) -> Tensor:
    """``audio`` ``(channels, samples)`` resampled with soxr to exactly ``length`` samples (soxr rounds its
    output length, so a round trip can come back a few samples short: then the end is padded with
    its last value before resampling)."""
    if from_rate == to_rate:
        return audio[:, :length]
    out = soxr.resample(audio.T.numpy(), from_rate, to_rate, quality="HQ")
    if out.shape[0] < length:
        spare = math.ceil((length - out.shape[0] + 2) * from_rate / to_rate)
        padded = torch.cat([audio, audio[:, -1:].expand(-1, spare)], dim=1)
        out = soxr.resample(padded.T.numpy(), from_rate, to_rate, quality="HQ")
    return torch.from_numpy(out[:length].T.copy())


def resampled_length(samples: int, from_rate: int, to_rate: int) -> int:
    """Samples that ``samples`` at ``from_rate`` become at ``to_rate`` (at least one)."""
    return max(1, round(samples * to_rate / from_rate))


def _stereo(audio: Tensor) -> Tensor:
    """The model's view of ``(channels, samples)``: the loader's fold-down policy (mono
    duplicated, more than two channels folded to left/right averages)."""
    return torch.from_numpy(np.ascontiguousarray(fold_to_stereo(audio.T.numpy()).T))


def analysis_windows(audio: Tensor, window: int, max_windows: int = MAX_WINDOWS) -> Tensor:
    """Up to ``max_windows`` windows ``(n, channels, window)`` spread evenly over ``audio``
    ``(channels, samples)``, the loudest first kept when some are near-silent; a track shorter
    than one window is looped to fill it."""
    samples = audio.shape[-1]
    if samples < window:
        audio = audio.repeat(1, math.ceil(window / samples))[:, :window]
        samples = window
    count = min(max_windows, max(1, samples // window))
    starts = [(samples - window) * i // max(count - 1, 1) for i in range(count)]  # exact integers at any length
    windows = torch.stack([audio[:, s : s + window] for s in starts])
    rms = windows.square().mean((1, 2)).sqrt()
    keep = rms > 10 ** (-60 / 20)  # drop digital-silence windows unless all are silent
    return windows[keep] if keep.any() else windows


def aggregate(chain: Chain, estimates: ChainParams) -> ChainParams:
    """One parameter set ``(1,)`` from per-window estimates ``(n,)``: mean presence,
    median of each normalised parameter (robust to a window that hears it wrong)."""
    presence, normalised = chain.to_vectors(estimates)
    return chain.from_vectors(presence.mean(0, keepdim=True), normalised.median(0, keepdim=True).values)


def _describe(chain: Chain, params: ChainParams, strength: dict[str, float]) -> dict[str, Any]:
    """JSON: per effect, presence probability, estimated degradation and the correction applied
    (``correction_strength``: the weight of its inverse, 0 = untouched, 1 = fully undone: the presence
    probability times ``inverse_strength``, the model's strength for that effect)."""
    estimate, weights = chain.to_json(params)[0], correction_weights(params, strength)
    report: dict[str, Any] = {}
    for spec in chain.specs:
        values = estimate[spec.name]
        probability = float(params[spec.name]["present"][0])
        weight = float(weights[spec.name]["present"][0])
        estimated = {p.name: values[p.name] for p in spec.params}
        report[spec.name] = {
            "presence_probability": round(probability, 4),
            "applied": weight > 0,
            "inverse_strength": strength.get(spec.name, 1.0),
            "correction_strength": round(weight, 4),
            "estimated": {name: {"value": value, "unit": spec.param(name).unit} for name, value in estimated.items()},
            "correction": _correction(spec.name, estimated) if weight > 0 else "none",
        }
    return report


def _correction(effect: str, estimated: dict[str, float]) -> str:
    if effect == "eq":
        bands = []
        for name in ("low_shelf", "bell_1", "bell_2", "bell_3", "bell_4", "high_shelf"):
            gain = -estimated[f"{name}_gain_db"]
            if abs(gain) >= 0.5:
                bands.append(f"{name.replace('_', ' ')} {gain:+.1f} dB at {estimated[f'{name}_hz']:.0f} Hz "
                             f"(Q {estimated[f'{name}_q']:.2f})")
        return "; ".join(bands) or "all bands within ±0.5 dB"
    if effect == "gain":
        return f"{-estimated['gain_db']:+.1f} dB"
    if effect == "echo":
        return f"echo at {estimated['delay_ms']:.1f} ms, {estimated['level_db']:.1f} dB removed by its inverse comb"
    if effect == "reverb":
        return (f"late reverb of T60 {estimated['t60_s']:.2f} s at {100 * estimated['wet']:.0f} % wet suppressed")
    return (f"decompressed: threshold {estimated['threshold_db']:.1f} dBFS, ratio {estimated['ratio']:.1f}:1, "
            f"attack {estimated['attack_ms']:.1f} ms, release {estimated['release_ms']:.0f} ms, "
            f"makeup {-estimated['makeup_db']:+.1f} dB")


def _describe_residual(bands: Tensor, level: float) -> dict[str, Any]:
    centres = band_centres_hz()
    return {"level_db": round(level, 2),
            "bands_db": {f"{hz:.0f} Hz": round(float(db), 2) for hz, db in zip(centres, bands)}}


def correction_weights(params: ChainParams, strength: dict[str, float] | None = None) -> ChainParams:
    """``params`` with each effect's presence probability turned into the weight of its inverse:
    the probability times the effect's ``strength`` (default 1), or 0 below :data:`MIN_PRESENCE`."""
    strength = strength or {}
    return {name: {**effect,
                   "present": effect["present"] * (effect["present"] >= MIN_PRESENCE) * strength.get(name, 1.0)}
            for name, effect in params.items()}


def estimator_window(model: ParamEstimator) -> int:
    """Samples per analysis window: :data:`ANALYSIS_SECONDS`, or what the model needs if longer.
    (The estimator pools over time, so it takes windows longer than it was trained on.)"""
    return max(model.min_samples, int(ANALYSIS_SECONDS * model.sample_rate))


def model_windows(model: nn.Module, audio: Tensor) -> Tensor:
    """The analysis windows ``(n, 2, samples)`` of ``audio`` ``(channels, samples)`` that the parameter
    model hears and the residual correction measures."""
    window = estimator_window(model) if isinstance(model, ParamEstimator) else int(ANALYSIS_SECONDS * model.sample_rate)
    return analysis_windows(_stereo(audio), window)


@torch.no_grad()
def estimate(model: ParamEstimator, audio: Tensor) -> ChainParams:
    """Track-wide estimate ``(1,)`` (soft presence) from windows of ``audio`` ``(channels, samples)``."""
    return aggregate(model.chain, model.estimate(model_windows(model, audio)))


class Restoration(NamedTuple):
    audio: Tensor
    """``(channels, samples)`` at the model's sample rate."""
    params: ChainParams | None
    """The parameter estimate; ``None`` for the U-Net."""
    residual: tuple[Tensor, float] | None = None
    """The residual correction applied: band corrections dB (40,) and level dB; ``None`` when none."""


@torch.no_grad()
def restore(model: nn.Module, audio: Tensor, residual: ResidualCorrection | None = None,
            strength: dict[str, float] | None = None, amount: float = 1.0) -> Restoration:
    """Restore ``audio`` ``(channels, samples)`` at the model's rate. Each effect's inverse is
    weighted by its presence probability times its ``strength`` (default 1); ``residual`` adds its
    correction to the inverse (the U-Net's output is filtered with it), scaled (in dB) by ``amount``.
    The U-Net's output is mixed with the input by ``amount`` (the parameter model's inverses take
    theirs through ``strength``: :func:`scaled_strength`)."""
    if isinstance(model, SpectrogramUNet):
        restored = _restore_with_unet(model, audio)
        correction = None
        if residual is not None:
            correction = _scaled(residual.correct(model_windows(model, audio), model.sample_rate), amount)
            restored = filter_with(restored, extra_response(*correction, model.sample_rate), model.sample_rate)
        return Restoration(amount * restored + (1 - amount) * audio, None, correction)
    windows = model_windows(model, audio)
    params = aggregate(model.chain, model.estimate(windows))
    correction = None if residual is None else _scaled(
        residual.correct(windows, model.sample_rate, *model.chain.to_vectors(params)), amount)
    return Restoration(apply_estimate(model.chain, audio, params, strength, correction), params, correction)


def _scaled(correction: tuple[Tensor, float], amount: float) -> tuple[Tensor, float]:
    return correction[0] * amount, correction[1] * amount


def scaled_strength(chain: Chain, strength: dict[str, float], amount: float) -> dict[str, float]:
    """Every effect's inverse strength (missing ones at 1) times ``amount``."""
    return {name: strength.get(name, 1.0) * amount for name in chain.effect_names}


def apply_estimate(chain: Chain, audio: Tensor, params: ChainParams, strength: dict[str, float] | None = None,
                   correction: tuple[Tensor, float] | None = None) -> Tensor:
    """The chain's inverse of ``audio`` ``(channels, samples)`` with ``params`` weighted by presence times
    ``strength``, plus a residual ``correction`` (band dB (40,), level dB) when given."""
    extra = None if correction is None else extra_response(*correction, chain.sample_rate)
    return invert(chain, audio, correction_weights(params, strength), extra)


def invert(chain: Chain, audio: Tensor, params: ChainParams, extra: ExtraResponse | None = None) -> Tensor:
    """The chain's inverse of ``audio`` ``(channels, samples)`` with ``params`` (batch of one), filtered
    in float32 (``exact=False``: ~130 dB from the float64 result, far below any estimate's error),
    long tracks in chunks (:func:`in_chunks`)."""
    return in_chunks(audio, lambda piece: chain.inverse(piece[None], params, extra, exact=False)[0],
                     chain.sample_rate)


def filter_with(audio: Tensor, extra: ExtraResponse, sample_rate: int) -> Tensor:
    """``audio`` ``(channels, samples)`` filtered with ``extra`` alone, long tracks in chunks."""
    def apply(piece: Tensor) -> Tensor:
        n_fft = convolution_size(piece.shape[-1] + extra.tail_samples)
        return apply_response(piece[None], extra.response(n_fft), n_fft)[0]
    return in_chunks(audio, apply, sample_rate)


def in_chunks(audio: Tensor, process: Callable[[Tensor], Tensor], sample_rate: int) -> Tensor:
    """``process`` (time-invariant, length-preserving, memory growing with the length) over ``audio``
    ``(channels, samples)``: in one pass up to :data:`ONE_PASS_SECONDS`, else in equal chunks of at most
    :data:`CHUNK_SECONDS`, each processed with :data:`CHUNK_MARGIN_SECONDS` of audio either side that
    is then cut off."""
    samples = audio.shape[-1]
    if samples <= ONE_PASS_SECONDS * sample_rate:
        return process(audio)
    # in multiples of the reverb suppression's hop: every chunk's STFT frames are the whole track's
    hop = reverb.STFT_HOP
    core = math.ceil(samples / math.ceil(samples / (CHUNK_SECONDS * sample_rate)) / hop) * hop
    margin = math.ceil(CHUNK_MARGIN_SECONDS * sample_rate / hop) * hop
    out = torch.empty_like(audio)
    for start in range(0, samples, core):
        first = max(0, start - margin)
        piece = process(audio[:, first : start + core + margin])
        out[:, start : start + core] = piece[:, start - first : start - first + core]
    return out


@torch.no_grad()
def _restore_with_unet(model: SpectrogramUNet, audio: Tensor) -> Tensor:
    """Run the U-Net over ``audio`` in overlapping chunks, cross-faded (no seams)."""
    chunk = int(UNET_CHUNK_SECONDS * model.sample_rate)
    overlap = int(UNET_OVERLAP_SECONDS * model.sample_rate)
    samples = audio.shape[-1]
    if samples <= chunk:
        return _unet_pairs(model, audio)
    step = chunk - overlap
    out = torch.zeros_like(audio)
    weight = torch.zeros(samples)
    fade = torch.ones(chunk)
    ramp = torch.linspace(0, 1, overlap + 2)[1:-1]
    fade[:overlap], fade[-overlap:] = ramp, ramp.flip(0)
    for start in range(0, samples - overlap, step):
        piece = audio[:, start : start + chunk]
        w = fade[: piece.shape[-1]]
        out[:, start : start + piece.shape[-1]] += _unet_pairs(model, piece) * w
        weight[start : start + piece.shape[-1]] += w
    return out / weight.clamp_min(1e-6)


def _unet_pairs(model: SpectrogramUNet, audio: Tensor) -> Tensor:
    """The U-Net takes stereo; mono is duplicated and more channels go through in pairs; a clip shorter
    than the U-Net's minimum is zero-padded to it."""
    samples = audio.shape[-1]
    if samples < model.min_samples:
        return _unet_pairs(model, torch.nn.functional.pad(audio, (0, model.min_samples - samples)))[:, :samples]
    channels = audio.shape[0]
    if channels == 1:
        return model(audio.expand(2, -1)[None])[0].mean(0, keepdim=True)
    padded = torch.cat([audio, audio[-1:]]) if channels % 2 else audio
    restored = model(padded.reshape(-1, 2, padded.shape[-1]).contiguous()).reshape(padded.shape)
    return restored[:channels]


def _to_loudness(audio: Tensor, sample_rate: int, loudness: float, target_lufs: float, peak_ceiling_db: float,
                 true_peak: bool) -> tuple[Tensor, float, float]:
    """``audio`` at ``target_lufs``, its peaks limited to the ceiling (:mod:`dmaster.limiter`). Limiting
    lowers the loudness, so the gain is raised (secant steps on loudness against gain) until the output
    is within :data:`LOUDNESS_TOLERANCE_LU` of the target, in at most :data:`LOUDNESS_PASSES` passes,
    and never so far that the limiter takes more than :data:`MAX_LIMITING_DB` off a peak (the target is
    then missed). Returns the output, its loudness and the limiter's largest gain reduction (dB, ≤ 0)."""
    peak = peak_db(audio, true_peak)
    max_gain_db = peak_ceiling_db + MAX_LIMITING_DB - peak
    gain_db, previous, slope = min(target_lufs - loudness, max_gain_db), None, 1.0
    for _ in range(LOUDNESS_PASSES):
        limited = audio * 10 ** (gain_db / 20)
        limiting_db = min(0.0, peak_ceiling_db - peak - gain_db)
        if limiting_db < 0.0:
            limited = in_chunks(limited, lambda piece: limit_peaks(piece[None], sample_rate, peak_ceiling_db,
                                                                   true_peak=true_peak)[0], sample_rate)
        # measured, not assumed: gating makes loudness not quite scale with the gain (very quiet input)
        reached = integrated_loudness(limited, sample_rate)
        if abs(reached - target_lufs) <= LOUDNESS_TOLERANCE_LU or gain_db >= max_gain_db:
            break
        if previous is not None:  # limiting harder gains less loudness per dB of gain
            slope = min(1.0, max(0.1, (reached - previous[1]) / (gain_db - previous[0])))
        previous = gain_db, reached
        gain_db = min(gain_db + (target_lufs - reached) / slope, max_gain_db)
    return limited, reached, limiting_db


def finish(audio: Tensor, sample_rate: int, target_lufs: float | None, peak_ceiling_db: float,
           normalise_peak: bool = False, true_peak: bool = False) -> tuple[Tensor, dict]:
    """The output level of ``audio`` ``(channels, samples)``: the loudness normalised to ``target_lufs``
    with the peaks limited to ``peak_ceiling_db`` (:func:`_to_loudness`), else the peak set to the
    ceiling (``normalise_peak``), else a gain that keeps the peak under it. The ceiling is in dBFS
    (sample peak), or with ``true_peak`` in dBTP (:func:`dmaster.limiter.peak_envelope`).

    Without a loudness target the whole track is turned down rather than limited: the restored level
    is an estimate, and a restoration that peaks over the ceiling is more often too loud than too
    peaky (on 36 validation excerpts the limiter instead of the gain raised the MR-STFT from 0.994
    to 1.070)."""
    report: dict[str, Any] = {"peak_ceiling_db": peak_ceiling_db, "true_peak": true_peak}
    if target_lufs is not None:
        loudness = integrated_loudness(audio, sample_rate)
        if not math.isfinite(loudness):  # below BS.1770's absolute gate: measure it at the ceiling
            audio = audio * (10 ** (peak_ceiling_db / 20) / float(peak_envelope(audio[None], true_peak).max()))
            loudness = integrated_loudness(audio, sample_rate)
        if not math.isfinite(loudness):
            report["target_missed"] = (f"the loudness cannot be measured: even at the peak ceiling every block is "
                                       f"below BS.1770's absolute gate ({ABSOLUTE_GATE_LUFS:g} LUFS)")
            return audio, report
        audio, reached, limiting_db = _to_loudness(audio, sample_rate, loudness, target_lufs, peak_ceiling_db,
                                                   true_peak)
        report.update(loudness_before_lufs=round(loudness, 2), target_lufs=target_lufs, loudness_lufs=round(reached, 2))
        if limiting_db < 0:
            report["peak_limiting_db"] = round(limiting_db, 2)
        return audio, report
    peak = float(peak_envelope(audio[None], true_peak).max())
    ceiling = 10 ** (peak_ceiling_db / 20)
    if normalise_peak and peak > 0:
        audio = audio * (ceiling / peak)
        report["peak_normalisation_db"] = round(20 * math.log10(ceiling / peak), 2)
    elif peak > ceiling:
        audio = audio * (ceiling / peak)
        report["peak_reduction_db"] = round(20 * math.log10(ceiling / peak), 2)
    return audio, report


def check_settings(target_lufs: float | None, peak_ceiling_db: float, amount: float = 1.0,
                   normalise_peak: bool = False) -> None:
    """Raise ``ValueError`` naming the first of :func:`master`'s settings that is not a number in its
    range, or that contradicts another."""
    for name, value in (("target_lufs", target_lufs), ("peak_ceiling_db", peak_ceiling_db), ("amount", amount)):
        if not (value is None and name == "target_lufs") and (
                isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))):
            raise ValueError(f"{name} must be a number, got {value!r}")
    if normalise_peak and target_lufs is not None:
        raise ValueError("normalise_peak and target_lufs each set the output level; choose one")
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount must lie in [0, 1], got {amount}")
    if target_lufs is not None and not -70.0 <= target_lufs <= 0.0:
        raise ValueError(f"target_lufs must lie in [-70, 0] LUFS, got {target_lufs}")
    if not -60.0 <= peak_ceiling_db <= 0.0:
        raise ValueError(f"peak_ceiling_db must lie in [-60, 0] dBFS, got {peak_ceiling_db}")


def check_keep(keep: Iterable[str], model: nn.Module) -> tuple[str, ...]:
    """``keep`` (one effect's name or several) as a tuple after checking it names effects of the chain and
    that ``model`` estimates them."""
    keep = (keep,) if isinstance(keep, str) else tuple(keep)
    _check_effect_names(keep, "keep")
    if keep and not isinstance(model, ParamEstimator):
        raise ValueError("keep needs the parameter model: the U-Net restores everything at once")
    return keep


def read_report(report: Mapping[str, Any] | str | Path, model: nn.Module) -> tuple[ChainParams, dict[str, float],
                                                                                  tuple[Tensor, float] | None]:
    """The estimate, inverse strengths and residual correction (band dB (40,), level dB; ``None`` if
    none) that a :func:`master` report records — ``MasterResult.params`` or the path of its JSON — to
    apply them again with the parameter ``model``'s chain. ``ValueError`` says what is missing or out
    of range."""
    if not isinstance(model, ParamEstimator):
        raise ValueError("params needs the parameter model's chain; the U-Net has no parameters")
    source = "report"
    if isinstance(report, (str, Path)):
        source = str(report)
        try:
            report = json.loads(Path(report).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read the report {source}: {error}") from error
    if not isinstance(report, Mapping) or "effects" not in report:
        raise ValueError(f"{source} has no 'effects': it is not the report of the parameter model's master()")
    try:
        effects = report["effects"]
        items = [{name: {"present": effect["presence_probability"],
                         **{key: value["value"] for key, value in effect["estimated"].items()}}
                  for name, effect in effects.items()}]
        strength = {name: float(effect.get("inverse_strength", 1.0)) for name, effect in effects.items()}
        residual = report.get("residual_correction")
        correction = None if residual is None else (
            torch.tensor(list(residual["bands_db"].values()), dtype=torch.float64), float(residual["level_db"]))
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{source}: malformed effects or residual correction ({error!r})") from error
    if correction is not None and (correction[0].shape != (len(band_centres_hz()),)
                                   or not all_finite(correction[0]) or not math.isfinite(correction[1])):
        raise ValueError(f"{source}: residual_correction must hold {len(band_centres_hz())} finite band values "
                         "and a finite level")
    if correction is not None and float(correction[0].abs().max()) > MAX_BAND_DB:
        raise ValueError(f"{source}: residual_correction bands_db must lie in [-{MAX_BAND_DB:g}, {MAX_BAND_DB:g}] dB, "
                         f"got {float(correction[0].abs().max()):g}")
    if correction is not None and abs(correction[1]) > MAX_LEVEL_DB:
        raise ValueError(f"{source}: residual_correction level_db must lie in [-{MAX_LEVEL_DB:g}, {MAX_LEVEL_DB:g}] "
                         f"dB, got {correction[1]:g}")
    try:
        params = model.chain.from_json(items)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error
    return params, _checked_strength(strength, source), correction


def master(audio: Audio, sample_rate: int, *, model: ModelChoice = None, target_lufs: float | None = None,
           peak_ceiling_db: float = -1.0, normalise_peak: bool = False, correct_residual: bool = True,
           keep: Iterable[str] = (), params: Mapping[str, Any] | str | Path | None = None,
           true_peak: bool = False, amount: float = 1.0,
           progress: Callable[[str], None] | None = None) -> MasterResult:
    """Master ``audio`` — numpy or torch, ``(channels, samples)`` or ``(samples,)`` — at ``sample_rate`` Hz.

    ``model``: ``None`` (the shipped parameter model), ``"unet"`` (the shipped baseline), a
    checkpoint path or a loaded model. ``target_lufs``: integrated loudness (LUFS) to normalise
    to, the peaks limited to the ceiling (a lookahead limiter, :mod:`dmaster.limiter`; the report
    gives the loudness reached and the limiter's largest gain reduction). Without it the restored
    level is kept, or, with ``normalise_peak``, the output's peak is set to ``peak_ceiling_db`` dBFS.
    The peak never exceeds the ceiling; with ``true_peak`` the ceiling is in dBTP, the peaks between
    the samples included (4× oversampled, ITU-R BS.1770-4), as streaming services and lossy codecs
    want it. ``correct_residual``: apply the model's residual correction (tonal balance and level;
    :mod:`dmaster.residual`), read from next to its checkpoint (a loaded module has none). The model's
    per-effect inverse strengths, when its checkpoint has them next to it, scale each effect's inverse (:func:`resolve_strength`). ``keep``:
    effects to leave in, e.g. ``("reverb",)`` when the room is wanted (their inverses are not applied;
    the estimate is still reported). ``params``: a report of an earlier ``master()`` (its ``.params``
    or the path of its JSON) whose estimate, strengths and residual correction are applied instead of
    estimating anew — the same correction for another mix of a song, or an estimate edited by hand.
    ``amount`` (0–1): how much of the correction to apply — every inverse's weight and the residual
    correction (dB) scaled by it (the U-Net's output mixed with the input); 0 leaves the audio as it is
    but for the level stage. ``progress``: called with the name of each stage as it starts.
    """
    progress = progress or (lambda stage: None)
    if not (isinstance(sample_rate, (int, np.integer)) and MIN_RATE <= sample_rate <= MAX_RATE):
        raise ValueError(f"sample_rate must be an integer number of Hz in [{MIN_RATE}, {MAX_RATE}], "
                         f"got {sample_rate!r}")
    check_settings(target_lufs, peak_ceiling_db, amount, normalise_peak)
    tensor, mono = _as_channels_first(audio)
    if float(tensor.abs().max()) == 0.0:
        raise ValueError("audio is digital silence; there is nothing to master")
    network = resolve_model(model)
    keep = check_keep(keep, network)
    samples = tensor.shape[-1]
    progress("estimating and restoring" if params is None else "restoring")
    working = _resample(tensor, int(sample_rate), network.sample_rate,
                        resampled_length(samples, int(sample_rate), network.sample_rate))
    if params is None:
        strength = {**resolve_strength(model), **dict.fromkeys(keep, 0.0)}
        if isinstance(network, ParamEstimator):
            strength = scaled_strength(network.chain, strength, amount)
        restored, estimate, residual = restore(network, working, resolve_residual(model) if correct_residual else None,
                                               strength, amount)
    else:
        estimate, strength, residual = read_report(params, network)
        strength = scaled_strength(network.chain, {**strength, **dict.fromkeys(keep, 0.0)}, amount)
        residual = _scaled(residual, amount) if correct_residual and residual is not None else None
        restored = apply_estimate(network.chain, working, estimate, strength, residual)
    report = {"model": "unet"} if estimate is None else {"model": "param",
                                                          "effects": _describe(network.chain, estimate, strength)}
    if params is not None:
        report["estimate_given"] = True
    if keep:
        report["kept"] = list(keep)
    report["amount"] = amount
    if residual is not None:
        report["residual_correction"] = _describe_residual(*residual)
    restored = _resample(restored, network.sample_rate, int(sample_rate), samples)
    progress("setting the level")
    restored, loudness = finish(restored, int(sample_rate), target_lufs, peak_ceiling_db, normalise_peak, true_peak)
    report["output"] = loudness
    return MasterResult(_like_input(restored, audio, mono), int(sample_rate), report)
