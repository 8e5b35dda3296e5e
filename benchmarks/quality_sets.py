"""The pieces of ``benchmarks/quality.py``: its sets, its independent pedalboard chain, its scores and
paired statistics, and its Markdown.

A **set** is a list of :class:`Item`: a clean excerpt, what the system is given (degraded or not), the
true chain parameters when the project's chain degraded it (``None`` otherwise) and which effects are
truly present (as the parameter model names them; all absent for clean originals).

>>> paired_difference([1.0, 2.0, 3.0], [2.0, 2.5, 3.5])
{'wins': 3, 'items': 3, 'mean_difference': -0.6666666666666666, 'standard_error': 0.16666666666666666}
>>> area_under_curve([0.9, 0.8, 0.3, 0.1], [True, False, True, False])
0.75
>>> area_under_curve([0.9, 0.8], [False, False]) is None
True
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from dmaster.effects import Chain, ChainParams
from dmaster.mastering.level import PEAK_CEILING_DB, set_level

Tensor = torch.Tensor

SETS = {"a": "test split, degraded by the project's chain",
        "b": "external music, degraded by the project's chain",
        "c": "external music, degraded by an independent pedalboard chain",
        "d": "external music, clean originals (nothing to fix)"}
"""The sets, by letter: (a) the corpus's test split, (b)–(d) the external check's music."""

METRICS = ("mrstft", "mrstft_level_matched", "si_sdr_db", "lsd_db", "lufs_error_db")


@dataclass
class Item:
    """One excerpt of a set."""

    set: str
    track: str
    seed: int | None
    clean: Tensor
    """``(channels, samples)``: the reference every output is scored against."""
    given: Tensor
    """``(channels, samples)``: what the systems restore."""
    truth: ChainParams | None
    """The chain's true parameters (a batch of one) when the project's chain degraded it."""
    present: dict[str, bool]
    """Per effect of the chain: truly present (for the pedalboard chain: its counterpart drawn)."""
    drawn: dict[str, Any] | None = None
    """The pedalboard chain's parameters, for the JSON."""


def chain_item(set_name: str, chain: Chain, track: str, seed: int, clean: Tensor, truth: ChainParams) -> Item:
    """``clean`` degraded by the project's chain with ``truth``."""
    degraded = chain(clean[None], truth)[0]
    present = {name: float(truth[name]["present"][0]) == 1.0 for name in chain.effect_names}
    return Item(set_name, track, seed, clean, degraded, truth, present)


# -- the independent chain -----------------------------------------------------------------------------

PEDALBOARD_PRESENCE = {"eq": 0.7, "gain": 0.5, "echo": 0.4, "reverb": 0.5, "compressor": 0.5}
"""How often each stage of the pedalboard chain is on (its own prior, not the project's)."""


def pedalboard_params(seed: int, track: str) -> dict[str, Any]:
    """One draw of the independent chain's settings for ``track``: its own ranges and presence priors
    (:data:`PEDALBOARD_PRESENCE`); an EQ stage has one to three of a low shelf, a high shelf and a bell."""
    rng = np.random.default_rng([seed, zlib.crc32(track.encode())])
    on = {name: bool(rng.random() < p) for name, p in PEDALBOARD_PRESENCE.items()}
    drawn: dict[str, Any] = {"present": on}
    if on["eq"]:
        filters = []
        kinds = [k for k in ("low_shelf", "high_shelf", "peak") if rng.random() < 0.6] or ["peak"]
        for kind in kinds:
            gain_db = float(rng.choice([-1, 1]) * rng.uniform(2.0, 9.0))
            if kind == "low_shelf":
                filters.append({"kind": kind, "hz": float(np.exp(rng.uniform(np.log(60), np.log(400)))),
                                "gain_db": gain_db})
            elif kind == "high_shelf":
                filters.append({"kind": kind, "hz": float(np.exp(rng.uniform(np.log(2500), np.log(10000)))),
                                "gain_db": gain_db})
            else:
                filters.append({"kind": kind, "hz": float(np.exp(rng.uniform(np.log(150), np.log(8000)))),
                                "gain_db": gain_db, "q": float(rng.uniform(0.5, 3.0))})
        drawn["eq"] = filters
    if on["gain"]:
        drawn["gain_db"] = float(rng.choice([-1, 1]) * rng.uniform(2.0, 12.0))
    if on["echo"]:
        drawn["delay"] = {"seconds": float(rng.uniform(0.05, 0.4)), "feedback": float(rng.uniform(0.0, 0.4)),
                          "mix": float(rng.uniform(0.1, 0.35))}
    if on["reverb"]:
        drawn["reverb"] = {"room_size": float(rng.uniform(0.2, 0.9)), "damping": float(rng.uniform(0.2, 0.8)),
                           "wet_level": float(rng.uniform(0.05, 0.3)), "dry_level": float(rng.uniform(0.7, 1.0))}
    if on["compressor"]:
        drawn["compressor"] = {"threshold_db": float(rng.uniform(-32.0, -10.0)),
                               "ratio": float(rng.uniform(2.0, 10.0)), "attack_ms": float(rng.uniform(1.0, 30.0)),
                               "release_ms": float(rng.uniform(40.0, 300.0))}
    return drawn


