"""Audio files in and out; atomic file writes and durable JSON-lines appends.

:func:`read_audio` decodes a file as it is (its rate and channels), with the checks below;
``dmaster master`` uses it, so that every output keeps its input's rate and layout.

Loading policy (:func:`load_audio`): any format libsndfile reads (WAV, FLAC,
OGG, MP3, ...) is decoded to float32, resampled with soxr (``"HQ"``) to the
working rate and returned as **stereo** ``(2, samples)``:

* mono is duplicated to both channels;
* two channels are kept as they are;
* more than two channels are folded down layout-agnostically: left is the mean
  of the even-indexed channels (0, 2, 4, ...), right the mean of the odd-indexed
  ones (1, 3, 5, ...). For two-channel pairs (L R L R ...) this is exact; it is
  not the ITU-R BS.775 5.1 downmix, which needs the (format-specific) layout.

Files that cannot be used raise :class:`AudioError` naming the file:
unreadable or corrupt, empty (0 frames), containing NaN or inf, or silent
(peak below −90 dBFS).

Writing policy (:func:`save_audio`): 32-bit float WAV by default. The chain's output is
float32 and degraded audio may exceed ±1 (gain, EQ boosts, makeup gain); float
WAV stores it bit for bit, without clipping, and reads back to the same tensor.
It is written by ``scipy.io.wavfile`` rather than libsndfile, whose float WAVs
carry a PEAK chunk with a time stamp: equal audio gives byte-identical files.
For delivery, :data:`OUTPUT_FORMATS` also has 24- and 16-bit WAV and 24-bit FLAC:
quantised here with TPDF dither (±1 LSB, seeded: equal audio, equal files) and
clipped to the integer range, then written by libsndfile.
Every write goes to a temporary file in the destination folder (``.NAME.PID-RANDOM.tmp``),
is flushed to disk and then renamed over the final name with :func:`os.replace`,
so a crash or kill at any moment leaves either the complete file or none.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np
import soundfile as sf
import soxr
import torch
from scipy.io import wavfile

Tensor = torch.Tensor

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
"""File name endings (compared case-insensitively) that count as audio inputs."""
SILENCE_DBFS = -90.0
"""Inputs whose peak is below this level are rejected as silent."""
RESAMPLER_QUALITY = "HQ"
TEMPORARY_SUFFIX = ".tmp"


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the reason."""


class ShortAudioWarning(UserWarning):
    """A file decoded to fewer frames than its header declares (truncated or damaged)."""


# -- loading ------------------------------------------------------------------------------------


def fold_to_stereo(frames: np.ndarray) -> np.ndarray:
    """``(frames, channels)`` → ``(frames, 2)``: mono duplicated, > 2 channels folded
    down (left = mean of even-indexed channels, right = mean of odd-indexed ones)."""
    channels = frames.shape[1]
    if channels == 1:
        return np.repeat(frames, 2, axis=1)
    if channels == 2:
        return frames
    return np.stack([frames[:, 0::2].mean(axis=1), frames[:, 1::2].mean(axis=1)], axis=1)


def _read(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        with sf.SoundFile(path) as file:
            rate, declared = file.samplerate, _declared_frames(file)
            frames = -1 if max_seconds is None else math.ceil(max_seconds * rate)
            data = file.read(frames, dtype="float32", always_2d=True)
    except (sf.SoundFileError, OSError, RuntimeError) as error:
        raise AudioError(f"{path}: cannot decode: not a readable audio file or a corrupt one "
                         f"(libsndfile says: {error})") from None
    expected = declared if frames < 0 else min(frames, declared)
    if 0 < data.shape[0] < expected:
        warnings.warn(f"{path}: decoded {data.shape[0]} of the {expected} frames its header declares "
                      f"({(expected - data.shape[0]) / rate:.2f} s missing): truncated or damaged?",
                      ShortAudioWarning, stacklevel=3)
    return data, rate


def _declared_frames(file: sf.SoundFile) -> int:
    """Frames the file's header declares. libsndfile counts a truncated WAV's frames from the file size and only
    logs that the header's data size "should be" smaller; that log is read here."""
    found = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", file.extra_info, re.MULTILINE)
    if found is None or int(found[2]) == 0:
        return file.frames
    return max(file.frames, round(file.frames * int(found[1]) / int(found[2])))


def read_audio(path: str | os.PathLike, max_seconds: float | None = None) -> tuple[Tensor, int]:
    """Decode ``path`` as it is: ``(channels, samples)`` float32 at its own rate, and the rate.

    ``max_seconds`` (> 0) keeps only the beginning of long files (and decodes only that).
    Raises :class:`AudioError` for unreadable, empty, non-finite or silent files.
    """
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive (or None for the whole file), got {max_seconds}")
    path = Path(path)
    data, rate = _read(path, max_seconds)
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty (0 audio frames)")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    peak = float(np.abs(data).max())
    if peak < 10 ** (SILENCE_DBFS / 20):
        peak_db = 20 * math.log10(peak) if peak > 0 else -math.inf
        raise AudioError(f"{path}: silent (peak {peak_db:.1f} dBFS is below {SILENCE_DBFS:g} dBFS)")
    return torch.from_numpy(np.ascontiguousarray(data.T)), rate


def load_audio(path: str | os.PathLike, sample_rate: int = 44100, max_seconds: float | None = None) -> Tensor:
    """Decode ``path`` to a stereo float32 tensor ``(2, samples)`` at ``sample_rate`` Hz
    (:func:`read_audio`, then folded to stereo and resampled)."""
    audio, rate = read_audio(path, max_seconds)
    data = audio.numpy().T
    data = data if data.shape[1] <= 2 else fold_to_stereo(data)
    if rate != sample_rate:
        data = soxr.resample(data, rate, sample_rate, quality=RESAMPLER_QUALITY)
    if max_seconds is not None:
        data = data[: round(max_seconds * sample_rate)]
    if data.shape[0] == 0:
        raise AudioError(f"{path}: too short to resample to {sample_rate} Hz")
    return torch.from_numpy(np.ascontiguousarray(fold_to_stereo(data).T))


def audio_frames(path: str | os.PathLike) -> int:
    """Number of frames in an audio file (from its header)."""
    return sf.info(str(path)).frames


def read_window(path: str | os.PathLike, start: int, frames: int) -> Tensor:
    """Frames ``[start, start + frames)`` of a file as ``(channels, frames)`` float32,
    zero-padded past the end; only those frames are decoded. No resampling."""
    with sf.SoundFile(path) as file:
        file.seek(start)
        data = file.read(frames, dtype="float32", always_2d=True)
    window = torch.zeros(data.shape[1], frames)
    window[:, : data.shape[0]] = torch.from_numpy(data.T)
    return window


# -- atomic writing -----------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds it is flushed
    to disk and renamed to ``path``, when it fails (or is interrupted) it is removed."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")
    try:
        yield temporary
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):  # e.g. a read-only folder: the write's own error is the one to see
            temporary.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: str | os.PathLike, older_than_s: float = 600.0) -> list[Path]:
    """Delete temporary files left in ``folder`` by killed writers (older than
    ``older_than_s``, so that live writers elsewhere are not disturbed); returns them."""
    cutoff = time.time() - older_than_s
    stale = [p for p in Path(folder).glob(f".*{TEMPORARY_SUFFIX}") if p.stat().st_mtime < cutoff]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


