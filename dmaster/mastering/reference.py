"""Reference mastering: make a mix sound like a reference track, with the chain's parameters to show for it.

The parameter model estimates the chain's settings twice: for the input (what was done to it) and
for the reference (what was done to that). The swap undoes the input's settings and applies the
reference's, through the chain, for the effects that set the tonal balance, the level and the
dynamics (EQ, gain, compressor); the ambience (echo, reverb) only when asked for. Whatever the
music's own tonal balance makes the model hear wrong on both tracks alike cancels in the swap.

Then a refinement of the forward EQ. The swap's correction is robust to the music but timid (the
model's estimates are shrunk towards "nothing to fix"); the difference between the reference's and
the input's long-term spectra (40 log-frequency bands of :mod:`.tone`, mean level
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
from pathlib import Path
from typing import Any, Iterable, Union

import numpy as np
import soxr
import torch

from ..audio import read_audio
from ..effects import ChainParams, ExtraResponse
from ..effects.registry import EFFECTS, group
from ..effects.spec import all_finite
from ..loudness import integrated_loudness
from ..models import ParamEstimator
from .chunks import in_chunks
from .estimation import aggregate, model_windows, track_estimate
from .image import apply_image, describe_image, image_correction, image_of
from .inputs import check_keep
from .pretrained import resolve_model
from .restoration import MIN_PRESENCE
from .tone import (
    REFINE_STEPS,
    band_levels_db,
    centred,
    curve_db,
    describe_bands,
    eq_curve_db,
    eq_power,
    long_term_power,
    refine_eq,
    spectrum_loss,
)

__all__ = ["AMBIENCE", "TONE_AND_DYNAMICS", "match_reference", "prepare_reference"]

Tensor = torch.Tensor
ReferenceInput = Union[np.ndarray, Tensor, str, Path]

TONE_AND_DYNAMICS = group("tone_and_dynamics")
"""Effects swapped by default: tonal balance, level and dynamics (each effect's ``ROLE.reference``)."""
AMBIENCE = group("ambience")
"""Effects swapped only with ``ambience=True``."""
IMAGE = group("image")
"""Effects of the stereo image: not swapped but matched by measurement (:mod:`.image`); ``keep`` naming one leaves
the input's image as it is."""
REFERENCE_TRUST = 0.3
"""The share of the excess (the difference between the reference's and the input's long-term spectra, less the
swap's correction, limited to :data:`REFERENCE_LIMIT_DB`) that the refinement's target curve adds to the swap's."""
REFERENCE_LIMIT_DB = 3.0
"""The most the excess may hold in any band (dB, either sign; mean over :data:`.tone.MATCH_RANGE_HZ` removed
first)."""
MIN_REFERENCE_SECONDS = 0.1
LINEAR_FORWARD = tuple(m for m in EFFECTS if m.ROLE.linear != "none" and not m.ROLE.mixes_channels)
"""The effects whose forward :func:`_forward_response` can fold into the inverse's linear stage (per channel)."""


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


def _checked(audio: Tensor, sample_rate: int, name: str, channels: int | None = None) -> float:
    """Raise ``ValueError`` naming ``name`` unless ``audio`` ``(channels, samples)`` is finite, long enough
    and not silent once any DC offset is taken out; return its integrated loudness (LUFS), measured as if it
    had ``channels`` channels where it has one and they are more (a mono track plays on both speakers)."""
    if not all_finite(audio):
        raise ValueError(f"{name} contains NaN or inf")
    if audio.shape[-1] < MIN_REFERENCE_SECONDS * sample_rate:
        raise ValueError(f"{name} is {audio.shape[-1] / sample_rate:.3f} s long; it needs at least "
                         f"{MIN_REFERENCE_SECONDS:g} s")
    centred = audio - audio.mean(-1, keepdim=True)  # a DC offset has no loudness, only the meter's start-up
    if audio.shape[0] == 1 and channels is not None and channels > 1:
        centred = centred.expand(min(channels, 2), -1)
    loudness = integrated_loudness(centred, sample_rate) if float(centred.abs().max()) > 0.0 else -math.inf
    if not math.isfinite(loudness):
        raise ValueError(f"{name} is silent (below the loudness gate of -70 LUFS once any DC offset is taken out); "
                         "it cannot be matched")
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
        if Path(reference).is_dir():
            raise ValueError(f"reference {reference} is a folder; name one audio file")
        reference, sample_rate = read_audio(reference)
    else:
        reference = _as_tensor(reference, "reference")
    sample_rate = model_rate if sample_rate is None else int(sample_rate)
    _checked(reference, sample_rate, "reference")
    if sample_rate != model_rate:
        resampled = soxr.resample(reference.T.numpy(), sample_rate, model_rate, quality="HQ")
        reference = torch.from_numpy(np.ascontiguousarray(resampled.T))
    return reference

def _weights(params: ChainParams, effects: Iterable[str], amount: float) -> ChainParams:
    """``params`` with presence turned into the swap's weights: presence × ``amount`` for ``effects``
    (0 below :data:`.restoration.MIN_PRESENCE`), 0 for the others."""
    effects = set(effects)
    return {name: {**values, "present": values["present"] * (values["present"] >= MIN_PRESENCE)
                   * (amount if name in effects else 0.0)} for name, values in params.items()}


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


@torch.no_grad()
def match_reference(audio: Tensor, reference: Tensor, model: Any = None, *, amount: float = 1.0,
                    keep: Iterable[str] = (), ambience: bool = False,
                    steps: int = REFINE_STEPS) -> tuple[Tensor, dict[str, Any]]:
    """Make ``audio`` sound like ``reference``: the chain's swap and the EQ refinement (module docstring).

    Args:
        audio: the mix, ``(channels, samples)`` float32 at the model's sample rate.
        reference: the reference, ``(channels, samples)`` float32 at the model's sample rate (any length
            and channel count; :func:`prepare_reference` reads and resamples one).
        model: the parameter model (``None``: the shipped one; a checkpoint path or a loaded
            :class:`dmaster.models.ParamEstimator`).
        amount: 0–1, how much of the swap to apply (every weight scaled by it; 0 is the identity).
        keep: effects of the input left as they are (neither undone nor replaced by the reference's).
        ambience: also swap echo and reverb (remove the input's, add the reference's).
        steps: Levenberg–Marquardt steps of the refinement that moves the forward EQ towards the reference's
            long-term spectrum (module docstring); 0: the swap alone.

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
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount must lie in [0, 1], got {amount}")
    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    audio, reference = _as_tensor(audio, "audio"), _as_tensor(reference, "reference")
    input_loudness = _checked(audio, rate, "the input (audio)")
    reference_loudness = _checked(reference, rate, "reference", channels=audio.shape[0])
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
    input_db, reference_db = (band_levels_db(long_term_power(w), rate) for w in (input_windows, reference_windows))
    inverse_power = 1.0 / eq_power(_physical(undone, "eq"), undone["eq"]["present"].double(), rate)
    refinement: dict[str, Any] = {"applied": False}
    if steps > 0 and "eq" in effects and amount > 0:
        start = _physical(applied, "eq", torch.float64)
        # the swap's forward EQ as a full-weight EQ: the band gains scaled by its weight
        weight = applied["eq"]["present"].double()
        start = {k: v * weight / amount if k.endswith("_gain_db") else v for k, v in start.items()}
        inverse_db = curve_db(inverse_power, rate)
        swap_db = inverse_db + eq_curve_db(_physical(applied, "eq"), weight, rate)
        excess = centred(reference_db - input_db - swap_db).clamp(-REFERENCE_LIMIT_DB, REFERENCE_LIMIT_DB)
        target_db = swap_db + REFERENCE_TRUST * excess
        refined, (before, after) = refine_eq(start, target_db, inverse_db, rate, steps)
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
    input_image, reference_image = image_of(input_windows, rate), image_of(reference_windows, rate)
    side_db, balance_db = image_correction(input_image, reference_image, 0.0 if set(IMAGE) & set(keep) else amount)
    out = apply_image(out, rate, side_db, balance_db)

    correction_db = curve_db(eq_power(_physical(applied, "eq"), applied["eq"]["present"].double(), rate)
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
        "correction": {"eq_curve_db": describe_bands(correction_db), "gain_db": round(gain_db, 2),
                       "compressor_undone": _compressor_text(undone), "compressor_applied": _compressor_text(applied)},
        "refinement": refinement,
        "image": {**describe_image(side_db, balance_db),
                  "side_to_mid_db": {name: describe_image(image[:len(side_db)], 0.0)["side_db"] for name, image in
                                     (("input", input_image), ("reference", reference_image),
                                      ("output", input_image[:len(side_db)] + side_db))}},
        "spectrum_distance_to_reference_db": distance,
        "spectra_db": {"input": describe_bands(input_db - input_db.mean()),
                       "reference": describe_bands(reference_db - reference_db.mean()),
                       "output": describe_bands(output_db - output_db.mean())},
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
