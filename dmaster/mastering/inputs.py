"""What ``master()`` accepts: the user's audio checked and converted to the model's view (float32,
``(channels, samples)``, its sample rate) and back (the input's type, dtype, layout, rate and length),
and the settings checked before any work."""

from __future__ import annotations

import math
from typing import Iterable, Union

import numpy as np
import soxr
import torch
from torch import nn

from ..audio import fold_to_stereo, to_pcm
from ..effects.spec import all_finite
from ..models import ParamEstimator
from .pretrained import check_effect_names

__all__ = ["MAX_CHANNELS", "MAX_RATE", "MIN_RATE", "PEAK_RANGE_DB", "TARGET_RANGE_LUFS", "Audio",
           "as_channels_first", "check_flags", "check_keep", "check_sample_rate", "check_settings", "like_input",
           "resample", "resampled_length", "stereo"]

Tensor = torch.Tensor
Audio = Union[np.ndarray, Tensor]
MIN_RATE, MAX_RATE = 8000, 384000
"""Sample rates (Hz) ``master()`` takes."""
MAX_CHANNELS = 64
PCM_DTYPES = (torch.int16, torch.int32)
PEAK_RANGE_DB = (-200.0, 120.0)
"""Peaks (dBFS) of the audio ``master()`` takes: under the lower bound (below any integer format's least step)
it is silence; over the upper, not audio at full scale ±1 (a scaling gone wrong)."""
TARGET_RANGE_LUFS = (-60.0, 0.0)
"""Loudness targets ``master()`` takes. Below the lower bound BS.1770's gate (−70 LUFS) starts leaving blocks out,
and the loudness no longer follows the gain: targets there cannot be reached reliably."""


def as_channels_first(audio: Audio) -> tuple[Tensor, bool]:
    """``audio`` as a float32 ``(channels, samples)`` tensor on the CPU, and whether it was 1-D.

    Args:
        audio: numpy or torch, ``(samples,)`` or ``(channels, samples)``; any float dtype, or int16/int32
            PCM (full scale 2^15 / 2^31, as soundfile reads it).

    Raises:
        TypeError: for other types and dtypes.
        ValueError: for empty, non-finite or transposed-looking audio, saying which.

    >>> as_channels_first(np.ones(4, np.int16))[0].shape
    torch.Size([1, 4])
    """
    if isinstance(audio, np.ndarray):
        if not (np.issubdtype(audio.dtype, np.floating) or audio.dtype in (np.int16, np.int32)):
            raise TypeError(f"audio must be float (or int16/int32 PCM), got {audio.dtype}")
        writable = audio if audio.flags.writeable else audio.copy()  # torch warns on read-only memory
        dtype = np.float32 if audio.dtype == np.float16 else None
        tensor = torch.from_numpy(np.ascontiguousarray(writable, dtype=dtype))
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
        tensor = tensor.float() / -float(torch.iinfo(tensor.dtype).min)
    tensor = tensor.float()
    if not all_finite(tensor):
        raise ValueError("audio contains NaN or inf")
    peak = float(tensor.abs().max())
    if peak == 0.0:
        raise ValueError("audio is digital silence; there is nothing to master")
    peak_db = 20 * math.log10(peak)
    if peak_db < PEAK_RANGE_DB[0]:
        raise ValueError(f"audio is silent: its peak, {peak_db:.1f} dBFS, is below {PEAK_RANGE_DB[0]:g} dBFS")
    if peak_db > PEAK_RANGE_DB[1]:
        raise ValueError(f"audio peaks at {peak_db:+.1f} dBFS, over {PEAK_RANGE_DB[1]:+g} dBFS: scale it to full scale "
                         "±1 first")
    return tensor, mono


def like_input(audio: Tensor, template: Audio, mono: bool) -> Audio:
    """``audio`` ``(channels, samples)`` float32 in the type, dtype, device and layout of ``template``.

    Args:
        audio: the result.
        template: the user's input.
        mono: whether ``template`` was 1-D (then ``audio`` has one channel).

    int16/int32 PCM is rounded back to integers (int16 with TPDF dither) and clipped to its range.
    """
    out = audio[0] if mono else audio
    if isinstance(template, np.ndarray):
        if template.dtype in (np.int16, np.int32):
            return to_pcm(out.numpy(), template.dtype)
        return out.numpy().astype(template.dtype, copy=False)
    if template.dtype in PCM_DTYPES:
        pcm = to_pcm(out.numpy(), np.int16 if template.dtype == torch.int16 else np.int32)
        return torch.from_numpy(pcm).to(template.device)
    return out.to(device=template.device, dtype=template.dtype)