class OutputFormat(NamedTuple):
    suffix: str
    container: str  # libsndfile's name
    bits: int | None
    """PCM bits; ``None``: 32-bit float."""


OUTPUT_FORMATS: dict[str, OutputFormat] = {
    "wav": OutputFormat(".wav", "WAV", None),
    "wav24": OutputFormat(".wav", "WAV", 24),
    "wav16": OutputFormat(".wav", "WAV", 16),
    "flac": OutputFormat(".flac", "FLAC", 24),
}
"""``save_audio``'s formats: 32-bit float WAV (nothing clips), 24- or 16-bit PCM WAV, 24-bit FLAC."""


def _dithered(data: np.ndarray, bits: int) -> np.ndarray:
    """``data`` (float, full scale ±1) as integers of ``bits`` (int16, or int32 with 24 bits in the top),
    with TPDF dither of ±1 LSB, clipped to the integer range."""
    scale = 2.0 ** (bits - 1)
    noise = np.random.default_rng(0).triangular(-1.0, 0.0, 1.0, data.shape)
    levels = np.clip(np.round(data * scale + noise), -scale, scale - 1)
    return levels.astype(np.int16) if bits == 16 else (levels.astype(np.int32) << (32 - bits))


def to_pcm(data: np.ndarray, dtype: type[np.integer]) -> np.ndarray:
    """Float audio (full scale ±1) as ``int16`` (TPDF-dithered, as :func:`save_audio`'s 16-bit WAV) or
    ``int32`` (rounded) PCM, clipped to the integer range; any shape."""
    if np.dtype(dtype) == np.int16:
        return _dithered(np.asarray(data, np.float64), 16)
    scale = 2.0**31
    return np.clip(np.round(np.asarray(data, np.float64) * scale), -scale, scale - 1).astype(np.int32)


def save_audio(path: str | os.PathLike, audio: Tensor | np.ndarray, sample_rate: int,
               output_format: str = "wav") -> None:
    """Write ``audio`` ``(channels, samples)`` atomically in one of :data:`OUTPUT_FORMATS`: by default a
    32-bit float WAV (values beyond ±1 stored as they are); PCM formats are dithered and clip at ±1."""
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format must be one of {sorted(OUTPUT_FORMATS)}, got {output_format!r}")
    data = audio.detach().cpu().numpy() if isinstance(audio, Tensor) else np.asarray(audio)
    if data.ndim != 2 or data.shape[1] == 0:
        raise ValueError(f"{path}: audio must be shaped (channels, samples), got {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: refusing to write audio that contains NaN or inf")
    chosen = OUTPUT_FORMATS[output_format]
    with atomic_path(path) as temporary:
        if chosen.bits is None:
            wavfile.write(temporary, sample_rate, np.ascontiguousarray(data.T, dtype=np.float32))
        else:
            sf.write(temporary, _dithered(data.T.astype(np.float64), chosen.bits), sample_rate,
                     format=chosen.container, subtype=f"PCM_{chosen.bits}")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, value: Any) -> None:
    """Write ``value`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def append_jsonl(path: str | os.PathLike, record: Any) -> None:
    """Append ``record`` as one JSON line with a single ``write`` and flush it to disk.

    Concurrent writers on a local file system never interleave lines (``O_APPEND``). If
    the file ends in a line torn by a crash, a newline is written first so that the
    new record stays whole; :func:`read_jsonl` skips the torn line.
    """
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(descriptor).st_size
        if size and os.pread(descriptor, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """The records of a JSON-lines file (``[]`` if it does not exist); blank lines are
    ignored and lines that do not parse (torn by a crash) are skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            warnings.warn(f"{path}:{number}: skipping a line that is not valid JSON (torn by a crash?)",
                          stacklevel=2)
    return records
