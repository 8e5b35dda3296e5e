"""Feed-forward compressor with a soft knee and real attack and release ballistics.

The level detector is the instantaneous power averaged over channels (so the
gain is linked across channels); the static curve has threshold, ratio and a
quadratic soft knee (Giannoulis, Massberg & Reiss 2012); the gain is smoothed
with separate attack and release coefficients by ``torchcomp``'s
``compressor_core`` (exact ballistics, exact gradients); makeup gain follows.

The inverse is fixed-point decompression, ``x_{k+1} = y / g(x_k)``, over-relaxed
in the log domain: ``log x_{k+1} = log x_k + ω·(log(y / g(x_k)) − log x_k)`` with
``ω = 2r / (r + 1)`` for ratio ``r``, which balances the error factor below the
threshold (``1 − ω``) against the one above it (``1 − ω / r``), so that fewer steps
are needed than with plain iteration. A few steps are unrolled, starting from ``y``
without makeup; each is one pass of the gain computer, so the inverse stays
differentiable. When no gradient is needed, the same passes run on the
channel-mean power computed once: for float32 on the CPU all of them in one
numba kernel (:mod:`._compressor_cpu`), elsewhere as in-place torch ops.

>>> quiet_then_loud = torch.cat([torch.full((1, 1, 4410), 0.01), torch.full((1, 1, 4410), 0.5)], -1)
>>> y = forward(quiet_then_loud, 44100, threshold_db=-20.0, ratio=4.0, attack_ms=1.0, release_ms=50.0)
>>> round(float(y[0, 0, 100]), 4), round(float(y[0, 0, -1]), 2)   # quiet: untouched; loud: turned down
(0.01, 0.15)
>>> restored = inverse(y, 44100, threshold_db=-20.0, ratio=4.0, attack_ms=1.0, release_ms=50.0)
>>> round(float(restored[0, 0, -1]), 2)
0.5
"""

from __future__ import annotations

import math

import torch
from torchcomp import compressor_core

from . import _compressor_cpu
from .spec import EffectRole, EffectSpec, Param, Prior, db_to_amplitude, needs_grad

Tensor = torch.Tensor

__all__ = ["DEFAULT_INVERSE_STEPS", "MAX_INPUT_DB", "ROLE", "SPEC", "correction_text", "forward", "gain", "inverse",
           "static_gain_db", "time_to_coefficient"]

SPEC = EffectSpec(
    name="compressor",
    params=(
        Param("threshold_db", "dBFS", -60.0, 0.0, "linear", Prior("uniform", -30.0, -8.0), 0.0,
              "level above which the gain is reduced"),
        Param("ratio", ":1", 1.0, 20.0, "log", Prior("uniform", 1.5, 8.0), 1.0,
              "input dB above threshold per output dB"),
        Param("attack_ms", "ms", 0.1, 100.0, "log", Prior("uniform", 1.0, 40.0), 10.0,
              "time for the gain to fall (10 % → 90 %)"),
        Param("release_ms", "ms", 10.0, 2000.0, "log", Prior("uniform", 40.0, 600.0), 100.0,
              "time for the gain to recover (10 % → 90 %)"),
        Param("knee_db", "dB", 0.0, 24.0, "linear", Prior("uniform", 0.0, 12.0), 6.0,
              "width of the soft knee around the threshold"),
        Param("makeup_db", "dB", -12.0, 24.0, "linear", Prior("uniform", 0.0, 9.0), 0.0,
              "gain added after compression"),
    ),
    presence_probability=0.5,
    description="dynamic range compression",
)
ROLE = EffectRole(position=50, linear="none", reference="tone_and_dynamics", since=1, iterative_inverse=True,
                  forward_text="soft knee, channel-linked, attack *and* release ballistics (torchcomp's exact-gradient "
                               "core)",
                  inverse_text="over-relaxed fixed-point decompression, 8 unrolled passes: approximate; the boost "
                               "capped at what the curve takes off a +30 dBFS level, so settings that cannot explain "
                               "the audio give finite output and gradients")
"""Its place in the chain, reference mode and the docs (:class:`~dmaster.effects.spec.EffectRole`)."""
DEFAULT_INVERSE_STEPS = 8
MAX_INPUT_DB = 30.0
"""The loudest detector level (dBFS) :func:`inverse` restores: its boost is capped at the gain the curve takes off
this level. The chain's gain lifts a master peaking at 0 dBFS by at most 24 dB before the compressor; settings
that would need more to explain the audio (a low threshold with a high ratio on loud audio) would otherwise
decompress it by hundreds of dB, to infinity in float32."""
_LEVEL_FLOOR = _compressor_cpu.LEVEL_FLOOR  # power floor of the level detector (−100 dB)


