"""Spectrogram pictures of a pair (original and degraded), annotated with its parameters.

Matplotlib's object API with the Agg canvas is used (no pyplot, no global state,
no display needed), so it is safe in worker threads and on headless machines.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from ..audio import atomic_path
from ..loudness import measure_levels

Tensor = torch.Tensor

STFT_SIZE = 2048
MAX_COLUMNS = 1000
FREQUENCY_ROWS = 256
LOWEST_HZ = 30.0
DYNAMIC_RANGE_DB = 90.0
FREQUENCY_TICKS_HZ = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)


def log_frequency_spectrogram(audio: Tensor, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrogram in dB of the channel mean of ``audio`` ``(channels, samples)``,
    on ``FREQUENCY_ROWS`` log-spaced frequencies from ``LOWEST_HZ`` to Nyquist and at
    most about ``MAX_COLUMNS`` frames (the hop grows with the length; at least 512).

    Returns ``(db (rows, frames), frequencies_hz (rows,))``.
    """
    mono = audio.detach().float().cpu().mean(0)
    if mono.shape[-1] < STFT_SIZE:  # a clip shorter than one frame: zero-padded to it
        mono = torch.nn.functional.pad(mono, (0, STFT_SIZE - mono.shape[-1]))
    hop = max(512, -(-mono.shape[-1] // MAX_COLUMNS))
    spectrum = torch.stft(mono, STFT_SIZE, hop, window=torch.hann_window(STFT_SIZE), return_complex=True)
    db = (10 * torch.log10(spectrum.abs().square() + 1e-12)).numpy()  # (bins, frames)
    frequencies = np.geomspace(LOWEST_HZ, sample_rate / 2, FREQUENCY_ROWS)
    position = frequencies / (sample_rate / STFT_SIZE)
    below = np.minimum(position.astype(int), db.shape[0] - 2)
    weight = (position - below)[:, None]
    return (1 - weight) * db[below] + weight * db[below + 1], frequencies


def wrap_at_semicolons(line: str, width: int = 140) -> list[str]:
    """Break ``line`` after ``"; "`` so that each piece fits ``width`` where it can;
    continuation lines are indented."""
    pieces = line.split("; ")
    lines = [pieces[0]]
    for piece in pieces[1:]:
        if len(lines[-1]) + 2 + len(piece) <= width:
            lines[-1] += "; " + piece
        else:
            lines[-1] += ";"
            lines.append("    " + piece)
    return lines


def save_spectrograms(path: str | os.PathLike, original: Tensor, degraded: Tensor, sample_rate: int,
                      title: str, notes: Sequence[str], labels: tuple[str, str] = ("original", "degraded")) -> None:
    """Write a PNG with the spectrograms of ``original`` and ``degraded`` ``(channels, samples)``
    above each other on one colour scale, ``title`` on top and ``notes`` (lines) below; atomic."""
    (original_db, frequencies), (degraded_db, _) = (log_frequency_spectrogram(a, sample_rate)
                                                    for a in (original, degraded))
    top = max(original_db.max(), degraded_db.max())
    seconds = original.shape[-1] / sample_rate
    wrapped = [w for line in notes for w in wrap_at_semicolons(line)]
    text_inches = 0.16 * len(wrapped) + 0.3
    height = 6.4 + text_inches
    figure = Figure(figsize=(11, height))
    bottom = (text_inches + 0.5) / height
    plot_height = (height - text_inches - 1.0) / height
    axes = [figure.add_axes((0.08, bottom + plot_height * 0.53, 0.8, plot_height * 0.47))]
    axes.append(figure.add_axes((0.08, bottom, 0.8, plot_height * 0.47), sharex=axes[0]))
    for ax, db, label in zip(axes, (original_db, degraded_db), labels):
        image = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=top - DYNAMIC_RANGE_DB,
                          vmax=top, extent=(0, seconds, 0, len(frequencies)), interpolation="nearest")
        ticks = [t for t in FREQUENCY_TICKS_HZ if LOWEST_HZ <= t <= sample_rate / 2]
        ax.set_yticks(np.interp(np.log(ticks), np.log(frequencies), np.arange(len(frequencies))),
                      [f"{t // 1000}k" if t >= 1000 else str(t) for t in ticks])
        ax.set_ylabel(f"{label}\nfrequency (Hz)")
    axes[0].tick_params(labelbottom=False)
    axes[-1].set_xlabel("time (s)")
    figure.colorbar(image, cax=figure.add_axes((0.9, bottom, 0.015, plot_height)), label="power (dB)")
    figure.suptitle(title, y=1 - 0.25 / height)
    figure.text(0.02, (text_inches - 0.1) / height, "\n".join(wrapped), family="monospace", fontsize=8, va="top")
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=80, pil_kwargs={"compress_level": 1})


SPECTRUM_FFT = 8192
SMOOTHING_OCTAVES = 1 / 6
SPECTRUM_POINTS = 240
CORRECTION_AXIS_DB = 6.0
"""The correction's axis spans at least ± this."""
COLOURS = {"input": "tab:grey", "reference": "tab:blue", "mastered": "tab:orange"}