def pedalboard_degrade(clean: Tensor, sample_rate: int, drawn: dict[str, Any]) -> Tensor:
    """``clean`` ``(channels, samples)`` through the pedalboard chain ``drawn`` (:func:`pedalboard_params`):
    EQ → gain → delay → reverb → compressor, the same topology as the project's chain, none of its code."""
    try:
        import pedalboard
    except ImportError as error:  # pragma: no cover - the bench extra
        raise SystemExit("set (c) needs pedalboard: pip install -e '.[bench]'") from error
    stages = []
    for f in drawn.get("eq", []):
        if f["kind"] == "low_shelf":
            stages.append(pedalboard.LowShelfFilter(cutoff_frequency_hz=f["hz"], gain_db=f["gain_db"]))
        elif f["kind"] == "high_shelf":
            stages.append(pedalboard.HighShelfFilter(cutoff_frequency_hz=f["hz"], gain_db=f["gain_db"]))
        else:
            stages.append(pedalboard.PeakFilter(cutoff_frequency_hz=f["hz"], gain_db=f["gain_db"], q=f["q"]))
    if "gain_db" in drawn:
        stages.append(pedalboard.Gain(gain_db=drawn["gain_db"]))
    if "delay" in drawn:
        d = drawn["delay"]
        stages.append(pedalboard.Delay(delay_seconds=d["seconds"], feedback=d["feedback"], mix=d["mix"]))
    if "reverb" in drawn:
        stages.append(pedalboard.Reverb(**drawn["reverb"], width=1.0))
    if "compressor" in drawn:
        stages.append(pedalboard.Compressor(**drawn["compressor"]))
    if not stages:
        return clean.clone()
    board = pedalboard.Pedalboard(stages)
    out = board(clean.numpy().astype(np.float32), float(sample_rate), reset=True)
    return torch.from_numpy(np.ascontiguousarray(out)).to(clean.dtype)


def pedalboard_item(track: str, seed: int, clean: Tensor, sample_rate: int) -> Item:
    drawn = pedalboard_params(seed, track)
    present = {name: drawn["present"].get(name, False) for name in Chain().effect_names}  # others: no such stage
    return Item("c", track, seed, clean, pedalboard_degrade(clean, sample_rate, drawn), None, present, drawn)


# -- scores --------------------------------------------------------------------------------------------

def ceiling(audio: Tensor, sample_rate: int) -> Tensor:
    """``audio`` ``(channels, samples)`` with its peak under ``master()``'s −1 dBFS ceiling, as every system's
    output is scored."""
    return set_level(audio, sample_rate, None, PEAK_CEILING_DB)[0]


def paired_difference(first: Sequence[float], second: Sequence[float],
                      groups: Sequence[str] | None = None) -> dict[str, float]:
    """Per item ``first − second`` (lower is better): how often ``first`` is lower, the mean difference and
    its standard error. With ``groups`` (e.g. each item's track), items of a group are not taken as
    independent: the standard error is that of the group means' mean (a cluster-robust estimate).

    >>> paired_difference([1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 0.0, 0.0], ["a", "a", "b", "b"])["standard_error"]
    1.0
    """
    difference = np.asarray(first, dtype=float) - np.asarray(second, dtype=float)
    units = difference
    if groups is not None:
        names = np.asarray(groups)
        units = np.array([difference[names == name].mean() for name in dict.fromkeys(groups)])
    se = float(units.std(ddof=1) / np.sqrt(len(units))) if len(units) > 1 else math.nan
    return {"wins": int((difference < 0).sum()), "items": len(difference),
            "mean_difference": float(difference.mean()), "standard_error": se}


def area_under_curve(probabilities: Sequence[float], labels: Sequence[bool]) -> float | None:
    """ROC AUC of ``probabilities`` for ``labels`` (ties count half); ``None`` without both classes."""
    p, y = np.asarray(probabilities, dtype=float), np.asarray(labels, dtype=bool)
    positive, negative = p[y], p[~y]
    if len(positive) == 0 or len(negative) == 0:
        return None
    greater = (positive[:, None] > negative[None, :]).sum() + 0.5 * (positive[:, None] == negative[None, :]).sum()
    return float(greater / (len(positive) * len(negative)))