def correction_text(estimated: dict[str, float]) -> str:
    """What undoing ``estimated`` (:data:`SPEC`'s parameters, physical units) does, in the report's words.

    >>> correction_text({"threshold_db": -24.0, "ratio": 4.0, "attack_ms": 5.0, "release_ms": 120.0,
    ...                  "knee_db": 6.0, "makeup_db": 3.0})
    'decompressed: threshold -24.0 dBFS, ratio 4.0:1, attack 5.0 ms, release 120 ms, makeup -3.0 dB'
    """
    return (f"decompressed: threshold {estimated['threshold_db']:.1f} dBFS, ratio {estimated['ratio']:.1f}:1, "
            f"attack {estimated['attack_ms']:.1f} ms, release {estimated['release_ms']:.0f} ms, "
            f"makeup {-estimated['makeup_db']:+.1f} dB")


def time_to_coefficient(time_ms: Tensor, sample_rate: float) -> Tensor:
    """One-pole smoothing coefficient whose 10 %–90 % rise takes ``time_ms`` (ms, any shape) at
    ``sample_rate`` Hz; same shape, clamped to ``[1e-9, 1 − 1e-6]``."""
    coefficient = 1.0 - torch.exp(-math.log(9.0) * 1000.0 / (time_ms * sample_rate))
    return coefficient.clamp(1e-9, 1.0 - 1e-6)


def static_gain_db(level_db: Tensor, threshold_db: Tensor, ratio: Tensor, knee_db: Tensor) -> Tensor:
    """Gain in dB (≤ 0) of the soft-knee curve: the level over the threshold, ``o``, maps to
    ``(1/r − 1)·(u² / 2k + max(o − k/2, 0))`` with ``u = clamp(o + k/2, 0, k)`` (0 below the knee,
    quadratic inside it, a straight line of slope ``1/r − 1`` above it).

    Args:
        level_db: ``(batch, samples)`` detector level, dBFS.
        threshold_db: ``(batch,)`` dBFS.
        ratio: ``(batch,)`` ≥ 1.
        knee_db: ``(batch,)`` width of the knee, dB.

    Returns:
        ``(batch, samples)`` dB.
    """
    threshold_db, ratio, knee_db = (p[:, None] for p in (threshold_db, ratio, knee_db))
    over = level_db - threshold_db
    half_knee = knee_db / 2
    into_knee = (over + half_knee).clamp_min(0.0).minimum(knee_db)
    return (1.0 / ratio - 1.0) * (into_knee.square() / (2.0 * knee_db.clamp_min(1e-6))
                                  + (over - half_knee).clamp_min(0.0))


def gain(x: Tensor, sample_rate: float, threshold_db: Tensor, ratio: Tensor, attack_ms: Tensor,
         release_ms: Tensor, knee_db: Tensor) -> Tensor:
    """The smoothed linear gain the compressor applies to ``x`` (without makeup): the channel-mean
    power's level through :func:`static_gain_db`, smoothed with the attack and release ballistics.

    Args:
        x: ``(batch, channels, samples)`` float audio.
        sample_rate: Hz.
        threshold_db, ratio, attack_ms, release_ms, knee_db: ``(batch,)`` tensors in :data:`SPEC`'s units.

    Returns:
        ``(batch, 1, samples)`` in ``(0, 1]``, shared by the channels.
    """
    level_db = 10.0 * torch.log10(x.square().mean(1) + _LEVEL_FLOOR)
    target = db_to_amplitude(static_gain_db(level_db, threshold_db, ratio, knee_db))
    initial = torch.ones_like(target[:, 0])
    smoothed = compressor_core(target, initial, time_to_coefficient(attack_ms, sample_rate),
                               time_to_coefficient(release_ms, sample_rate))
    return smoothed[:, None, :]


KNEE_DB, MAKEUP_DB = 6.0, 0.0
"""The knee width and makeup gain (dB) of :func:`forward` and :func:`inverse` where not given."""


def _prepared(audio: Tensor, params: dict[str, Tensor | float]) -> dict[str, Tensor]:
    """:data:`SPEC`'s parameters checked and made tensors; the knee and makeup default to :data:`KNEE_DB` and
    :data:`MAKEUP_DB`, the others are required."""
    return SPEC.prepare(audio, {"knee_db": KNEE_DB, "makeup_db": MAKEUP_DB, **params})


def forward(x: Tensor, sample_rate: float, **params: Tensor | float) -> Tensor:
    """Compress audio.

    Args:
        x: ``(batch, channels, samples)`` float audio.
        sample_rate: Hz.
        **params: each ``(batch,)`` or a scalar: ``threshold_db`` (dBFS above which the gain is reduced),
            ``ratio`` (input dB above the threshold per output dB, ≥ 1), ``attack_ms`` and ``release_ms`` (the
            time for the gain to fall and to recover, 10 % → 90 %, ms), ``knee_db`` (the soft knee's width
            around the threshold, dB; default :data:`KNEE_DB`), ``makeup_db`` (gain added after compression, dB;
            default :data:`MAKEUP_DB`).

    Returns:
        The compressed audio, same shape and dtype.
    """
    p = _prepared(x, params)
    makeup = db_to_amplitude(p.pop("makeup_db"))[:, None, None]
    return x * gain(x, sample_rate, **p) * makeup