def smoothed_spectrum(audio: Tensor, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Long-term power spectrum of ``audio`` ``(channels, samples)`` (channel mean), in dB, smoothed over
    :data:`SMOOTHING_OCTAVES` and sampled at :data:`SPECTRUM_POINTS` log-spaced frequencies.

    Returns:
        ``(db (points,), frequencies_hz (points,))``.
    """
    mono = audio.detach().float().cpu().mean(0)
    if mono.shape[-1] < SPECTRUM_FFT:
        mono = torch.nn.functional.pad(mono, (0, SPECTRUM_FFT - mono.shape[-1]))
    spectrum = torch.stft(mono, SPECTRUM_FFT, SPECTRUM_FFT // 4, window=torch.hann_window(SPECTRUM_FFT),
                          return_complex=True).abs().square().mean(-1).double().numpy()
    bins = np.fft.rfftfreq(SPECTRUM_FFT, 1.0 / sample_rate)
    frequencies = np.geomspace(LOWEST_HZ, 0.95 * sample_rate / 2, SPECTRUM_POINTS)
    cumulative = np.concatenate([[0.0], np.cumsum(spectrum)])
    half = 2 ** (SMOOTHING_OCTAVES / 2)
    low = np.searchsorted(bins, frequencies / half)
    high = np.maximum(np.searchsorted(bins, frequencies * half), low + 1)
    power = (cumulative[high] - cumulative[low]) / (high - low)
    return 10 * np.log10(power + 1e-20), frequencies


def save_comparison(path: str | os.PathLike, tracks: dict[str, Tensor], sample_rate: int, title: str,
                    notes: Sequence[str] = ()) -> None:
    """Write a PNG comparing tracks by their long-term spectra and levels, atomically.

    Left: the smoothed long-term spectrum of each track, each scaled to 0 dB mean over the band, and the
    correction (``mastered`` minus ``input``, dB, right axis). Right: loudness, loudness range, true peak and
    peak-to-loudness ratio side by side.

    Args:
        path: the PNG.
        tracks: ``{"input": audio, "mastered": audio}`` and optionally ``"reference"``; audio
            ``(channels, samples)`` at ``sample_rate`` Hz.
        sample_rate: Hz.
        title: on top.
        notes: lines of text below.
    """
    spectra = {name: smoothed_spectrum(audio, sample_rate) for name, audio in tracks.items()}
    statistics = {name: measure_levels(audio, sample_rate) for name, audio in tracks.items()}
    wrapped = [w for line in notes for w in wrap_at_semicolons(line, 150)]
    text_inches = 0.16 * len(wrapped) + 0.3
    height = 5.2 + text_inches
    figure = Figure(figsize=(13, height))
    bottom = (text_inches + 0.5) / height
    plot_height = (height - text_inches - 1.1) / height
    axis = figure.add_axes((0.06, bottom, 0.5, plot_height))
    for name, (db, frequencies) in spectra.items():
        axis.semilogx(frequencies, db - db.mean(), label=name, color=COLOURS.get(name), linewidth=1.2)
    axis.set_xlabel("frequency (Hz)")
    axis.set_ylabel("long-term spectrum (dB, mean 0)")
    axis.set_xlim(LOWEST_HZ, sample_rate / 2)
    axis.grid(True, which="both", alpha=0.3)
    if "input" in spectra and "mastered" in spectra:
        correction = spectra["mastered"][0] - spectra["input"][0]
        twin = axis.twinx()
        twin.semilogx(spectra["input"][1], correction - correction.mean(), color="tab:red", linestyle="--",
                      label="correction (mastered − input)")
        reach = max(CORRECTION_AXIS_DB, float(np.abs(correction - correction.mean()).max()) + 1.0)
        twin.set_ylim(-reach, reach)
        twin.set_ylabel("correction (dB, mean 0)", color="tab:red")
        twin.axhline(0.0, color="tab:red", alpha=0.2)
        twin.legend(loc="lower left", fontsize=8)
    axis.legend(loc="upper right", fontsize=8)
    rows = [("loudness (LUFS)", "loudness_lufs"), ("loudness range (LU)", "loudness_range_lu"),
            ("true peak (dBTP)", "true_peak_dbtp"), ("peak to loudness (dB)", "peak_to_loudness_db")]
    table = figure.add_axes((0.78, bottom, 0.21, plot_height))
    table.axis("off")
    cells = [["—" if statistics[name][key] is None else f"{statistics[name][key]:.1f}" for name in tracks]
             for _, key in rows]
    drawn = table.table(cellText=cells, rowLabels=[label for label, _ in rows], colLabels=list(tracks),
                        loc="center", cellLoc="center")
    drawn.scale(1.0, 1.6)
    figure.suptitle(title, y=1 - 0.25 / height)
    figure.text(0.02, (text_inches - 0.1) / height, "\n".join(wrapped), family="monospace", fontsize=8, va="top")
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=80, pil_kwargs={"compress_level": 1})
