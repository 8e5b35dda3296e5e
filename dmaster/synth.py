"""A small deterministic music synthesiser: test signals and the offline demo clip.

Bass, chords of harmonic tones with attack/decay envelopes, kick and hi-hat,
mixed to a mastered-sounding level (peak −1 dBFS). Not art, but it has what
the effects act on: transients, sustained tones, a full spectrum and rhythm.
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def _note(t: Tensor, frequency: float, start: float, length: float, harmonics: int, decay: float) -> Tensor:
    local = t - start
    inside = (local >= 0) & (local < length)
    envelope = (1 - torch.exp(-local.clamp_min(0) / 0.005)) * torch.exp(-local.clamp_min(0) / decay) * inside
    tone = sum(torch.sin(2 * math.pi * frequency * k * local) / k**1.3 for k in range(1, harmonics + 1))
    return envelope * tone


def music_like(seconds: float = 4.0, sample_rate: int = 44100, channels: int = 2, seed: int = 0,
               tempo_bpm: float = 120.0) -> Tensor:
    """A ``(channels, samples)`` float32 clip of synthetic music, peak −1 dBFS."""
    generator = torch.Generator().manual_seed(seed)
    samples = int(seconds * sample_rate)
    t = torch.arange(samples, dtype=torch.float64) / sample_rate
    beat = 60.0 / tempo_bpm
    roots = [110.0 * 2 ** (int(s) / 12) for s in torch.randint(0, 12, (8,), generator=generator)]
    out = torch.zeros(channels, samples, dtype=torch.float64)
    for bar_start in torch.arange(0, seconds, 4 * beat).tolist():
        root = roots[int(bar_start / (4 * beat)) % len(roots)]
        chord = sum(_note(t, root * 2 * ratio, bar_start, 4 * beat, 6, 1.5) for ratio in (1, 1.26, 1.5))
        bass = sum(_note(t, root / 2, bar_start + i * beat, beat, 4, 0.25) for i in range(4))
        for c in range(channels):
            pan = 0.5 + 0.3 * math.sin(c * math.pi / max(channels - 1, 1) - math.pi / 2)
            out[c] += 0.12 * pan * chord + 0.3 * bass
    noise = torch.randn(channels, samples, generator=generator, dtype=torch.float64)
    for hit in torch.arange(0, seconds, beat / 2).tolist():
        local = t - hit
        inside = local >= 0
        kick = torch.sin(2 * math.pi * 55 * local * (1 + 2 * torch.exp(-local.clamp_min(0) / 0.03)))
        out += (0.5 * kick * torch.exp(-local.clamp_min(0) / 0.12) * inside) * (round(hit / beat, 3) % 1 == 0)
        out += 0.08 * noise * torch.exp(-local.clamp_min(0) / 0.02) * inside
    return (out * (10 ** (-1 / 20) / out.abs().max())).float()
