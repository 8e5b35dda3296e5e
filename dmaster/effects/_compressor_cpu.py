"""The compressor inverse's fixed-point passes without autograd, fused into one numba kernel (CPU, float32).

:func:`log_boost` is what :func:`dmaster.effects.compressor._log_boost_in_place` computes with torch,
chunk by chunk in the cache instead of ~15 full-size elementwise ops and a ballistics recursion per step.
Each step's recursion is sequential over samples, and step ``k`` at sample ``t`` needs only step
``k − 1`` at ``t``: the signal goes in chunks, step ``k`` working on chunk ``w − k`` in wave ``w``, so
within a wave the steps' recursions are independent and run interleaved (the one-pole's latency would
otherwise dominate), while the sample-wise math before and after each recursion vectorizes over a chunk.
``exp`` and ``log`` are inlined polynomials (Cephes ``expf`` and ``logf``, ≤ 1 ulp) because numba's
calls into libm don't vectorize.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_CHUNK = 1024  # samples per wave and step: the steps' work buffers stay in the L1/L2 cache
LEVEL_FLOOR = 1e-10
"""Power floor of the compressor's level detector (−100 dB); :mod:`.compressor` uses this one too."""
_LEVEL_FLOOR = np.float32(LEVEL_FLOOR)
_DB_PER_NEPER = np.float32(10.0 / math.log(10.0))  # dB of power per unit of natural-log power
_FLOOR_RATIO_MAX = np.float32(1e-2)  # see _level_db
_LN2_HI, _LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)  # ln 2 = hi + lo, hi exact in 9 bits
_LOG2_E = np.float32(1.44269504088896341)
_f32, _i32 = np.float32, np.int32


@intrinsic
def _bits(typingctx, x):
    """The IEEE bits of a float32 as an int32."""
    return types.int32(types.float32), lambda context, builder, sig, args: builder.bitcast(args[0], ir.IntType(32))


@intrinsic
def _from_bits(typingctx, bits):
    """The float32 with the IEEE bits of an int32."""
    return types.float32(types.int32), lambda context, builder, sig, args: builder.bitcast(args[0], ir.FloatType())


@numba.njit(inline="always")
def _exp(x):
    """``e^x`` for float32 ``x`` (clamped to [−87, 88], where ``e^x`` is a normal float32)."""
    x = min(max(x, _f32(-87.0)), _f32(88.0))
    n = np.floor(x * _LOG2_E + _f32(0.5))
    r = x - n * _LN2_HI - n * _LN2_LO  # |r| ≤ ln2 / 2
    p = _f32(1.9875691500e-4)
    p = p * r + _f32(1.3981999507e-3)
    p = p * r + _f32(8.3334519073e-3)
    p = p * r + _f32(4.1665795894e-2)
    p = p * r + _f32(1.6666665459e-1)
    p = p * r + _f32(5.0000001201e-1)
    return (p * (r * r) + r + _f32(1.0)) * _from_bits(_i32((_i32(n) + _i32(127)) << _i32(23)))


@numba.njit(inline="always")
def _log(x):
    """``ln x`` for normal positive float32 ``x``."""
    bits = _bits(x)
    mantissa = _from_bits(_i32((bits & _i32(0x7FFFFF)) | _i32(0x3F800000)))  # in [1, 2)
    exponent = _f32(bits >> _i32(23)) - _f32(127.0)
    high = mantissa > _f32(1.41421356)  # fold to [√½, √2)
    z = (mantissa * _f32(0.5) if high else mantissa) - _f32(1.0)
    exponent = exponent + _f32(1.0) if high else exponent
    p = _f32(7.0376836292e-2)
    p = p * z + _f32(-1.1514610310e-1)
    p = p * z + _f32(1.1676998740e-1)
    p = p * z + _f32(-1.2420140846e-1)
    p = p * z + _f32(1.4249322787e-1)
    p = p * z + _f32(-1.6668057665e-1)
    p = p * z + _f32(2.0000714765e-1)
    p = p * z + _f32(-2.4999993993e-1)
    p = p * z + _f32(3.3333331174e-1)
    z2 = z * z
    return z + (p * z * z2 + exponent * _LN2_LO - _f32(0.5) * z2) + exponent * _LN2_HI


