"""Reference mastering: make a mix sound like a reference track, with the chain's parameters to show for it.

The parameter model estimates the chain's settings twice: for the input (what was done to it) and
for the reference (what was done to that). The swap undoes the input's settings and applies the
reference's, through the chain, for the effects that set the tonal balance, the level and the
dynamics (EQ, gain, compressor); the ambience (echo, reverb) only when asked for. Whatever the
music's own tonal balance makes the model hear wrong on both tracks alike cancels in the swap.

Then a refinement of the forward EQ. The swap's correction is robust to the music but timid (the
model's estimates are shrunk towards "nothing to fix"); the difference between the reference's and
the input's long-term spectra (40 log-frequency bands of :mod:`dmaster.residual`, mean level
removed: a statistic that needs no common notes) has the full size but carries every difference in
content between the two, often several dB in a band (an intro against a chorus). The refinement's
target curve is the swap's correction plus :data:`REFERENCE_TRUST` of what the difference adds to it,
that excess limited to :data:`REFERENCE_LIMIT_DB` in every band, so that no difference of content
pulls the curve far (both chosen on cleared music, never on the external check set, by
``recipes/fit_reference_trust.py``). Levenberg–Marquardt steps move the EQ's parameters (normalised,
from the swap's setting) until the correction curve fits it in shape. The EQ is linear and
time-invariant and the compressor is taken as spectrally neutral, so the output's long-term
spectrum is the input's plus the correction (dB): the refinement needs no pass over the audio; the
correction is then applied once to the whole track.

The output level is the caller's (:func:`dmaster.mastering.level.set_level`): the report's
``reference_loudness_lufs`` is the loudness to normalise to, under the peak ceiling.

Controls: ``keep`` names effects of the input that stay as they are (neither undone nor replaced;
``("compressor",)`` keeps the input's dynamics, ``("eq",)`` its tonal balance); ``ambience`` also
swaps echo and reverb (the input's removed, the reference's added); ``amount`` (0–1) scales every
weight of the swap (each inverse and forward effect's presence weight, as ``master()``'s ``amount``
does) — 0 returns the input unchanged.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Union

import numpy as np
import soxr
import torch
from dasp_pytorch.signal import biquad

from .data.audio import read_audio
from .effects import ChainParams, ExtraResponse, echo, eq, gain, reverb
from .effects.spec import all_finite
from .loudness import integrated_loudness
from .mastering.chunks import in_chunks
from .mastering.estimation import aggregate, model_windows, track_estimate
from .mastering.inputs import check_keep
from .mastering.pretrained import resolve_model
from .mastering.restoration import MIN_PRESENCE
from .models import ParamEstimator
from .residual import BAND_EDGES_HZ, STFT_SIZE, band_centres_hz, band_matrix

__all__ = ["TONE_AND_DYNAMICS", "AMBIENCE", "prepare_reference", "match_reference", "spectrum_loss"]

Tensor = torch.Tensor
ReferenceInput = Union[np.ndarray, Tensor, str, Path]

TONE_AND_DYNAMICS = ("eq", "gain", "compressor")
"""Effects swapped by default: tonal balance, level and dynamics."""
AMBIENCE = ("echo", "reverb")
"""Effects swapped only with ``ambience=True``."""
REFINE_STEPS = 6
"""Levenberg–Marquardt steps of the refinement."""
REFINE_DAMPING = 0.01
"""The Levenberg–Marquardt damping the refinement starts from (relative to the normal matrix's diagonal)."""
JACOBIAN_STEP = 1e-6
"""Forward-difference step of the refinement's Jacobian, normalised parameter units."""
PRIOR_WEIGHT = 0.01
"""Weight of the squared distance (normalised units, summed over parameters) from the swap's EQ."""
REFERENCE_TRUST = 0.3
"""The share of the excess (the difference between the reference's and the input's long-term spectra, less the
swap's correction, limited to :data:`REFERENCE_LIMIT_DB`) that the refinement's target curve adds to the swap's."""
REFERENCE_LIMIT_DB = 3.0
"""The most the excess may hold in any band (dB, either sign; mean over :data:`MATCH_RANGE_HZ` removed first)."""
MATCH_RANGE_HZ = (40.0, 16000.0)
"""Bands (by centre) whose levels the refinement compares: the top band holds little but codec cut-offs."""
CURVE_POINTS = 8
"""Frequencies per band at which EQ curves are evaluated (and averaged in power)."""
MIN_REFERENCE_SECONDS = 0.1
LINEAR_FORWARD = (eq, gain, echo, reverb)
_BANDS_BY_KIND = tuple((kind, tuple(band.name for band in eq.BANDS if band.kind == kind))
                       for kind in dict.fromkeys(band.kind for band in eq.BANDS))


def _as_tensor(audio: np.ndarray | Tensor, name: str) -> Tensor:
    """``(channels, samples)`` float32 from a numpy array or tensor ``(samples,)`` or ``(channels, samples)``."""
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(np.ascontiguousarray(audio))
    if not isinstance(audio, Tensor):
        raise TypeError(f"{name} must be a numpy array, a torch tensor or a path, got {type(audio).__name__}")
    if audio.ndim not in (1, 2) or (audio.ndim == 2 and audio.shape[0] > 64):
        raise ValueError(f"{name} must be shaped (samples,) or (channels, samples), got {tuple(audio.shape)}")
    audio = audio.detach().cpu()
    if audio.dtype in (torch.int16, torch.int32):
        audio = audio.float() / float(torch.iinfo(audio.dtype).max)
    if not audio.is_floating_point():
        raise TypeError(f"{name} must be float (or int16/int32 PCM), got {audio.dtype}")
    return (audio[None] if audio.ndim == 1 else audio).float()


def _checked(audio: Tensor, sample_rate: int, name: str) -> float:
    """Raise ``ValueError`` naming ``name`` unless ``audio`` ``(channels, samples)`` is finite, long enough
    and not silent; return its integrated loudness (LUFS)."""
    if not all_finite(audio):
        raise ValueError(f"{name} contains NaN or inf")
    if audio.shape[-1] < MIN_REFERENCE_SECONDS * sample_rate:
        raise ValueError(f"{name} is {audio.shape[-1] / sample_rate:.3f} s long; it needs at least "
                         f"{MIN_REFERENCE_SECONDS:g} s")
    loudness = integrated_loudness(audio, sample_rate) if float(audio.abs().max()) > 0.0 else -math.inf
    if not math.isfinite(loudness):
        raise ValueError(f"{name} is silent (below the loudness gate of -70 LUFS); it cannot be matched")
    return loudness


def prepare_reference(reference: ReferenceInput, sample_rate: int | None, model_rate: int) -> Tensor:
    """The reference as :func:`match_reference` takes it: ``(channels, samples)`` float32 at ``model_rate``.

    Args:
        reference: a numpy array or tensor ``(samples,)`` or ``(channels, samples)``, or the path of an
            audio file (read at its own rate).
        sample_rate: the rate of an array or tensor (Hz); ignored for a path. ``None``: ``model_rate``.
        model_rate: the parameter model's rate (Hz) to resample to.
    """
    if isinstance(reference, (str, Path)):
        reference, sample_rate = read_audio(reference)
    else:
        reference = _as_tensor(reference, "reference")
    sample_rate = model_rate if sample_rate is None else int(sample_rate)
    _checked(reference, sample_rate, "reference")
    if sample_rate != model_rate:
        resampled = soxr.resample(reference.T.numpy(), sample_rate, model_rate, quality="HQ")
        reference = torch.from_numpy(np.ascontiguousarray(resampled.T))
    return reference


def _bin_power(windows: Tensor) -> Tensor:
    """Long-term power spectrum ``(STFT_SIZE // 2 + 1,)`` float64 of ``windows`` ``(n, channels, samples)``:
    channels mixed, Hann-windowed frames of :data:`dmaster.residual.STFT_SIZE` averaged."""
    mono = windows.mean(1).float()
    if mono.shape[-1] < STFT_SIZE:
        mono = torch.nn.functional.pad(mono, (0, STFT_SIZE - mono.shape[-1]))
    spectrum = torch.stft(mono, STFT_SIZE, STFT_SIZE // 2, window=torch.hann_window(STFT_SIZE), center=False,
                          return_complex=True)
    return (spectrum.real.square() + spectrum.imag.square()).mean((0, -1)).double()


def _bands_db(power: Tensor, sample_rate: int) -> Tensor:
    """Bin powers ``(bins,)`` → 40 band levels in dB; bands above Nyquist repeat the last one below."""
    matrix = band_matrix(sample_rate).double()
    db = 10 * torch.log10(power @ matrix + 1e-20)
    filled = int((matrix.sum(0) > 0).sum())
    return torch.cat([db[:filled], db[filled - 1 :].narrow(0, 0, 1).expand(len(db) - filled)])


def spectrum_loss(output_db: Tensor, reference_db: Tensor) -> Tensor:
    """Mean squared difference (dB²) of two band spectra ``(40,)`` (:data:`MATCH_RANGE_HZ`) after removing
    the mean difference: the shape of the tonal balance, not its level.

    >>> flat = torch.zeros(40, dtype=torch.float64)
    >>> bump = flat.index_fill(0, torch.tensor([20]), 1.0)
    >>> round(float(spectrum_loss(flat + 6.0, flat)), 6), float(spectrum_loss(bump, flat))
    (0.0, 0.0249...)
    """
    weights = _match_weights()
    return (weights * _centred(output_db - reference_db).square()).sum()


def _match_weights() -> Tensor:
    """``(40,)`` float64: equal weights summing to 1 on the bands inside :data:`MATCH_RANGE_HZ`, 0 outside."""
    centres = band_centres_hz()
    weights = torch.from_numpy(((centres >= MATCH_RANGE_HZ[0]) & (centres <= MATCH_RANGE_HZ[1])).astype(np.float64))
    return weights / weights.sum()


def _centred(db: Tensor) -> Tensor:
    """Band levels ``(..., 40)`` less their mean over :data:`MATCH_RANGE_HZ`: the shape, not the level."""
    return db - (_match_weights() * db).sum(-1, keepdim=True)


def _weights(params: ChainParams, effects: Iterable[str], amount: float) -> ChainParams:
    """``params`` with presence turned into the swap's weights: presence × ``amount`` for ``effects``
    (0 below :data:`dmaster.mastering.MIN_PRESENCE`), 0 for the others."""
    effects = set(effects)
    return {name: {**values, "present": values["present"] * (values["present"] >= MIN_PRESENCE)
                   * (amount if name in effects else 0.0)} for name, values in params.items()}


@lru_cache(maxsize=4)
def _curve_grid(sample_rate: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Where EQ curves are evaluated: frequencies spread log-evenly inside the 40 bands (:data:`CURVE_POINTS`
    each, under Nyquist), as ``(3, points)`` powers of ``cos ω`` (1, cos ω, cos 2ω) and of ``e^{−jω}``, and the
    ``(points, 40)`` matrix that averages them per band."""
    edges = np.asarray(BAND_EDGES_HZ)
    hz = np.concatenate([np.geomspace(low, high, CURVE_POINTS + 2)[1:-1] for low, high in zip(edges[:-1], edges[1:])])
    omega = torch.from_numpy(2 * np.pi * np.minimum(hz, 0.499 * sample_rate) / sample_rate)
    cosines = torch.stack([torch.ones_like(omega), torch.cos(omega), torch.cos(2 * omega)])
    powers = torch.polar(torch.ones(3, len(omega), dtype=torch.float64), -torch.arange(3.0)[:, None] * omega)
    averaging = np.kron(np.eye(len(edges) - 1), np.full((CURVE_POINTS, 1), 1.0 / CURVE_POINTS))
    return omega, cosines, powers, torch.from_numpy(averaging)


def _eq_power(eq_values: dict[str, Tensor], weight: Tensor | float, sample_rate: int) -> Tensor:
    """Power response ``(points,)`` float64 of the EQ on :func:`_curve_grid`, blended by ``weight`` as the
    chain blends (``1 + w·(H − 1)``). At full weight (``weight`` 1.0, in real arithmetic, which is cheaper) the
    values may hold a batch of ``n`` EQs, and the responses are ``(n, points)`` (``n`` = 1 included)."""
    omega, cosines, powers, _ = _curve_grid(sample_rate)
    full = not isinstance(weight, Tensor) and weight == 1.0
    count = len(eq_values[f"{eq.BANDS[0].name}_gain_db"])
    response = torch.ones_like(omega if full else powers[0])
    for kind, bands in _BANDS_BY_KIND:  # one biquad design per filter type, its bands (and EQs) batched
        gain_db, frequency, q = (torch.cat([eq_values[f"{band}_{name}"].double() for band in bands])
                                 for name in ("gain_db", "hz", "q"))
        b, a = biquad(gain_db, frequency.clamp(max=0.45 * sample_rate), q, sample_rate, kind)  # (bands · n, 3)
        if full:  # |c0 + c1·e^{−jω} + c2·e^{−2jω}|² = Σc² + 2(c0c1 + c1c2)·cos ω + 2c0c2·cos 2ω
            ratio = (_power_coefficients(b) @ cosines) / (_power_coefficients(a) @ cosines)
            response = response * ratio.reshape(len(bands), count, -1).prod(0)
        else:
            response = response * ((b.to(powers.dtype) @ powers) / (a.to(powers.dtype) @ powers)).prod(0)
    if full:
        return response
    response = 1.0 + weight * (response - 1.0)
    return response.real.square() + response.imag.square()


def _power_coefficients(c: Tensor) -> Tensor:
    """Biquad coefficients ``(filters, 3)`` → the cosine-series coefficients ``(filters, 3)`` of their power."""
    c0, c1, c2 = c.unbind(1)
    return torch.stack([c0 * c0 + c1 * c1 + c2 * c2, 2 * (c0 * c1 + c1 * c2), 2 * c0 * c2], 1)


def _curve_db(power: Tensor, sample_rate: int) -> Tensor:
    """A power response on :func:`_curve_grid` ``(points,)`` → its 40 band levels in dB."""
    return 10 * torch.log10(power @ _curve_grid(sample_rate)[3])


def _refine(start: dict[str, Tensor], target_db: Tensor, inverse_db: Tensor, sample_rate: int,
            steps: int) -> tuple[dict[str, Tensor], list[float]]:
    """The forward EQ (physical units, batch of one, at full weight) whose correction curve (its band
    response in dB plus ``inverse_db``, the input's EQ inverse) fits ``target_db`` ``(40,)``: Levenberg–Marquardt
    steps on :func:`spectrum_loss` plus :data:`PRIOR_WEIGHT` times the squared distance from ``start`` in
    normalised units (a least-squares problem in 18 parameters: each step solves it linearised, the Jacobian
    by forward differences in one batched evaluation). Returns the EQ and the loss before and after."""
    params = eq.SPEC.params
    start_vector = torch.stack([p.normalise(start[p.name].double()) for p in params], 1)[0]
    # Param.denormalise for all parameters at once: linear between the bounds, on a log scale where asked
    logarithmic = torch.tensor([p.scale == "log" for p in params])
    bounds = torch.tensor([[p.minimum, p.maximum] for p in params], dtype=torch.float64)
    bounds = torch.where(logarithmic[:, None], bounds.log(), bounds)
    weights = _match_weights()

    def values(offsets: Tensor) -> dict[str, Tensor]:
        """Physical values, each ``(n,)``, of offsets ``(n, parameters)``."""
        warped = torch.lerp(bounds[:, 0], bounds[:, 1], (start_vector + offsets).clamp(0.0, 1.0))
        physical = torch.where(logarithmic, warped.exp(), warped)
        return {p.name: physical[:, i] for i, p in enumerate(params)}

    def residuals(offsets: Tensor) -> Tensor:
        """``(n, 40 + parameters)``, each row's sum of squares the loss: the weighted misfit, then the prior."""
        power = _eq_power(values(offsets), 1.0, sample_rate)
        difference = _centred(inverse_db + _curve_db(power, sample_rate) - target_db)
        return torch.cat([weights.sqrt() * difference, math.sqrt(PRIOR_WEIGHT) * offsets], 1)

    def fit(offset: Tensor) -> float:
        """:func:`spectrum_loss` alone: the misfit part of the residuals."""
        return float(residuals(offset[None])[0, : len(target_db)].square().sum())

    # the Jacobian by forward differences, all of them in one batched evaluation
    probes = torch.cat([torch.zeros(1, len(params), dtype=torch.float64),
                        JACOBIAN_STEP * torch.eye(len(params), dtype=torch.float64)])
    offset = torch.zeros(len(params), dtype=torch.float64)
    before, damping = fit(offset), REFINE_DAMPING
    for _ in range(steps):
        evaluated = residuals(offset + probes)
        current = evaluated[0]
        jacobian = (evaluated[1:] - current).T / JACOBIAN_STEP
        normal = jacobian.T @ jacobian
        scaled = damping * (torch.diag(normal.diagonal()) + torch.eye(len(params), dtype=torch.float64))
        step = torch.linalg.solve(normal + scaled, -jacobian.T @ current)
        if residuals((offset + step)[None])[0].square().sum() < current.square().sum():
            offset, damping = offset + step, damping / 3
        else:
            damping *= 3
    return {k: v.float() for k, v in values(offset[None]).items()}, [before, fit(offset)]


def _forward_response(values: ChainParams, effects: tuple[str, ...], sample_rate: int) -> ExtraResponse | None:
    """The forward LTI effects of ``values`` (weights as presence) as an extra response for the inverse;
    ``None`` when none is on."""
    modules = [m for m in LINEAR_FORWARD if m.SPEC.name in effects and float(values[m.SPEC.name]["present"][0]) > 0]
    if not modules:
        return None
    tail = sum(m.tail_samples(sample_rate, False, **_physical(values, m.SPEC.name)) for m in modules)

    def response(n_fft: int) -> Tensor:
        total = torch.ones(1, 1, n_fft // 2 + 1, dtype=torch.complex128)
        for m in modules:
            h = m.transfer(n_fft, sample_rate, 1, **_physical(values, m.SPEC.name, torch.float64))
            total = total * (1.0 + values[m.SPEC.name]["present"].double()[:, None, None] * (h - 1.0))
        return total

    return ExtraResponse(response, tail)


def _physical(params: ChainParams, effect: str, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
    return {k: (v if dtype is None else v.to(dtype)) for k, v in params[effect].items() if k != "present"}


def _describe_band_db(values: Tensor) -> dict[str, float]:
    return {f"{hz:.0f} Hz": round(float(db), 2) for hz, db in zip(band_centres_hz(), values)}


@torch.no_grad()
def match_reference(audio: Tensor, reference: Tensor, model: Any = None, sample_rate: int | None = None, *,
                    amount: float = 1.0, keep: Iterable[str] = (), ambience: bool = False, refine: bool = True,
                    steps: int = REFINE_STEPS) -> tuple[Tensor, dict[str, Any]]:
    """Make ``audio`` sound like ``reference``: the chain's swap and the EQ refinement (module docstring).

    Args:
        audio: the mix, ``(channels, samples)`` float32 at the model's sample rate.
        reference: the reference, ``(channels, samples)`` float32 at the model's sample rate (any length
            and channel count; :func:`prepare_reference` reads and resamples one).
        model: the parameter model (``None``: the shipped one; a checkpoint path or a loaded
            :class:`dmaster.models.ParamEstimator`).
        sample_rate: the audio's rate in Hz, checked against the model's; ``None``: the model's.
        amount: 0–1, how much of the swap to apply (every weight scaled by it; 0 is the identity).
        keep: effects of the input left as they are (neither undone nor replaced by the reference's).
        ambience: also swap echo and reverb (remove the input's, add the reference's).
        refine: move the forward EQ towards the reference's long-term spectrum (module docstring).
        steps: Levenberg–Marquardt steps of the refinement.

    Returns:
        The matched audio ``(channels, samples)`` before the level stage (normalise it to the report's
        ``reference_loudness_lufs`` with :func:`dmaster.mastering.level.set_level`), and a JSON-ready report: both
        estimates, the settings undone and applied (weights as ``present``), the correction in physical
        units (EQ curve per band in dB, gain dB, compressors), the refinement's loss before and after,
        the long-term spectra (dB, mean removed; the output's as predicted) and their rms distance to
        the reference's, both loudnesses and the seconds taken.
    """
    started = time.perf_counter()
    network = resolve_model(model)
    if not isinstance(network, ParamEstimator):
        raise ValueError("reference matching needs the parameter model; the U-Net has no parameters to swap")
    chain, rate = network.chain, network.sample_rate
    if sample_rate is not None and int(sample_rate) != rate:
        raise ValueError(f"audio must be at the model's rate {rate} Hz, got {sample_rate}; resample it first")
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount must lie in [0, 1], got {amount}")
    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    audio, reference = _as_tensor(audio, "audio"), _as_tensor(reference, "reference")
    input_loudness, reference_loudness = _checked(audio, rate, "audio"), _checked(reference, rate, "reference")
    keep = check_keep(keep, network)
    effects = tuple(e for e in (*TONE_AND_DYNAMICS, *(AMBIENCE if ambience else ())) if e not in keep)

    input_windows, reference_windows = model_windows(network, audio), model_windows(network, reference)
    if "echo" in effects:  # as master() estimates
        input_estimate, reference_estimate = (track_estimate(network, w) for w in (input_windows, reference_windows))
    else:  # the echo delay refined and its level measured only when echoes are swapped
        input_estimate, reference_estimate = (aggregate(chain, network.estimate(w, refine_delay=False))
                                              for w in (input_windows, reference_windows))
    undone = _weights(input_estimate, effects, amount)
    applied = _weights(reference_estimate, effects, amount)

    # the compressor's inverse and forward are taken as spectrally neutral: the input as it is
    input_db, reference_db = (_bands_db(_bin_power(w), rate) for w in (input_windows, reference_windows))
    inverse_power = 1.0 / _eq_power(_physical(undone, "eq"), undone["eq"]["present"].double(), rate)
    refinement: dict[str, Any] = {"applied": False}
    if refine and "eq" in effects and amount > 0:
        start = _physical(applied, "eq", torch.float64)
        # the swap's forward EQ as a full-weight EQ: the band gains scaled by its weight
        weight = applied["eq"]["present"].double()
        start = {k: v * weight / amount if k.endswith("_gain_db") else v for k, v in start.items()}
        inverse_db = _curve_db(inverse_power, rate)
        swap_db = inverse_db + _curve_db(_eq_power(_physical(applied, "eq"), weight, rate), rate)
        excess = _centred(reference_db - input_db - swap_db).clamp(-REFERENCE_LIMIT_DB, REFERENCE_LIMIT_DB)
        target_db = swap_db + REFERENCE_TRUST * excess
        refined, (before, after) = _refine(start, target_db, inverse_db, rate, steps)
        applied["eq"] = {**refined, "present": torch.full((1,), float(amount))}
        refinement = {"applied": True, "steps": steps,
                      "reference_trust": REFERENCE_TRUST, "reference_limit_db": REFERENCE_LIMIT_DB,
                      "spectrum_loss_db2_before": round(before, 4),
                      "spectrum_loss_db2_after": round(after, 4)}

    forward_lti = _forward_response(applied, effects, rate)
    out = in_chunks(audio, lambda piece: chain.inverse(piece[None], undone, forward_lti, exact=False)[0], rate)
    compressor_on = {**chain.neutral_params(1), "compressor": applied["compressor"]}
    if float(applied["compressor"]["present"][0]) > 0:
        out = in_chunks(out, lambda piece: chain(piece[None], compressor_on)[0], rate)

    correction_db = _curve_db(_eq_power(_physical(applied, "eq"), applied["eq"]["present"].double(), rate)
                              * inverse_power, rate)
    gain_db = (float(applied["gain"]["present"][0]) * float(applied["gain"]["gain_db"][0])
               - float(undone["gain"]["present"][0]) * float(undone["gain"]["gain_db"][0]))
    output_db = input_db + correction_db
    distance = {name: round(math.sqrt(float(spectrum_loss(db, reference_db))), 2)
                for name, db in (("input", input_db), ("output", output_db))}
    report = {
        "input_estimate": chain.to_json(input_estimate)[0],
        "reference_estimate": chain.to_json(reference_estimate)[0],
        "swapped": list(effects), "kept": list(keep), "ambience": ambience, "amount": amount,
        "undone": chain.to_json(undone)[0], "applied": chain.to_json(applied)[0],
        "correction": {"eq_curve_db": _describe_band_db(correction_db), "gain_db": round(gain_db, 2),
                       "compressor_undone": _compressor_text(undone), "compressor_applied": _compressor_text(applied)},
        "refinement": refinement,
        "spectrum_distance_to_reference_db": distance,
        "spectra_db": {"input": _describe_band_db(input_db - input_db.mean()),
                       "reference": _describe_band_db(reference_db - reference_db.mean()),
                       "output": _describe_band_db(output_db - output_db.mean())},
        "input_loudness_lufs": round(input_loudness, 2), "reference_loudness_lufs": round(reference_loudness, 2),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return out, report


def _compressor_text(params: ChainParams) -> str:
    values = params["compressor"]
    weight = float(values["present"][0])
    if weight == 0:
        return "none"
    return (f"threshold {float(values['threshold_db'][0]):.1f} dBFS, ratio {float(values['ratio'][0]):.1f}:1, "
            f"attack {float(values['attack_ms'][0]):.1f} ms, release {float(values['release_ms'][0]):.0f} ms, "
            f"knee {float(values['knee_db'][0]):.1f} dB, makeup {float(values['makeup_db'][0]):+.1f} dB "
            f"at weight {weight:.2f}")