def inverse(y: Tensor, sample_rate: float, steps: int = DEFAULT_INVERSE_STEPS, **params: Tensor | float) -> Tensor:
    """Decompress ``y`` by ``steps`` over-relaxed fixed-point iterations ``x ← y / g(x)`` (approximate).

    Args:
        y: ``(batch, channels, samples)`` float audio.
        sample_rate: Hz.
        steps: fixed-point passes, at least 1.
        **params: as for :func:`forward`.

    Returns:
        The decompressed audio, same shape and dtype, its boost capped at :data:`MAX_INPUT_DB`'s gain reduction
        (always finite); differentiable when a gradient is needed.
    """
    p = _prepared(y, params)
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    target = y / db_to_amplitude(p.pop("makeup_db"))[:, None, None]
    relaxation = (2 * p["ratio"] / (p["ratio"] + 1))[:, None, None]
    loudest = torch.full_like(p["threshold_db"], MAX_INPUT_DB)[:, None]
    cap = (-static_gain_db(loudest, p["threshold_db"], p["ratio"], p["knee_db"]) * (math.log(10.0) / 20.0))[:, :, None]
    if not needs_grad(y, *p.values()):
        fused = target.device.type == "cpu" and target.dtype == torch.float32
        passes = _log_boost_fused if fused else _log_boost_in_place
        return target * torch.exp(passes(target, sample_rate, relaxation[:, 0], steps, **p).minimum(cap))
    log_boost = torch.zeros_like(target[:, :1])  # log(x / target), shared by the channels
    for _ in range(steps):
        log_gain = torch.log(gain(target * torch.exp(log_boost), sample_rate, **p))
        log_boost = ((1 - relaxation) * log_boost - relaxation * log_gain).minimum(cap)
    return target * torch.exp(log_boost)


def _pass_constants(sample_rate: float, threshold_db: Tensor, ratio: Tensor, attack_ms: Tensor,
                    release_ms: Tensor, knee_db: Tensor) -> tuple[Tensor, ...]:
    """Per-item constants ``(batch,)`` of an inverse pass without autograd: knee start (dBFS), knee width
    (dB), ``1 / 2k`` (1/dB), log gain per dB over the curve, attack and release coefficients."""
    return (threshold_db - knee_db / 2, knee_db, 1.0 / (2.0 * knee_db.clamp_min(1e-6)),
            (1.0 / ratio - 1.0) * (math.log(10.0) / 20.0),
            time_to_coefficient(attack_ms, sample_rate), time_to_coefficient(release_ms, sample_rate))


def _log_boost_in_place(target: Tensor, sample_rate: float, relaxation: Tensor, steps: int,
                        **params: Tensor) -> Tensor:
    """:func:`inverse`'s ``log(x / target)`` ``(batch, 1, samples)`` without autograd, ``relaxation``
    ``(batch, 1)``: the same passes of :func:`gain`, each sample-wise step in place, with the level
    detector's power ``mean(x²) = mean(target²)·e^{2·log_boost}`` from ``target``'s, computed once.
    Any device and dtype; :func:`_log_boost_fused` is the fast path for float32 on the CPU."""
    log_power = target.square().mean(1).log_()  # (batch, samples); −inf where silent
    *curve, attack, release = _pass_constants(sample_rate, **params)
    knee_start, knee, curvature, slope = (c[:, None] for c in curve)
    initial = torch.ones_like(log_power[:, 0])
    log_boost = torch.zeros_like(log_power)
    level_db, into_knee = torch.empty_like(log_power), torch.empty_like(log_power)
    for _ in range(steps):
        torch.add(log_power, log_boost, alpha=2.0, out=level_db).exp_().add_(_LEVEL_FLOOR).log10_().mul_(10.0)
        torch.minimum(torch.sub(level_db, knee_start, out=into_knee).clamp_min_(0.0), knee, out=into_knee)
        over_knee = level_db.sub_(knee_start + knee).clamp_min_(0.0)
        target_gain = into_knee.square_().mul_(curvature).add_(over_knee).mul_(slope).exp_()
        log_gain = compressor_core(target_gain, initial, attack, release).log_()
        log_boost.mul_(1.0 - relaxation).sub_(log_gain.mul_(relaxation))
    return log_boost[:, None]


def _log_boost_fused(target: Tensor, sample_rate: float, relaxation: Tensor, steps: int, **params: Tensor) -> Tensor:
    """:func:`_log_boost_in_place` for float32 tensors on the CPU, all passes in one numba kernel,
    :func:`._compressor_cpu.log_boost` (which has its own copy of the level detector and static curve)."""
    log_power = target.square().mean(1).log_()
    log_boost = torch.zeros_like(log_power)
    constants = torch.stack([c.to(torch.float32) for c in (*_pass_constants(sample_rate, **params), relaxation[:, 0])])
    _compressor_cpu.log_boost(log_power.numpy(), constants.contiguous().numpy(), steps, log_boost.numpy())
    return log_boost[:, None]