@numba.njit(inline="always")
def _level_db(log_power):
    """``10·log10(e^log_power + floor)``, the level detector's dBFS, where it reaches the knee.

    ``ln(P + floor) = ln P + ln(1 + y)`` with ``y = floor / P``; the series for ``ln(1 + y)`` is
    exact to float32 for ``y ≤ 10⁻²``, i.e. at levels above −80 dBFS, and the knee starts above
    −72 dBFS (threshold ≥ −60, knee ≤ 24). Below, ``y`` is capped, which keeps the level (then an
    underestimate) below the knee, where the gain is 1 whatever the level: one ``exp`` for the two
    transcendentals of the direct formula."""
    y = min(_LEVEL_FLOOR * _exp(-log_power), _FLOOR_RATIO_MAX)
    return _DB_PER_NEPER * (log_power + y * (_f32(1.0) - y * (_f32(0.5) - y * (_f32(1.0 / 3.0) - y * _f32(0.25)))))


def _compile(function):
    """``numba.njit(parallel=True)``, with the machine code cached on disk (next to this file, else in the
    user's cache directory): a process's first call then loads it instead of compiling it, which takes
    far longer. Where neither directory is writable, numba refuses to cache and it compiles at each
    process's first call."""
    try:
        return numba.njit(parallel=True, fastmath=False, cache=True)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(parallel=True, fastmath=False, cache=False)(function)


@_compile
def log_boost(log_power, constants, steps, out):
    """``steps`` relaxed fixed-point passes into ``out`` ``(batch, samples)`` (zeros on entry), from the
    channel-mean power's log ``log_power`` ``(batch, samples)``; ``constants`` float32 ``(7, batch)``, per item:
    knee start (dBFS), knee width (dB), ``1 / 2k`` (1/dB), slope (log gain per dB over the curve), attack and
    release coefficients, relaxation ``ω``. Same formulas as ``_log_boost_in_place``."""
    batch, samples = log_power.shape
    chunks = -(-samples // _CHUNK)
    for b in numba.prange(batch):
        start_db, knee_db, curv, slope_b = constants[0, b], constants[1, b], constants[2, b], constants[3, b]
        attack_b, release_b, relax = constants[4, b], constants[5, b], constants[6, b]
        end_db = start_db + knee_db
        keep_attack, keep_release = 1.0 - np.float64(attack_b), 1.0 - np.float64(release_b)
        keep_boost = _f32(1.0) - relax
        smoothed = np.ones(steps, np.float64)  # each step's gain, carried from chunk to chunk
        work = np.ones((steps, _CHUNK), np.float32)  # each step's target gain, then smoothed gain, on its chunk
        for wave in range(chunks + steps - 1):
            first, stop = max(0, wave - chunks + 1), min(steps, wave + 1)  # the steps with a chunk in this wave
            for k in range(first, stop):
                start = (wave - k) * _CHUNK
                power, boost, target = log_power[b, start:start + _CHUNK], out[b, start:start + _CHUNK], work[k]
                for i in range(power.size):  # compressor.static_gain_db's curve, the test keeps them equal
                    level = _level_db(power[i] + _f32(2.0) * boost[i])
                    into_knee = min(max(level - start_db, _f32(0.0)), knee_db)
                    over_knee = max(level - end_db, _f32(0.0))
                    target[i] = _exp(slope_b * (into_knee * into_knee * curv + over_knee))
                target[power.size:] = _f32(1.0)  # past the end: silence
            for i in range(_CHUNK):  # torchcomp's compressor_kernel (float64 state), for each step
                for k in range(first, stop):
                    f, g = work[k, i], smoothed[k]
                    g = g * keep_attack + attack_b * f if f < g else g * keep_release + release_b * f
                    smoothed[k] = g
                    work[k, i] = g
            for k in range(first, stop):
                start = (wave - k) * _CHUNK
                boost, gain = out[b, start:start + _CHUNK], work[k]
                for i in range(boost.size):
                    boost[i] = keep_boost * boost[i] - relax * _log(gain[i])