def resampled_length(samples: int, from_rate: int, to_rate: int) -> int:
    """Samples that ``samples`` at ``from_rate`` Hz become at ``to_rate`` Hz (at least one).

    >>> resampled_length(144031, 48000, 44100)
    132328
    """
    return max(1, round(samples * to_rate / from_rate))


def resample(audio: Tensor, from_rate: int, to_rate: int, length: int) -> Tensor:
    """``audio`` resampled with soxr (HQ) to exactly ``length`` samples.

    Args:
        audio: ``(channels, samples)`` float32.
        from_rate, to_rate: Hz.
        length: output samples. soxr rounds its output length, so a round trip can come back a few
            samples short: the end is then padded with its last value before resampling.
    """
    if from_rate == to_rate:
        return audio[:, :length]
    out = soxr.resample(audio.T.numpy(), from_rate, to_rate, quality="HQ")
    if out.shape[0] < length:
        spare = math.ceil((length - out.shape[0] + 2) * from_rate / to_rate)
        padded = torch.cat([audio, audio[:, -1:].expand(-1, spare)], dim=1)
        out = soxr.resample(padded.T.numpy(), from_rate, to_rate, quality="HQ")
    return torch.from_numpy(out[:length].T.copy())


def stereo(audio: Tensor) -> Tensor:
    """The models' view of ``audio`` ``(channels, samples)``: ``(2, samples)`` by the loader's fold-down
    policy (mono duplicated, more than two channels folded to left/right averages)."""
    return torch.from_numpy(np.ascontiguousarray(fold_to_stereo(audio.T.numpy()).T))


def check_sample_rate(sample_rate: int, name: str = "sample_rate") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``sample_rate`` is an integer number of Hz in
    [MIN_RATE, MAX_RATE]."""
    if not (isinstance(sample_rate, (int, np.integer)) and not isinstance(sample_rate, bool)
            and MIN_RATE <= sample_rate <= MAX_RATE):
        raise ValueError(f"{name} must be an integer number of Hz in [{MIN_RATE}, {MAX_RATE}], got {sample_rate!r}")


def check_flags(**flags: object) -> None:
    """Raise ``ValueError`` naming the first of ``flags`` that is not ``True`` or ``False`` (a string such as
    ``"False"`` would otherwise count as true).

    >>> check_flags(true_peak="no")
    Traceback (most recent call last):
    ...
    ValueError: true_peak must be True or False, got 'no'
    """
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {value!r}")


def check_settings(target_lufs: float | None, peak_ceiling_db: float, amount: float = 1.0,
                   normalise_peak: bool = False) -> None:
    """Raise ``ValueError`` naming the first of ``master()``'s level settings that is not a number in its
    range, or that contradicts another (see :func:`dmaster.master` for their meaning)."""
    for name, value in (("target_lufs", target_lufs), ("peak_ceiling_db", peak_ceiling_db), ("amount", amount)):
        if not (value is None and name == "target_lufs") and (
                isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))):
            raise ValueError(f"{name} must be a number, got {value!r}")
    if normalise_peak and target_lufs is not None:
        raise ValueError("normalise_peak and target_lufs each set the output level; choose one")
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount must lie in [0, 1], got {amount}")
    low, high = TARGET_RANGE_LUFS
    if target_lufs is not None and not low <= target_lufs <= high:
        raise ValueError(f"target_lufs must lie in [{low:g}, {high:g}] LUFS, got {target_lufs}")
    if not -60.0 <= peak_ceiling_db <= 0.0:
        raise ValueError(f"peak_ceiling_db must lie in [-60, 0] dBFS, got {peak_ceiling_db}")


def check_keep(keep: str | Iterable[str], model: nn.Module) -> tuple[str, ...]:
    """``keep`` (one effect's name or several) as a tuple, after checking that it names effects of the
    chain and that ``model`` estimates them (the U-Net does not)."""
    if not isinstance(keep, (str, Iterable)):
        raise ValueError(f"keep must be an effect's name or a list of names, got {keep!r}")
    keep = (keep,) if isinstance(keep, str) else tuple(keep)
    if not all(isinstance(name, str) for name in keep):
        raise ValueError(f"keep must be an effect's name or a list of names, got {keep!r}")
    check_effect_names(keep, "keep")
    if keep and not isinstance(model, ParamEstimator):
        raise ValueError("keep needs the parameter model: the U-Net restores everything at once")
    return keep