def presence_scores(probabilities: list[dict[str, float]], truth: list[dict[str, bool]]) -> dict[str, dict]:
    """Per effect: accuracy (probability ≥ 0.5 counts as detected), AUC, false alarms among truly absent items."""
    result = {}
    for name in probabilities[0]:
        p = [item[name] for item in probabilities]
        y = [item[name] for item in truth]
        absent = [q for q, t in zip(p, y) if not t]
        result[name] = {"accuracy": float(np.mean([(q >= 0.5) == t for q, t in zip(p, y)])),
                        "auc": area_under_curve(p, y), "absent": len(absent),
                        "false_alarms": int(sum(q >= 0.5 for q in absent))}
    return result


def summarise(rows: list[dict[str, Any]], systems: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean of every metric per system (and the median of level-matched MR-STFT)."""
    summary = {}
    for name in systems:
        mine = [r for r in rows if r["system"] == name]
        if mine:
            summary[name] = {k: float(np.nanmean([r[k] for r in mine])) for k in METRICS}
            summary[name]["mrstft_level_matched_median"] = float(np.median([r["mrstft_level_matched"] for r in mine]))
    return summary


def column(rows: list[dict[str, Any]], system: str, key: str) -> list[float]:
    """``key`` of ``system``'s rows, in item order."""
    return [r[key] for r in rows if r["system"] == system]


# -- Markdown ------------------------------------------------------------------------------------------

def difference_text(p: dict[str, float]) -> str:
    return f"{p['mean_difference']:+.3f} ± {p['standard_error']:.3f}"


def set_markdown(name: str, result: dict[str, Any]) -> str:
    """One set's tables: systems, paired comparisons, presence, the project's targets."""
    lines = [f"### ({name}) {SETS[name]}", "", result["description"], "",
             "| system | MR-STFT ↓ | level-matched MR-STFT ↓ | level-matched median ↓ | SI-SDR dB ↑ | LSD dB ↓ | "
             "LUFS error dB ↓ |", "|---|---|---|---|---|---|---|"]
    for system, s in result["summary"].items():
        lines.append(f"| {system} | {s['mrstft']:.3f} | {s['mrstft_level_matched']:.3f} | "
                     f"{s['mrstft_level_matched_median']:.3f} | {s['si_sdr_db']:.2f} | {s['lsd_db']:.2f} | "
                     f"{s['lufs_error_db']:.2f} |")
    lines += ["", "Paired, per item (first − second; negative: the first is better; wins: items where the first "
              "is lower; standard errors over tracks):", "",
              "| first − second | level-matched MR-STFT: wins | mean ± s.e. | raw MR-STFT: wins | mean ± s.e. |",
              "|---|---|---|---|---|"]
    for label, p in result["paired"].items():
        lm, raw = p["mrstft_level_matched"], p["mrstft"]
        lines.append(f"| {label} | {lm['wins']}/{lm['items']} | {difference_text(lm)} | {raw['wins']}/{raw['items']} | "
                     f"{difference_text(raw)} |")
    if result.get("presence"):
        lines += ["", "Presence estimated by param (probability ≥ 0.5 counts as detected); false alarms: detected "
                  "among the items where the effect is absent:", "",
                  "| effect | accuracy | AUC | false alarms |", "|---|---|---|---|"]
        for effect, s in result["presence"].items():
            auc = "—" if s["auc"] is None else f"{s['auc']:.2f}"
            alarms = f"{s['false_alarms']}/{s['absent']}" if s["absent"] else "—"
            lines.append(f"| {effect} | {s['accuracy']:.0%} | {auc} | {alarms} |")
    if result.get("targets"):
        lines += ["", "The project's targets on this set:", ""]
        lines += [f"- {t['what']}: {t['value']} (target {t['target']}) — {'met' if t['met'] else '**not met**'}"
                  for t in result["targets"]]
    return "\n".join(lines)


HEADLINE_SYSTEMS = ("identity", "loudness-only", "oracle", "param", "unet")


def headline_markdown(results: dict[str, dict[str, Any]], header: str) -> str:
    """The project README's table: set × the main systems' level-matched MR-STFT, and param against
    loudness-only, paired."""
    lines = [header, "", "| set | items | identity | loudness-only | oracle | **param** (`master()`) | U-Net | "
             "param − loudness-only (± s.e.) |", "|---|---|---|---|---|---|---|---|"]
    for name, result in results.items():
        s = result["summary"]
        cells = [f"{s[k]['mrstft_level_matched']:.3f}" if k in s else "—" for k in HEADLINE_SYSTEMS]
        cells[3] = f"**{cells[3]}**"
        p = result["paired"].get("param − loudness-only")
        versus = difference_text(p["mrstft_level_matched"]) if p else "—"
        lines.append(f"| ({name}) {SETS[name]} | {result['items']} | " + " | ".join(cells) + f" | {versus} |")
    return "\n".join(lines)
